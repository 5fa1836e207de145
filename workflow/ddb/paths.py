"""Where every artifact of a run lies: one name per artifact, one place that says its path.

The rules build their inputs and outputs from :data:`ARTIFACTS` (``rules/common.smk``: ``artifact(name)``,
with Snakemake wildcards), and ``ddb inspect``, the report, the benchmarks and the tests find the files
through :func:`artifact_path` and :class:`RunPaths`, so a folder is renamed or added (tuning candidates,
seeds) in this file alone.

A *run* is one dataset at one seed: its folder is ``<results>/<dataset>`` for the config's ``seed`` and
``<results>/<dataset>/seed-<s>`` for every other seed of the config's ``seeds`` list (:func:`run_name`).
Logs and Snakemake benchmark files lie under ``<results>/logs`` and ``<results>/benchmarks``, by rule.
A few artifacts belong to no run but to the results folder as a whole: the table across datasets
(:data:`RESULTS_ARTIFACTS`) and the records of the hub models the runs load, under ``<results>/models``
(:data:`MODEL_RECORD`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# artifact -> path inside a run's folder; {cls}, {src}, {dst}, {n} and {cand} are the rules' wildcards,
# {pair} ("<src>_to_<dst>") names the report's grid files
ARTIFACTS = {
    "manifest": "data/manifest.parquet",
    "groups": "data/groups.parquet",
    "dataset_root": "data/root.txt",  # the dataset root the manifest was drawn from (prepare_dataset)
    "erm_model": "erm/model.pt",
    "erm_history": "erm/history.parquet",
    "low_loss": "low_loss/{cls}.parquet",
    "psi": "psi.parquet",
    "ti_embeds": "textual_inversion/{cls}/learned_embeds.safetensors",
    "ti_samples": "textual_inversion/{cls}/samples.parquet",
    "ti_loss": "textual_inversion/{cls}/loss.parquet",
    "mask_tar": "masks/{src}/shard-{n}.tar",
    "mask_index": "masks/{src}/shard-{n}.parquet",
    "inpaint_tar": "inpaint/{src}_to_{dst}/shard-{n}.tar",
    "inpaint_index": "inpaint/{src}_to_{dst}/shard-{n}.parquet",
    "ig_scores": "ig/{src}_to_{dst}/shard-{n}.parquet",
    "prune": "prune/{src}_to_{dst}.parquet",
    "retrain_model": "retrain/model.pt",
    "retrain_history": "retrain/history.parquet",
    "dfr_model": "dfr/model.pt",
    "dfr_selection": "dfr/selection.parquet",
    "dfr_halves": "dfr/halves.parquet",
    "dfr_coefficients": "dfr/coefficients.parquet",
    "dfr_features": "dfr/features.parquet",
    "tune_prune": "tune/{cand}/prune/{src}_to_{dst}.parquet",
    "tune_model": "tune/{cand}/retrain/model.pt",
    "tune_history": "tune/{cand}/retrain/history.parquet",
    "tune_candidate_dir": "tune/{cand}",
    "tune_candidates": "tune/candidates.parquet",
    "tune_selected": "tune/selected.json",
    "eval_json": "eval.json",
    "eval_table": "eval.parquet",
    # the report (rules/report.smk, rules/tune.smk): tables, curves and grids a person opens first
    "report_dir": "report",
    "report_eval_html": "report/eval.html",
    "report_eval_csv": "report/eval.csv",
    "report_retrain_curves": "report/retrain_curves.png",
    "report_prune_html": "report/prune.html",
    "report_prune_csv": "report/prune_counts.csv",
    "report_kept_vs_pruned": "report/kept_vs_pruned/{pair}.png",
    "report_pairs": "report/pairs/{pair}.png",
    "report_psi_html": "report/psi.html",
    "report_psi_csv": "report/psi.csv",
    "report_ti_curve": "report/textual_inversion_loss.png",
    "report_grid_samples": "report/grid_samples.csv",
    "report_tune_html": "report/tune.html",
    "report_tune_csv": "report/tune.csv",
    # a dataset's summary over its seeds lies in the folder of the config's seed run
    "seed_summary": "summary.json",
    "seed_summary_table": "summary.parquet",
}

# artifact -> path inside the results folder itself, for what spans every target dataset (rules/summary.smk).
# Dataset names are identifiers, so a file name with a dot never collides with a run's folder.
RESULTS_ARTIFACTS = {
    "paper_table": "paper_table.md",
    "paper_table_csv": "paper_table.csv",
}
# What the fetch_model job (rules/models.smk, ddb.models.fetching) records of each hub model the runs load: one
# file per model directly under the results folder, shared by every run that loads it
MODEL_RECORD = "models/{model}.json"
# held by the one Snakemake run working on a results folder (ddb.storage.locks.take_run_lock); no artifact
RUN_LOCK = ".ddb-run.lock"

# DDB's own prune tables and model: with a `tune` section, those of the selected candidate (ddb.tuning)
TUNED_ARTIFACTS = {"prune": "tune_prune", "retrain_model": "tune_model", "retrain_history": "tune_history"}

SEED_FOLDER = "seed-{seed}"
_SEED_FOLDER = SEED_FOLDER.format(seed=r"(?P<seed>\d+)")  # SEED_FOLDER as a regex
_SEED_RUN = re.compile(rf"^(?P<dataset>[^/]+)/{_SEED_FOLDER}$")
_WILDCARD = re.compile(r"\{(\w+)\}")


def run_name(dataset: str, seed: int, base_seed: int) -> str:
    """The run of ``dataset`` at ``seed``, as a path below the results folder (and the rules' ``ds``
    wildcard): the dataset itself for the config's seed, ``<dataset>/seed-<seed>`` for another one."""
    return dataset if int(seed) == int(base_seed) else f"{dataset}/{SEED_FOLDER.format(seed=int(seed))}"


