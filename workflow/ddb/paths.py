"""Where every artifact of a run lies: one name per artifact, one place that says its path.

The rules build their inputs and outputs from :data:`ARTIFACTS` (``rules/common.smk``: ``artifact(name)``,
with Snakemake wildcards), and ``ddb inspect``, the report, the benchmarks and the tests find the files
through :func:`artifact_path` and :class:`RunPaths`, so a folder is renamed or added (tuning candidates,
seeds) in this file alone.

A *run* is one dataset at one seed: its folder is ``<results>/<dataset>`` for the config's ``seed`` and
``<results>/<dataset>/seed-<s>`` for every other seed of the config's ``seeds`` list (:func:`run_name`).
Logs and Snakemake benchmark files lie under ``<results>/logs`` and ``<results>/benchmarks``, by rule.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# artifact -> path inside a run's folder; {cls}, {src}, {dst}, {n} and {cand} are the rules' wildcards
ARTIFACTS = {
    "manifest": "data/manifest.parquet",
    "groups": "data/groups.parquet",
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
    "tune_candidates": "tune/candidates.parquet",
    "tune_selected": "tune/selected.json",
    "eval_json": "eval.json",
    "eval_table": "eval.parquet",
    "report_dir": "report",
    # a dataset's summary over its seeds lies in the folder of the config's seed run
    "seed_summary": "summary.json",
    "seed_summary_table": "summary.parquet",
}

SEED_FOLDER = "seed-{seed}"
_SEED_RUN = re.compile(r"^(?P<dataset>[^/]+)/seed-(?P<seed>\d+)$")


def run_name(dataset: str, seed: int, base_seed: int) -> str:
    """The run of ``dataset`` at ``seed``, as a path below the results folder (and the rules' ``ds``
    wildcard): the dataset itself for the config's seed, ``<dataset>/seed-<seed>`` for another one."""
    return dataset if int(seed) == int(base_seed) else f"{dataset}/{SEED_FOLDER.format(seed=int(seed))}"


def split_run(run: str) -> tuple[str, int | None]:
    """(dataset, seed) of a run name; seed None for the config's own seed run."""
    match = _SEED_RUN.match(run)
    return (match["dataset"], int(match["seed"])) if match else (run, None)


def artifact_path(results: str | os.PathLike, run: str, name: str, **wildcards) -> Path:
    """The file (or folder) ``name`` of ``run`` under ``results``, its wildcards filled in."""
    return Path(results) / run / ARTIFACTS[name].format(**wildcards)


class RunPaths:
    """The artifacts of one run folder (``<results>/<run>``), by name: ``RunPaths(folder).path("psi")``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, name: str, **wildcards) -> Path:
        return self.root / ARTIFACTS[name].format(**wildcards)

    def folder(self, name: str, **wildcards) -> Path:
        """The folder that holds artifact ``name`` (its wildcards left out where the file name holds them)."""
        return self.path(name, **{"n": 0, **wildcards}).parent
