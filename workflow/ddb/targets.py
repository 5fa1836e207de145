"""The targets of the workflow: what the `all` rule and the aggregating rules build, and a target of the
`snakemake` command line that no rule makes, named with what exists.

The `all` rule lists eval.json of each of the config's target datasets (:func:`all_targets`) and every
artifact of their steps (:func:`step_wildcard_values` gives ``rules/common.smk`` each rule's wildcard values,
which it expands with the rule's outputs), so a lost intermediate file is rebuilt.

Snakemake 9 hands its DAG settings, targets included, to the workflow only after reading the Snakefile, so
the checks that must stop a run before it is planned (a missing dataset root, ddb.datasets.roots; a
mistyped target) read them from the command line's own arguments (:func:`snakemake_targets`).

Snakemake itself only says ``MissingRuleException: No rule to produce results/waterbird/eval.json``. The
workflow checks the command line's targets once its rules are defined (:func:`check_command_line_targets`,
called from rules/common.smk) and, for each target that no rule makes, says whether its dataset (the run
folder) is unknown, listing the config's datasets, or its file, listing the artifacts of a run
(:data:`ddb.paths.ARTIFACTS`).
"""

from __future__ import annotations

import difflib
import os
import posixpath
import re
import sys
from collections.abc import Callable, Iterable, Mapping

from .errors import DDBError
from .paths import ARTIFACTS, artifact_path, results_artifact_path

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


def check_command_line_targets(targets: Iterable[str], *, is_rule: Callable[[str], bool],
                               producible: Callable[[str], bool], results: str, datasets: Mapping[str, dict]) -> None:
    """Raise :class:`DDBError` naming each of the command line's ``targets`` that is a file no rule makes
    (``producible``) and that does not exist (a mistyped dataset or artifact); ``datasets`` maps each run to
    its dataset entry. Rule names (``is_rule``) are no files."""
    files = [t for t in targets if not is_rule(t) and not os.path.exists(t)]
    classes = {run: entry["classes"] for run, entry in datasets.items()}
    check_targets(files, producible, results, datasets, classes)


def paper_table_adds_value(targets: Iterable[str], datasets: Mapping[str, dict]) -> bool:
    """Whether plain `snakemake` (the `all` target) builds the table across datasets. It does where the table
    says more than the run's closing tables: over two or more target datasets, or beside a dataset whose
    format the paper reports figures for. `snakemake paper_table` builds it in any case."""
    from .paper_table import PUBLISHED_WGA

    targets = list(targets)
    return len(targets) > 1 or any(datasets[ds]["format"] in PUBLISHED_WGA for ds in targets)


def all_targets(results: str, targets: Iterable[str], datasets: Mapping[str, dict], seeds: bool) -> list[str]:
    """eval.json of each target dataset, and with ``seeds`` (the config's `seeds` set) its summary over the
    seeds (which needs every seed's eval.json); the table across datasets where it adds value."""
    targets = list(targets)
    files = [str(artifact_path(results, ds, "eval_json")) for ds in targets]
    if seeds:
        files += [str(artifact_path(results, ds, "seed_summary")) for ds in targets]
    if paper_table_adds_value(targets, datasets):
        files += [str(results_artifact_path(results, "paper_table")), str(results_artifact_path(results, "paper_table_csv"))]
    return files


def paper_table_reports(results: str, targets: Iterable[str], seeds: bool) -> list[str]:
    """What the table across datasets reads: each target's summary over its seeds (with ``seeds``), else its
    eval.json."""
    name = "seed_summary" if seeds else "eval_json"
    return [str(artifact_path(results, ds, name)) for ds in targets]


def tune_reports(results: str, targets: Iterable[str], datasets: Mapping[str, dict]) -> list[str]:
    """report/tune.html of each tuned target (visualize_all)."""
    from .steps import tuned

    return [str(artifact_path(results, ds, "report_tune_html")) for ds in targets if tuned(datasets[ds])]


def wildcard_values(entry: dict, names: Iterable[str]) -> list[dict]:
    """Every combination of the wildcards ``names`` (of a rule's outputs) for a run of dataset ``entry``:
    candidates, classes, class pairs (or the source classes alone), and each source class's shards."""
    from .runs import classes_of, pairs_of, shards_of, source_classes

    names = list(names)
    combinations = [{}]
    if "cand" in names:
        from .tuning import candidate_names

        combinations = [{"cand": cand} for cand in candidate_names(entry)]
    if "cls" in names:
        combinations = [{**c, "cls": cls} for c in combinations for cls in classes_of(entry)]
    if "dst" in names:
        combinations = [{**c, "src": src, "dst": dst} for c in combinations for src, dst in pairs_of(entry)]
    elif "src" in names:
        combinations = [{**c, "src": src} for c in combinations for src in source_classes(entry)]
    if "n" in names:
        combinations = [{**c, "n": n} for c in combinations for n in shards_of(entry, c["src"])]
    unknown = set(names) - {"cand", "cls", "src", "dst", "n"}
    if unknown:
        raise DDBError("ddb.steps", f"no values for wildcard(s) {', '.join(sorted(unknown))} in the `all` rule",
                       "give them their values in ddb.targets.wildcard_values")
    return combinations


def step_wildcard_values(targets: Iterable[str], datasets: Mapping[str, dict]) -> list[tuple[str, str, list[dict]]]:
    """(run, rule, wildcard values) of every rule whose outputs the `all` rule lists for the ``targets``: each
    rule ddb.steps marks `in_all`, where the dataset needs it. Snakemake rebuilds a missing intermediate file
    only when a job that reads it has to run anyway, so without them a deleted or lost one (an inpaint shard,
    a mask shard, a model) would not be redone while eval.json is up to date. Listed, it is rebuilt with what
    depends on it, nothing upstream."""
    from .steps import STEPS

    found = []
    for ds in targets:
        for step in STEPS:
            for rule in step.rules:
                if rule.in_all and rule.runs != "seed" and rule.needed_for(datasets[ds]):
                    found.append((ds, rule.name, wildcard_values(datasets[ds], rule.wildcards)))
    return found
