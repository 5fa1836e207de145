"""Hardening for shared clusters, through Snakemake: the import path of rule scripts, reruns on changed data,
warnings on the terminal, conda environments, logs under the results folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, planned_jobs, run_snakemake, small_config, write_config
from test_hardening import waterbirds_tree


def snakemake_without_pythonpath(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI as a user starts it: no PYTHONPATH of its own, launched from another folder."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir.parent, timeout=600)


def test_stray_module_in_the_working_directory_is_never_imported(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    write_config(workdir, small_config())
    for name in ("pandas", "yaml", "numpy"):
        (workdir / f"{name}.py").write_text(f"raise ImportError('{name}.py of the working directory was imported')\n")
    result = snakemake_without_pythonpath(workdir, "--cores", "1", "results/demo/data/manifest.parquet")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "of the working directory was imported" not in output
    assert (workdir / "results/demo/data/manifest.parquet").exists()

WATERBIRDS_MODELS = {  # tiny models: only prepare_dataset and train_erm run here
    "classifier": {"arch": "tiny", "weights": None, "image_size": 32},
    "erm": {"epochs": 1, "batch_size": 8, "lr": 0.01, "augment": False},
    "textual_inversion": {"model": "tiny", "num_images": 2, "steps": 2, "batch_size": 2, "resolution": 32},
    "masking": {"masker": "files", "batch_size": 4},
    "inpainting": {"model": "tiny", "steps": 2, "resolution": 32, "batch_size": 4},
    "generation": {"images_per_shard": 1000},  # one shard per class
}

ERM = {"train_erm": {"threads": 1}}


@pytest.fixture(scope="module")
def waterbirds_run(tmp_path_factory) -> Path:
    """Two Waterbirds datasets, prepared and trained (ERM) for real: `wb` with CUB segmentations, `other`
    without. Tests restore what they change, so each starts from a finished run."""
    workdir = tmp_path_factory.mktemp("waterbirds_run")
    datasets = {}
    for name, segmentations in (("wb", True), ("other", False)):
        root = workdir / "data" / name / "waterbird_complete95_forest2water2"
        waterbirds_tree(root, segmentations)
        datasets[name] = {"format": "waterbirds", "root": str(root.relative_to(workdir)), **WATERBIRDS_MODELS,
                          "low_loss": {"k": [10, 2]}}
    write_config(workdir, {"seed": 0, "targets": ["wb", "other"], "resources": {"rules": ERM}, "datasets": datasets})
    result = run_snakemake(workdir, "--cores", "2", "results/wb/erm/model.pt", "results/other/erm/model.pt")
    (workdir / "snakemake.out").write_text(result.stdout + result.stderr)
    return workdir

TARGETS = ("--", "results/wb/erm/model.pt", "results/other/erm/model.pt")  # after options taking lists

RERUN_WB = {"prepare_dataset": 1, "train_erm": 1}


def dry_run(workdir: Path, *args: str) -> str:
    result = run_snakemake(workdir, "-n", *args, *TARGETS)
    return result.stdout + result.stderr


def test_finished_waterbirds_run_plans_nothing_and_keeps_its_logs_under_results(waterbirds_run):
    assert planned_jobs(waterbirds_run, *TARGETS) == {}
    assert (waterbirds_run / "results/logs/prepare_dataset/wb.log").exists()
    assert (waterbirds_run / "results/logs/train_erm/other.log").exists()
    assert not (waterbirds_run / "logs").exists()


def test_small_class_is_warned_on_the_terminal(waterbirds_run):
    terminal = (waterbirds_run / "snakemake.out").read_text()
    assert ("dataset 'wb': class 'landbird' has 4 training images, fewer than its K = 10 (low_loss.k)"
            in terminal)
    assert "set datasets.wb.low_loss.k to [4, 2]" in terminal
    assert "class 'waterbird' has" not in terminal  # 3 training images, K = 2


@pytest.fixture
def restore(waterbirds_run):
    """Put back every file of the data folder as it was (bytes and times) after the test."""
    import shutil

    data = waterbirds_run / "data"
    saved = waterbirds_run.parent / f"{waterbirds_run.name}-data-copy"
    shutil.copytree(data, saved, copy_function=shutil.copy2)
    yield data
    shutil.rmtree(data)
    shutil.copytree(saved, data, copy_function=shutil.copy2)
    shutil.rmtree(saved)
    assert planned_jobs(waterbirds_run, *TARGETS) == {}


def test_edited_metadata_reruns_prepare_dataset_and_its_descendants_only(waterbirds_run, restore):
    from test_datasets import edit_metadata

    metadata = restore / "wb/waterbird_complete95_forest2water2/metadata.csv"
    edit_metadata(metadata.parent, 2, "place", 1)  # a label fixed in metadata.csv
    assert planned_jobs(waterbirds_run, "--rerun-triggers", "mtime", *TARGETS) == RERUN_WB
    assert planned_jobs(waterbirds_run, *TARGETS) == RERUN_WB  # every trigger: the same, `other` untouched
    assert f"Updated input files: {metadata.relative_to(waterbirds_run)}" in dry_run(waterbirds_run)


def test_metadata_put_back_with_an_older_time_reruns_too(waterbirds_run, restore):
    """Re-extracting from an archive restores the archived (older) time: no input is newer than the
    manifest, but the size and time of each source are a param of prepare_dataset."""
    from test_datasets import edit_metadata

    metadata = restore / "wb/waterbird_complete95_forest2water2/metadata.csv"
    before = metadata.stat()
    edit_metadata(metadata.parent, 3, "y", 0)
    os.utime(metadata, ns=(before.st_atime_ns, before.st_mtime_ns - 10**12))  # 1000 s older
    assert planned_jobs(waterbirds_run, "--rerun-triggers", "mtime", *TARGETS) == {}  # mtime alone misses it
    assert planned_jobs(waterbirds_run, *TARGETS) == RERUN_WB


def test_replaced_segmentations_folder_reruns_prepare_dataset(waterbirds_run, restore):
    import shutil

    folder = restore / "wb/waterbird_complete95_forest2water2"
    from test_datasets import write_image

    shutil.rmtree(folder / "segmentations")
    for image in sorted(folder.rglob("*.jpg")):  # the masks extracted anew (other pixels)
        write_image(folder / "segmentations" / image.relative_to(folder).with_suffix(".png"), shade=5)
    assert planned_jobs(waterbirds_run, *TARGETS) == RERUN_WB


def test_drawn_demo_and_logs_follow_the_results_folder(tmp_path):
    from ddb.config import validate_config

    def root(**top):
        return validate_config({**small_config(), **top})["datasets"]["demo"]["root"]

    assert root() == "results/demo/data/synthetic"
    assert root(results="other") == "other/demo/data/synthetic"
    assert root(results=str(tmp_path / "r")) == str(tmp_path / "r/demo/data/synthetic")
    resolved = validate_config({**small_config(), "results": "other"})
    assert validate_config(resolved)["datasets"]["demo"]["root"] == "other/demo/data/synthetic"  # idempotent
    assert root(results="other", seed=1) != root(seed=1)

    write_config(tmp_path, {**small_config(), "results": "other"})
    output = run_snakemake(tmp_path, "-n", "other/demo/data/manifest.parquet")
    assert "log: other/logs/prepare_dataset/demo.log" in output.stdout + output.stderr

STUB_CONDA = """#!/bin/sh
# Stands in for conda (not installed here, and no network): answers the questions Snakemake asks before it
# would create an environment, and refuses everything else, so nothing can be created or run.
case "$*" in
  "info --json") printf '{"conda_prefix": "%s", "platform": "linux-64"}\\n' "$STUB_CONDA_PREFIX";;
  "--version") echo "conda 24.11.3";;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}';;
  *) echo "stub conda: refused: $*" >&2; exit 1;;
