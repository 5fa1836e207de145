"""The targets of the `snakemake` command line, and a target no rule makes named with what exists.

Snakemake 9 hands its DAG settings, targets included, to the workflow only after reading the Snakefile, so
the checks that must stop a run before it is planned (a missing dataset root, ddb.datasets.roots; a
mistyped target) read them from the command line's own arguments (:func:`snakemake_targets`).

Snakemake itself only says ``MissingRuleException: No rule to produce results/waterbird/eval.json``. The
workflow checks the command line's targets once its rules are defined (``check_targets`` in
rules/common.smk) and, for each target that no rule makes, says whether its dataset (the run folder) is
unknown, listing the config's datasets, or its file, listing the artifacts of a run (:data:`ddb.paths.ARTIFACTS`).
"""

from __future__ import annotations

import difflib
import posixpath
import re
import sys
from collections.abc import Iterable

from .errors import DDBError
from .paths import ARTIFACTS

# Snakemake options that plan no job: the data are not needed (`--unlock` after a crash, `--lint`, ...).
NON_PLANNING_OPTIONS = ("lint", "unlock", "list_rules", "list_target_rules", "cleanup_metadata", "cleanup_shadow",
                        "print_compilation", "list_conda_envs", "conda_cleanup_envs", "containerize", "report",
                        "archive", "list_untracked", "delete_all_output", "delete_temp_output")

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


def snakemake_targets() -> list[str] | None:
    """The targets given on Snakemake's command line (empty for the default rule); None where no check is
    due or none can be made: not run from the command line (the API), a cluster job (its main process
    checked), an option that plans no job. They are the arguments that ``snakemake.cli.args_to_api(args,
    parser)``, which reads the Snakefile, was given: the profile's settings applied, as Snakemake reads them."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "args_to_api" and frame.f_globals.get("__name__") == "snakemake.cli":
            args = frame.f_locals.get("args")
            if args is None or getattr(args, "target_jobs", None):
                return None
            if any(getattr(args, option, None) for option in NON_PLANNING_OPTIONS):
                return None
            return [str(target) for target in (getattr(args, "targets", None) or [])]
        frame = frame.f_back
    return None
