"""The cluster fit check in a real `snakemake --profile slurm` run: a job larger than any node stops the run
before anything is submitted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import target
from helpers import cluster_env
from test_profile import REPO, TARGET, workdir  # noqa: F401 (workdir is a fixture)
from ddb.cluster import Node, parse_sinfo
from test_cluster import fake_commands


def slurm_run(workdir: Path, env: dict, *args: str, targets=(TARGET,)) -> subprocess.CompletedProcess:
    """``snakemake --profile slurm TARGET`` (a real run, not a dry run) from ``workdir``."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile", "slurm",
               *args, "--", *targets]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def test_too_many_cpus_stop_the_run_before_anything_is_submitted(workdir, tmp_path):  # noqa: F811
    """The paper's requests (train_erm and retrain: 8 CPUs, the others 4) against a 6-CPU node: one message
    naming the rules, their requests and the node size; sbatch is never called. A second dataset whose
    entry caps its requests (so that each rule's threads and resources depend on the job) passes."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["small"] = {**config["datasets"]["waterbirds"], "resources": {"max": {"threads": 2}}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    submitted = tmp_path / "sbatch-calls"
    bin_dir = fake_commands(tmp_path / "bin", sinfo="echo 'debug*|vm|6|64000|gpu:a100:1'",
                            sbatch=f"echo \"$@\" >> {submitted}; echo 1", squeue="exit 0")
    env = cluster_env(DDB_SLURM_ACCOUNT="none", DDB_SLURM_PARTITION="debug")
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    result = slurm_run(workdir, env, targets=(TARGET, target("eval_json", "small")))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "rule train_erm (dataset waterbirds) asks for 8 CPUs, 32000 MB memory, 1 GPU (a100)" in output, output[-4000:]
    assert "rule retrain (dataset waterbirds) asks for 8 CPUs" in output
    assert "the nodes of partition debug have at most 6 CPUs, 64000 MB memory and 1 GPU (a100)" in output
    assert "rule inpaint" not in output and "dataset small" not in output  # 4 and 2 CPUs fit
    assert not submitted.exists(), submitted.read_text()
    assert "Traceback" not in output


def test_dataset_resources_make_the_same_run_fit(workdir, tmp_path):  # noqa: F811
    """With the dataset's requests capped to the node, the check passes and the first job is submitted."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["waterbirds"]["resources"] = {"max": {"threads": 2, "mem_mb": 3000}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    submitted = tmp_path / "sbatch-calls"
    # sbatch fails on purpose: the run stops after the first submission, which is all this test needs
    # (sacctmgr and sshare answer nothing, as without accounting: the plugin then takes any account)
    bin_dir = fake_commands(tmp_path / "bin", sinfo="echo 'debug*|vm|2|22000|gpu:a100:1'",
                            sbatch=f"echo \"$@\" >> {submitted}; exit 1", sacctmgr="exit 0", sshare="exit 0",
                            squeue="exit 0")
    env = cluster_env(DDB_SLURM_ACCOUNT="none", DDB_SLURM_PARTITION="debug")
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    result = slurm_run(workdir, env, "--retries", "0")
    output = result.stdout + result.stderr
    assert "SLURM jobs planned fit the nodes of their partitions" in output, output[-4000:]
    assert submitted.exists() and "--cpus-per-task=1" in submitted.read_text()  # prepare_dataset


def real_slurm_nodes() -> list[Node]:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return []
    result = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%P|%N|%c|%m|%G"], capture_output=True,
                            text=True, timeout=60)
    return parse_sinfo(result.stdout) if result.returncode == 0 else []


@pytest.mark.skipif(not real_slurm_nodes(), reason="no SLURM cluster answers here (.ci/slurm-up starts one)")
def test_against_the_real_slurm_too_many_cpus_stop_before_submitting(workdir):  # noqa: F811
    nodes = real_slurm_nodes()
    biggest = max(node.cpus for node in nodes)
    partition = next(node.partition for node in nodes if node.default)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["waterbirds"]["resources"] = {"rules": {"train_erm": {"threads": biggest + 1}}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "DDB_SLURM_ACCOUNT": os.environ.get("DDB_SLURM_ACCOUNT", "none"),
           "DDB_SLURM_PARTITION": os.environ.get("DDB_SLURM_PARTITION", partition),
           "PYTHONPATH": str(REPO / "workflow")}
    before = subprocess.run(["squeue", "--noheader", "--format=%i"], capture_output=True, text=True).stdout
    result = slurm_run(workdir, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert f"rule train_erm (dataset waterbirds) asks for {biggest + 1} CPUs" in output, output[-4000:]
    assert "has been submitted" not in output
    assert subprocess.run(["squeue", "--noheader", "--format=%i"], capture_output=True, text=True).stdout == before