def run_of_folder(folder: str | os.PathLike) -> str:
    """The run a run folder holds, read from its path: ``demo`` for results/demo, ``demo/seed-1`` for
    results/demo/seed-1 (a dataset name is an identifier, so it never looks like a seed folder)."""
    folder = Path(folder).resolve()
    if re.fullmatch(_SEED_FOLDER, folder.name):
        return f"{folder.parent.name}/{folder.name}"
    return folder.name


def split_run(run: str) -> tuple[str, int | None]:
    """(dataset, seed) of a run name; seed None for the config's own seed run."""
    match = _SEED_RUN.match(run)
    return (match["dataset"], int(match["seed"])) if match else (run, None)


def artifact_path(results: str | os.PathLike, run: str, name: str, **wildcards) -> Path:
    """The file (or folder) ``name`` of ``run`` under ``results``, its wildcards filled in."""
    return Path(results) / run / ARTIFACTS[name].format(**wildcards)


def results_artifact_path(results: str | os.PathLike, name: str) -> Path:
    """The file ``name`` of :data:`RESULTS_ARTIFACTS` under the results folder ``results``."""
    return Path(results) / RESULTS_ARTIFACTS[name]


def run_lock_path(results: str | os.PathLike) -> Path:
    """The run lock (:data:`RUN_LOCK`) of the results folder ``results``."""
    return Path(results) / RUN_LOCK


def model_record_path(results: str | os.PathLike, name: str) -> Path:
    """The record of hub model ``name`` (ddb.models.fetching.record_name) under ``results``."""
    return Path(results) / MODEL_RECORD.format(model=name)


