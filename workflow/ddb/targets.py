"""A target no rule makes (a mistyped dataset or file name) is named with what exists.

Snakemake itself only says ``MissingRuleException: No rule to produce results/waterbird/eval.json``. The
workflow checks the command line's targets once its rules are defined (``check_targets`` in
rules/common.smk) and, for each target that no rule makes, says whether its dataset (the run folder) is
unknown, listing the config's datasets, or its file, listing the artifacts of a run (:data:`ddb.paths.ARTIFACTS`).
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Iterable

from .errors import DDBError
from .paths import ARTIFACTS

_WILDCARD = re.compile(r"\{(\w+)\}")


def _pattern_regex(pattern: str) -> re.Pattern:
    parts = _WILDCARD.split(pattern)
    # split alternates literal text and wildcard names
    return re.compile("".join(re.escape(p) if i % 2 == 0 else "[^/]+" for i, p in enumerate(parts)) + "$")


def describe_unknown_target(target: str, results: str, runs: Iterable[str], classes: dict) -> str:
    """One line on why no rule makes ``target``; ``runs`` are the run folders (dataset or
    dataset/seed-s), ``classes`` each dataset's class names (by run)."""
    path = posixpath.normpath(target.replace("\\", "/"))
    prefix = posixpath.normpath(results) + "/"
    if not path.startswith(prefix):
        return f"{target}: no rule makes it; every file DDB makes lies under {prefix} (config key `results`)"
    rest = path[len(prefix):]
    runs = sorted(runs, key=len, reverse=True)
    run = next((r for r in runs if rest == r or rest.startswith(r + "/")), None)
    if run is None:
        name = rest.split("/")[0]
        datasets = sorted({r.split("/")[0] for r in runs})
        close = difflib.get_close_matches(name, datasets, n=1)
        hint = f" (did you mean {prefix}{close[0]}{rest[len(name):]}?)" if close else ""
        return (f"{target}: {name!r} is no dataset of the config{hint}; its datasets are {', '.join(datasets)} "
                f"(config key `datasets`; each is a folder {prefix}<dataset>/)")
    inside = rest[len(run) + 1:]
    matching = [pattern for pattern in ARTIFACTS.values() if _pattern_regex(pattern).match(inside)]
    if matching:
        return (f"{target}: {inside!r} has the form of {matching[0]} but no rule makes it for these values: the "
                f"classes of {run} are {', '.join(classes.get(run, []))}; shard numbers start at 0 and their count "
                f"comes from the config (`snakemake -n` lists the files that will be made)")
    close = difflib.get_close_matches(inside, [p for p in ARTIFACTS.values() if "{" not in p], n=1)
    hint = f" (did you mean {prefix}{run}/{close[0]}?)" if close else ""
    return (f"{target}: no artifact {inside!r} in {prefix}{run}/{hint}; the artifacts of a run are "
            f"{', '.join(ARTIFACTS.values())}")


def check_targets(targets: Iterable[str], producible, results: str, runs: Iterable[str], classes: dict) -> None:
    """Raise :class:`DDBError` naming every target that ``producible(target)`` says no rule makes."""
    lines = [describe_unknown_target(t, results, list(runs), classes) for t in targets if not producible(t)]
    if lines:
        raise DDBError("targets", "no rule makes " + ("this target" if len(lines) == 1 else "these targets")
                       + ":\n    " + "\n    ".join(lines),
                       "correct the target (`snakemake -n` without a target plans every dataset of the "
                       "config's `targets`)")
