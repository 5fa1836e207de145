"""Helpers of the reliability tests (determinism, staleness, resume, bad input): checksums of a run's
artifacts, comparisons that ignore Parquet's metadata bytes, and a private copy of the workflow code."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
_IGNORED_AT_TOP = shutil.ignore_patterns(".git", "results", "logs", ".snakemake", ".pytest_cache", "tests", "benchmarks",
                                        "data", "build")
_IGNORED_EVERYWHERE = shutil.ignore_patterns("__pycache__", "*.egg-info")


def COPY_IGNORE(folder: str, names: list[str]) -> set[str]:
    """What a copy of the workflow leaves out: the checkout's own results, logs, tests and the like at its top
    only (the package has a `results` subpackage of its own), caches everywhere."""
    ignored = _IGNORED_EVERYWHERE(folder, names)
    if Path(folder).resolve() == REPO.resolve():
        ignored |= _IGNORED_AT_TOP(folder, names)
    return ignored


# Job records in the results folder, not artifacts: every job that runs (or fails) writes its own log and
# benchmark (timings), so they differ between runs that give the same artifacts.
JOB_RECORDS = ("logs", "benchmarks")


def is_job_record(path: Path, results: Path) -> bool:
    return any(results / folder in path.parents for folder in JOB_RECORDS)


def snapshot(workdir: Path, folder: str = "results") -> dict[str, str]:
    """sha256 of every file under ``workdir/folder``, by relative path; not the jobs' logs and benchmarks."""
    root = workdir / folder
    return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not is_job_record(p, root)}


def changed_files(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    return {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
            "modified": sorted(k for k in set(before) & set(after) if before[k] != after[k])}


def assert_same_artifact(a: Path, b: Path) -> None:
    """Parquet: equal tables (its footer names library versions, not content); anything else: equal bytes."""
    assert a.exists() and b.exists(), (a, b)
    if a.suffix == ".parquet":
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), check_exact=True, obj=str(a))
    else:
        assert a.read_bytes() == b.read_bytes(), f"{a} and {b} differ"


def artifacts(workdir: Path, results: str = "results") -> list[str]:
    """Paths of the run's artifacts relative to its results folder (no temporary or checkpoint files, no
    logs or benchmarks)."""
    root = workdir / results
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and ".partial" not in str(p)
                  and not is_job_record(p, root))


def copy_workflow(target: Path) -> Path:
    """A copy of the workflow's code (Snakefile, rules, scripts, package), modification times kept, so a
    test can edit a script or a module without touching the repository. Returns the copied Snakefile."""
    shutil.copytree(REPO, target, ignore=COPY_IGNORE, symlinks=True)
    return target / "Snakefile"


def snakemake(snakefile: Path, workdir: Path, *args: str, check: bool = True, timeout: int = 900,
              **popen) -> subprocess.CompletedProcess:
    """The `snakemake` CLI with ``snakefile`` (a copied workflow) inside ``workdir``."""
    env = {**os.environ, "PYTHONPATH": str(snakefile.parent / "workflow")}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, **popen)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def planned(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts per rule from the output of `snakemake -n --quiet rules` (as helpers.planned_jobs)."""
    counts = {}
    for line in (result.stdout + result.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def make_generation(workdir: Path, n_sources: int = 5) -> dict:
    """A small drawn dataset (32 px), masks of ``n_sources`` landbird sources and the tiny inpainting
    pipeline: what an `inpaint` shard needs, built in-process in seconds."""
    from dataclasses import replace

    from helpers import small_config

    from ddb.config import validate_config
    from ddb.datasets import build_manifest
    from ddb.masking import generation_sources, make_masker, mask_shard
    from ddb.models.diffusion import load_inpaint_pipeline
    from ddb.settings import dataset_settings

    config = validate_config(small_config(synthetic={"n_train": 40, "n_val_per_group": 1, "n_test_per_group": 1,
                                                     "image_size": 32}))
    cfg = config["datasets"]["demo"]
    cfg["root"] = str(workdir / "synthetic")
    manifest = build_manifest("demo", cfg, seed=0, workdir=workdir)
    settings = dataset_settings(cfg, "demo")
    rows = generation_sources(manifest, 0, replace(settings.generation, max_sources_per_class=n_sources), seed=0)
    masker = make_masker(settings.masking, seed=0, device="cpu")
    mask_index = mask_shard(rows, masker, settings.masking, workdir / "masks.tar", workdir / "masks.parquet")
    return {"rows": rows, "mask_index": mask_index, "masks": workdir / "masks.tar", "masker": masker,
            "pipeline": load_inpaint_pipeline("tiny", seed=0), "cfg": cfg, "settings": settings}


def inpaint(generation: dict, pipeline, folder: Path, rows=None, mask_index=None, masks=None,
            batch_size: int = 2, fingerprint: str | None = None):
    """``inpaint_shard`` of ``rows`` (default: every source) into ``folder/shard.tar``, as the job of
    ``fingerprint`` (None: no job, checkpoints of any kept)."""
    from helpers import settings_of

    from ddb.inpainting import inpaint_shard
    from ddb.storage.shards import ImageShard

    return inpaint_shard(pipeline, generation["rows"] if rows is None else rows,
                         ImageShard(masks or generation["masks"]),
                         generation["mask_index"] if mask_index is None else mask_index,
                         source_y=0, target_y=1, target_class="waterbird", prompt="a photo of a <waterbird> bird",
                         inpainting=settings_of("inpainting", **{**generation["cfg"]["inpainting"],
                                                                  "batch_size": batch_size}), seed=0,
                         tar_path=folder / "shard.tar", index_path=folder / "shard.parquet", fingerprint=fingerprint)


@pytest.fixture
def one_torch_thread():
    """In-process generation with one torch thread: this test process's OpenMP threads spin while they
    wait (the workflow's jobs get OMP_WAIT_POLICY=PASSIVE, a process that has loaded torch cannot), which
    on a busy machine made these tests ~50x slower. Results here never depend on the thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
