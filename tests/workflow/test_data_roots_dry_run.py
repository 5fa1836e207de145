"""A dry run of a target whose dataset root is missing stops before planning, through the `slurm` profile too,
while the default demo run is unaffected by a missing dataset it does not build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO, run_snakemake, small_config, target, write_config
from test_datasets_roots import WATERBIRDS_SOURCE


def config_with_missing_waterbirds(workdir: Path) -> Path:
    root = workdir / "data" / "waterbird_complete95_forest2water2"
    config = small_config()
    config["datasets"]["waterbirds"] = {"format": "waterbirds", "root": str(root)}
    write_config(workdir, config)
    return root


def test_a_dry_run_of_a_dataset_without_data_stops_before_planning(tmp_path):
    root = config_with_missing_waterbirds(tmp_path)
    result = run_snakemake(tmp_path, "-n", target("eval_json", "waterbirds"), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{root}: the dataset root does not exist (datasets.waterbirds.root)" in output, output[-3000:]
    assert WATERBIRDS_SOURCE in output and 'docs/datasets.md, "Waterbirds"' in output
    assert "Building DAG of jobs" not in output and "prepare_dataset" not in output


def test_the_demo_dry_run_ignores_a_missing_dataset_it_does_not_build(tmp_path):
    config_with_missing_waterbirds(tmp_path)
    result = run_snakemake(tmp_path, "-n")
    output = result.stdout + result.stderr
    assert "This was a dry-run" in output and "waterbirds" not in output


def test_the_slurm_profile_dry_run_stops_the_same_way(tmp_path):
    """``snakemake --profile slurm -n`` needs no SLURM command: the check runs while the Snakefile is read."""
    from helpers import cluster_env

    run_dir = tmp_path / "run"
    shutil.copytree(REPO / "slurm", run_dir / "slurm")
    root = config_with_missing_waterbirds(run_dir)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile", "slurm",
               "-n", "--", target("eval_json", "waterbirds")]
    env = cluster_env(DDB_SLURM_ACCOUNT="none", DDB_SLURM_PARTITION="debug")
    result = subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{root}: the dataset root does not exist (datasets.waterbirds.root)" in output, output[-3000:]
    assert "Building DAG of jobs" not in output and "prepare_dataset" not in output
