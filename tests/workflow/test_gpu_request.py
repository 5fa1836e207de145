"""GPU requests through Snakemake: `resources.gpu_model: null` asks for any GPU, a model name that is not a
string is refused, and a remote-mode job that asked for a GPU but finds no CUDA stops before training."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from ddb.scripting import CLUSTER_JOB_VARIABLE
from helpers import cluster_env
from test_profile import REPO, dry_run, planned_jobs, workdir  # noqa: F401 (fixture)
from test_scripting_gpu import needs_no_cuda


def set_gpu_model(workdir, value):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["resources"] = {"gpu_model": value}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_gpu_model_null_asks_for_any_gpu(workdir):
    utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils")
    set_gpu_model(workdir, None)
    result = dry_run(workdir, cluster_env(DDB_SLURM_ACCOUNT="a", DDB_SLURM_PARTITION="p"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    inpaint = dict(next(r for rule, r in jobs if rule == "inpaint"))
    assert inpaint["gpu"] == "1" and "gpu_model" not in inpaint

    class Job:  # the attribute set_gres_string reads
        def __init__(self, values):
            self.resources = type("Resources", (dict,), {"__getattr__": dict.__getitem__})(values)

    assert utils.set_gres_string(Job({"gpu": 1})).strip() == "--gpus=1"
    # every GPU job of a paper dataset says it may not fall back to the CPU; CPU jobs carry no such resource
    for rule, resources in jobs:
        assert resources.get("cpu_fallback") == ("0" if "gpu" in resources else None), rule


def test_a_gpu_model_name_is_refused_where_it_is_not_a_string(workdir):
    set_gpu_model(workdir, 100)
    result = dry_run(workdir, cluster_env(DDB_SLURM_ACCOUNT="a", DDB_SLURM_PARTITION="p"))
    assert result.returncode != 0
    assert "resources.gpu_model" in result.stdout + result.stderr


@needs_no_cuda
def test_a_remote_mode_job_stops_before_training(workdir):
    """Snakemake runs a cluster job in remote mode (``--mode remote``, as the SLURM job step does): train_erm
    then stops within seconds with the one-line message; prepare_dataset (no GPU) ran first."""
    # no hub weights: their fetch_model job runs on the login node before a cluster job is submitted, never
    # in remote mode (whose jobs run offline)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["waterbirds"].setdefault("classifier", {})["weights"] = None
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--mode", "remote",
               "--cores", "1", "results/waterbirds/erm/model.pt"]
    env = cluster_env()
    env.pop(CLUSTER_JOB_VARIABLE, None)
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ddb: rule train_erm: asked for a GPU, but this cluster job has none" in output
    assert (workdir / "results/waterbirds/data/manifest.parquet").exists()
    assert not (workdir / "results/waterbirds/erm/model.pt").exists()
    log = (workdir / "results/logs/train_erm/waterbirds.log").read_text()
    assert "resources.cpu_fallback" in log and "epoch" not in log