esac
"""


def test_every_rule_names_the_conda_environment_and_a_conda_dry_run_plans_it(tmp_path):
    """`snakemake -n --sdm conda` needs a `conda` command even for a dry run (it asks `conda info --json`
    for the prefix); with a stand-in that answers only those questions, the dry run plans every job and
    one environment, envs/ddb.yaml. Snakemake's linter (the workflow catalog's check) names any rule
    without an environment."""
    stub = tmp_path / "bin" / "conda"
    stub.parent.mkdir()
    stub.write_text(STUB_CONDA)
    stub.chmod(0o755)
    workdir = tmp_path / "run"
    workdir.mkdir()
    write_config(workdir, small_config())
    env = {**os.environ, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}", "STUB_CONDA_PREFIX": str(tmp_path),
           "PYTHONPATH": str(REPO / "workflow")}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    result = subprocess.run([*command, "-n", "--sdm", "conda"], capture_output=True, text=True, env=env, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    created = re.findall(r"Conda environment (.+) will be created", output)
    assert [Path(path).resolve() for path in created] == [REPO / "envs" / "ddb.yaml"]
    assert "total                   25" in output

    lint = subprocess.run([*command, "--lint"], capture_output=True, text=True, env=env, timeout=600)
    assert "Lints for rule" not in lint.stdout + lint.stderr  # e.g. "Specify a conda environment"


def test_inspect_refuses_the_logs_folder_and_names_a_dataset(waterbirds_run):
    from ddb.results.reader import NotAResultsFolder, open_results

    with pytest.raises(NotAResultsFolder, match=r"holds the jobs' logs .*, e\.g\. .*results/other"):
        open_results(waterbirds_run / "results" / "logs")
    open_results(waterbirds_run / "results" / "wb")


def test_mask_folder_of_the_files_masker_is_an_input_of_the_mask_rule(tmp_path):
    """masking.mask_dir is read by the mask rule (prepare_dataset never reads it): replacing the folder
    reruns mask and what follows."""
    from helpers import SMALL_DEMO

    (tmp_path / "my_masks").mkdir()
    write_config(tmp_path, small_config(masking={**SMALL_DEMO["masking"], "mask_dir": "my_masks"}))
    output = run_snakemake(tmp_path, "-n", "results/demo/masks/landbird/shard-0.tar")
    job = output.stdout.split("rule mask:")[1].split("rule ")[0]
    assert "input: results/demo/data/manifest.parquet, my_masks" in job
