"""Training that survives a timeout, through Snakemake: a real `train_erm` job is killed with SIGKILL after its
first checkpoint; Snakemake retries it (`--retries 1`, as the slurm profile does) with twice the runtime,
the job goes on from the checkpoint and writes the model an uninterrupted run writes, byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd

from helpers import REPO, small_config, write_config


ERM_TARGET = "results/demo/erm/model.pt"


def job_processes(snakemake: subprocess.Popen, script: str) -> list:
    import psutil

    try:
        children = psutil.Process(snakemake.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if any(script in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def test_a_killed_train_erm_job_is_retried_with_more_runtime_and_resumes(tmp_path):
    demo = small_config()["datasets"]["demo"]
    write_config(tmp_path, small_config(synthetic={**demo["synthetic"], "n_train": 120, "image_size": 16},
                                        classifier={**demo["classifier"], "image_size": 16},
                                        erm={**demo["erm"], "epochs": 8}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--cores", "1", "--retries", "1"]
    checkpoint = tmp_path / "results/demo/erm/model.resume.pt"
    process = subprocess.Popen([*command, ERM_TARGET], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists():
            assert process.poll() is None, process.stdout.read().decode()[-4000:]
            assert time.monotonic() < deadline, "train_erm wrote no checkpoint in 5 minutes"
            time.sleep(0.02)
        jobs = job_processes(process, "train_erm")
        assert jobs, "the train_erm job's process was not found"
        for job in jobs:
            job.send_signal(signal.SIGKILL)  # a lost node or an OOM kill: no clean-up at all
        output = process.communicate(timeout=600)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output[-4000:]
    log = (tmp_path / "results/logs/train_erm/demo.log").read_text()
    # attempt 2 asks for twice the first runtime (rules/common.smk: 240 min for train_erm by default)
    assert "train_erm: resuming from epoch" in log and "this attempt's runtime request: 480 min" in log, log[-3000:]
    assert not checkpoint.exists()
    resumed_model = (tmp_path / ERM_TARGET).read_bytes()
    resumed_history = pd.read_parquet(tmp_path / "results/demo/erm/history.parquet")
    assert resumed_history["epoch"].tolist() == list(range(1, 9))

    subprocess.run([*command, "--force", ERM_TARGET], env=env, check=True, capture_output=True, timeout=600)
    log = (tmp_path / "results/logs/train_erm/demo.log").read_text()
    assert "resuming" not in log and "runtime request" not in log
    assert (tmp_path / ERM_TARGET).read_bytes() == resumed_model
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "results/demo/erm/history.parquet"), resumed_history,
                                  check_exact=True)