class RunPaths:
    """The artifacts of one run folder (``<results>/<run>``), by name: ``RunPaths(folder).path("psi")``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, name: str, **wildcards) -> Path:
        return self.root / ARTIFACTS[name].format(**wildcards)

    def folder(self, name: str, **wildcards) -> Path:
        """The folder that holds artifact ``name``: only the wildcards of its folder part are needed
        (``folder("mask_tar", src="landbird")`` is masks/landbird)."""
        return self.root / Path(ARTIFACTS[name]).parent.as_posix().format(**wildcards)

    def ddb_path(self, name: str, candidate: str | None = None, **wildcards) -> Path:
        """DDB's ``prune`` / ``retrain_model`` / ``retrain_history``: the run's own, or with ``candidate``
        (a tuned run's selected candidate) the one under tune/<candidate>/."""
        name, wildcards = _ddb_artifact(name, candidate, wildcards)
        return self.path(name, **wildcards)

    def ddb_find(self, name: str, candidate: str | None = None, **wildcards) -> list[tuple[dict[str, str], Path]]:
        """:meth:`find` for DDB's own artifact ``name`` (see :meth:`ddb_path`)."""
        name, wildcards = _ddb_artifact(name, candidate, wildcards)
        return self.find(name, **wildcards)

    def find(self, name: str, **wildcards) -> list[tuple[dict[str, str], Path]]:
        """The existing files (folders, for a folder artifact) of artifact ``name``, the wildcards not given
        matching anything: ``[({wildcard: value}, path)]``, sorted by those values in the template's order
        (shard numbers as numbers). A wildcard the template does not have is a KeyError."""
        pattern, regex = _template_patterns(name, wildcards)
        is_folder = not Path(ARTIFACTS[name]).suffix  # tune/{cand} must not match tune/selected.json
        found = []
        for path in self.root.glob(pattern):
            if (match := regex.fullmatch(path.relative_to(self.root).as_posix())) and path.is_dir() == is_folder:
                found.append((match.groupdict(), path))
        return sorted(found, key=lambda item: [int(v) if k == "n" else v for k, v in item[0].items()])

    def glob(self, name: str, **wildcards) -> list[Path]:
        """The existing paths of artifact ``name`` (see :meth:`find`)."""
        return [path for _, path in self.find(name, **wildcards)]

    def match(self, name: str, path: str | os.PathLike) -> dict[str, str] | None:
        """The wildcards of ``path`` if it is artifact ``name`` of this run (``{}`` for one without
        wildcards), else None."""
        try:
            relative = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return None
        found = _template_patterns(name, {})[1].fullmatch(relative)
        return found.groupdict() if found else None


def wildcards_of(name: str, path: str | os.PathLike) -> dict[str, str] | None:
    """The wildcards of ``path`` read as artifact ``name`` of whatever run folder it lies in (a rule's
    input, where the run's folder is not at hand); None if the path does not end like the artifact."""
    found = re.search(r"(?:^|/)" + _template_patterns(name, {})[1].pattern + r"$", Path(path).as_posix())
    return found.groupdict() if found else None


def run_folder_of(name: str, path: str | os.PathLike) -> Path:
    """The run folder that holds ``path``, artifact ``name`` of it (a rule's input or output)."""
    if wildcards_of(name, path) is None:
        raise ValueError(f"{path} is not artifact {name!r} ({ARTIFACTS[name]})")
    return Path(path).parents[len(Path(ARTIFACTS[name]).parts) - 1]


def _template_patterns(name: str, wildcards: dict) -> tuple[str, re.Pattern]:
    """A glob pattern and a regex (wildcards as named groups) for artifact ``name``, ``wildcards`` filled in."""
    template = ARTIFACTS[name]
    unknown = set(wildcards) - set(_WILDCARD.findall(template))
    if unknown:
        raise KeyError(f"artifact {name!r} ({template}) has no wildcard {', '.join(sorted(unknown))}")
    pattern, regex, position = "", "", 0
    for match in _WILDCARD.finditer(template):
        literal = template[position:match.start()]
        pattern += _glob_escape(literal)
        regex += re.escape(literal)
        key = match.group(1)
        if key in wildcards:
            pattern += _glob_escape(str(wildcards[key]))
            regex += re.escape(str(wildcards[key]))
        else:
            pattern += "*"
            # a shard number is digits; a class name may hold underscores, so src stops at the first _to_
            regex += rf"(?P<{key}>\d+)" if key == "n" else rf"(?P<{key}>[^/]+?)"
        position = match.end()
    pattern += _glob_escape(template[position:])
    return pattern, re.compile(regex + re.escape(template[position:]))


def report_file(report_dir: str | os.PathLike, name: str, **wildcards) -> Path:
    """Report file ``name`` (a ``report_*`` artifact) inside ``report_dir``, wherever that folder lies."""
    return Path(report_dir) / _in_report(name).format(**wildcards)


def report_folder(report_dir: str | os.PathLike, name: str) -> Path:
    """The folder inside ``report_dir`` that holds report file ``name`` (the grids' pairs/, kept_vs_pruned/)."""
    return Path(report_dir) / Path(_in_report(name)).parent


def _in_report(name: str) -> str:
    return Path(ARTIFACTS[name]).relative_to(ARTIFACTS["report_dir"]).as_posix()


def _ddb_artifact(name: str, candidate: str | None, wildcards: dict) -> tuple[str, dict]:
    if candidate and name in TUNED_ARTIFACTS:
        return TUNED_ARTIFACTS[name], {"cand": candidate, **wildcards}
    return name, wildcards


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)
