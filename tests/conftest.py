"""Shared fixtures: a reduced demo workflow run once per session, and a way to run Snakemake's CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from ddb.paths import RunPaths, artifact_path  # noqa: E402

# The demo, shrunk so the whole DAG (24 jobs) runs in about a minute on 2 CPU cores.
SMALL_DEMO = {
    "format": "synthetic",
    "root": "synthetic",  # drawn into results/demo/data/synthetic (under the `results` folder)
    "synthetic": {"n_train": 240, "n_val_per_group": 8, "n_test_per_group": 10, "image_size": 32},
    "classifier": {"arch": "tiny", "weights": None, "image_size": 32},
    "erm": {"epochs": 2, "batch_size": 32, "lr": 0.01, "optimizer": "sgd", "augment": False},
    "textual_inversion": {"model": "tiny", "num_images": 3, "steps": 3, "batch_size": 2, "resolution": 32,
                          "initializer_token": "bird", "templates": ["a photo of a {} bird"]},
    "low_loss": {"k": 10},
    "masking": {"masker": "files", "batch_size": 8},
    "generation": {"images_per_shard": 3, "max_sources_per_class": 6},  # 2 shards of 3 sources per class
    "inpainting": {"model": "tiny", "steps": 2, "resolution": 32, "prompt": "a photo of a {} bird", "batch_size": 4},
    "ig": {"n_steps": 4, "internal_batch_size": 32, "batch_size": 8},
    "prune": {"thresholds": [0.0, 0.0]},
    "retrain": {"epochs": 2, "batch_size": 32, "generated_batch_size": 4, "lr": 0.0005, "augment": False},
}


def random_images(sizes, seed: int = 0) -> list:
    """Seeded RGB noise images of the given (height, width) sizes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for height, width in sizes]


def small_config(**dataset_overrides) -> dict:
    demo = {**SMALL_DEMO, **dataset_overrides}
    return {"seed": 0, "targets": ["demo"], "datasets": {"demo": demo}}


def run_paths(workdir: Path, run: str = "demo") -> RunPaths:
    """The artifacts of ``run`` in a workflow directory (results/<run>/), by their ddb.paths names."""
    return RunPaths(Path(workdir) / "results" / run)


def target(name: str, run: str = "demo", **wildcards) -> str:
    """Artifact ``name`` of ``run`` as a Snakemake target, relative to the workflow directory."""
    return artifact_path("results", run, name, **wildcards).as_posix()


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the `snakemake` CLI on this repo's Snakefile inside ``workdir`` (as a user would)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Job counts per rule that `snakemake -n` would run."""
    result = run_snakemake(workdir, "-n", "--quiet", "rules", *args)
    counts = {}
    lines = (result.stdout + result.stderr).splitlines()
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A finished run of the reduced demo; tests that change it must copy it first (``demo_copy``)."""
    workdir = tmp_path_factory.mktemp("demo_run")
    write_config(workdir, small_config())
    result = run_snakemake(workdir, "--cores", "2")
    (workdir / "snakemake.out").write_text(result.stdout + result.stderr)
    return workdir


@pytest.fixture
def demo_copy(demo_run, tmp_path) -> Path:
    """A private copy of the finished demo run (results, logs and Snakemake's metadata, mtimes kept)."""
    target = tmp_path / "run"
    shutil.copytree(demo_run, target, symlinks=True)
    return target


# ---- a rule script run in-process, with what Snakemake would give it


@pytest.fixture
def in_process_step(monkeypatch):
    """run_step is made for a one-job process: it redirects these, sets up logging, torch's threads and a
    SIGTERM handler; put them back after."""
    import logging

    import torch

    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    monkeypatch.setattr(logging.getLogger("ddb"), "handlers", list(logging.getLogger("ddb").handlers))
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGTERM)
    yield
    torch.set_num_threads(threads)
    assert signal.getsignal(signal.SIGTERM) == handler  # run_step put it back itself
    signal.signal(signal.SIGTERM, handler)


class Params(list):
    """What Snakemake gives a script as ``snakemake.params``: a list with names."""

    def __init__(self, **named):
        super().__init__(named.values())
        self.__dict__.update(named)


class Wildcards(dict):
    def __getattr__(self, name):
        return self[name]


def fake_snakemake(tmp_path: Path, rule: str = "step", **fields) -> SimpleNamespace:
    return SimpleNamespace(**{"log": [str(tmp_path / "logs" / f"{rule}.log")], "threads": 1,
                              "resources": SimpleNamespace(), "input": [], "params": Params(),
                              "wildcards": Wildcards(), "rule": rule, **fields})
