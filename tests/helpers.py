"""What the tests share besides fixtures: the reduced demo's config, its artifacts' paths and targets, and a
way to run Snakemake's CLI. Imported as `helpers` (pyproject puts tests/ on the import path)."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import sys
from pathlib import Path
from types import SimpleNamespace

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


@functools.lru_cache(maxsize=1)
def _small_entry() -> dict:
    from ddb.config import validate_config

    with tempfile.TemporaryDirectory() as folder:  # validation resolves the drawn root under `results`
        return validate_config({**small_config(), "results": folder})["datasets"]["demo"]


def settings_of(section: str, **values):
    """Config section ``section``'s typed settings (ddb.settings) for a step called directly: the reduced
    demo's validated section, with ``values`` in place."""
    from ddb.settings import SECTIONS, section_settings

    return section_settings(SECTIONS[section], {**_small_entry()[section], **values}, section)


def small_settings(**sections):
    """The reduced demo's typed settings (ddb.settings.DatasetSettings), each of ``sections`` (a dict of
    values) in place of the validated section's values."""
    from ddb.settings import dataset_settings

    entry = _small_entry()
    return dataset_settings({**entry, **{name: {**entry[name], **values} for name, values in sections.items()}},
                            "demo")


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


# The test's environment without SLURM: a `snakemake --profile slurm` dry run then checks the profile and
# submits nothing.
SLURM_VARIABLES = ("DDB_SLURM_ACCOUNT", "DDB_SLURM_PARTITION", "DDB_SLURM_GPU_PARTITION", "SBATCH_ACCOUNT",
                   "SBATCH_PARTITION")
SLURM_COMMANDS = ("sbatch", "sinfo", "sacct", "squeue", "scontrol", "sacctmgr")


@functools.lru_cache(maxsize=None)
def without_slurm(directory: str) -> str:
    """``directory`` itself, or where it holds SLURM commands (Debian's slurm-client puts them in /usr/bin,
    beside everything else) a copy of it made of links to all its other entries."""
    if not any(Path(directory, command).exists() for command in SLURM_COMMANDS):
        return directory
    shadow = Path(tempfile.mkdtemp(prefix="path-without-slurm-"))
    for entry in Path(directory).iterdir():
        if entry.name not in SLURM_COMMANDS:
            (shadow / entry.name).symlink_to(entry)
    return str(shadow)


def cluster_env(**variables: str) -> dict:
    """The test's environment without any SLURM setting or command, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if k not in SLURM_VARIABLES}
    path = [without_slurm(d) for d in env.get("PATH", "").split(os.pathsep) if d]
    env["PATH"] = os.pathsep.join(path)
    env["PYTHONPATH"] = str(REPO / "workflow")
    return {**env, **variables}


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module, to call its functions."""
    import importlib.util

    sys.path.insert(0, str(REPO / "workflow"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


# ---- what Snakemake gives a rule script run in-process (with conftest's in_process_step fixture)


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
