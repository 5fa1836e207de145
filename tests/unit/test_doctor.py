"""`ddb doctor` and the GPU jobs' own check read the node alike (ddb.doctor): a driver too old for torch's
CUDA, no GPU at all, and a node where everything works, each with probes patched."""

from __future__ import annotations

import subprocess

import pytest

from ddb import cli, doctor
from ddb.doctor import NodeFacts, diagnose, nvidia_smi, proc_driver_version
from ddb.errors import DDBError
from ddb.scripting import CLUSTER_JOB_VARIABLE, check_cuda
from test_scripting_gpu import job

OLD_DRIVER = NodeFacts(torch_version="2.14.1+cu130", torch_cuda="13.0", cuda_available=False, driver="535.104.05",
                       driver_source="nvidia-smi", gpus=["NVIDIA A100-SXM4-80GB"], visible_devices="0")
NO_GPU = NodeFacts(torch_version="2.14.1+cu130", torch_cuda="13.0", cuda_available=False)
WORKING = NodeFacts(torch_version="2.14.1+cu126", torch_cuda="12.6", cuda_available=True, driver="535.104.05",
                    driver_source="nvidia-smi", gpus=["NVIDIA A100-SXM4-80GB"], visible_devices="0")


def test_a_driver_too_old_for_torchs_cuda_is_named_with_the_build_that_runs_on_it():
    verdict = diagnose(OLD_DRIVER)
    assert not verdict.ok and not verdict.no_gpu
    assert verdict.problem == "NVIDIA driver 535.104.05 is older than torch's CUDA 13.0 needs (>= 580)"
    assert "pip install torch==2.14.1 --index-url https://download.pytorch.org/whl/cu126" in verdict.fix
    assert "driver 525" in verdict.fix and "Install on a cluster" in verdict.fix
    assert "partition" not in verdict.fix


def test_a_driver_too_old_for_every_build_asks_for_a_newer_driver():
    verdict = diagnose(NodeFacts("2.14.1+cu130", "13.0", False, driver="470.82.01", gpus=["Tesla V100"]))
    assert verdict.problem.startswith("NVIDIA driver 470.82.01 is older than torch's CUDA 13.0 needs (>= 580)")
    assert "ask the cluster's admins for driver >= 580" in verdict.fix and "index-url" not in verdict.fix


def test_no_gpu_at_all_points_to_a_gpu_partition():
    verdict = diagnose(NO_GPU)
    assert not verdict.ok and verdict.no_gpu
    assert verdict.problem == "torch (CUDA 13.0) finds no CUDA device: no NVIDIA driver or GPU on this node"
    assert "srun --partition=<gpu partition> --gpus=1 ddb doctor" in verdict.fix
    # a driver but no GPU given to the job (SLURM hides the devices of a job that asked for none)
    hidden = diagnose(NodeFacts("2.14.1+cu130", "13.0", False, driver="580.65.06"))
    assert hidden.no_gpu and "driver 580.65.06 but this job was given no GPU" in hidden.problem
    emptied = diagnose(NodeFacts("2.14.1+cu130", "13.0", False, driver="580.65.06", gpus=["H100"],
                                 visible_devices=""))
    assert emptied.problem == "CUDA_VISIBLE_DEVICES='' hides every GPU from torch"


def test_a_cpu_only_torch_and_a_failing_matmul_are_named():
    assert diagnose(NodeFacts("2.14.1+cpu", None, False, driver="580.65.06", gpus=["H100"])).problem == (
        "torch 2.14.1+cpu is a CPU-only build")
    broken = diagnose(NodeFacts("2.14.1+cu130", "13.0", True, driver="580.65.06", gpus=["Tesla P100"],
                                matmul_error="AcceleratorError: CUDA error: no kernel image is available"))
    assert not broken.ok and "no kernel image" in broken.problem


def test_everything_ok_prints_every_fact_and_an_ok_verdict(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(doctor, "probe", lambda matmul=True: WORKING)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    (tmp_path / "hf" / "hub").mkdir(parents=True)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(None, 1) for line in out.splitlines()
                 if line and not line.startswith(("HF ", "CUDA ", "NVIDIA ")))
    assert "torch                 2.14.1+cu126 (CUDA 12.6)" in out
    assert "NVIDIA driver         535.104.05 (nvidia-smi)" in out
    assert "GPUs                  NVIDIA A100-SXM4-80GB" in out
    assert "CUDA works            yes" in out
    assert f"HF hub cache          {tmp_path / 'hf' / 'hub'} (exists)" in out
    assert f"{tmp_path / 'torch'} (missing)" in lines["TORCH_HOME"]
    assert "HF_HUB_OFFLINE=1" in lines["offline"] and "TRANSFORMERS_OFFLINE unset" in lines["offline"]
    assert out.rstrip().splitlines()[-1] == "verdict: OK: torch computes on the GPU"


def test_doctor_exits_1_with_the_problem_as_its_last_lines(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "probe", lambda matmul=True: OLD_DRIVER)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out.rstrip().splitlines()
    assert out[-2] == "verdict: PROBLEM: NVIDIA driver 535.104.05 is older than torch's CUDA 13.0 needs (>= 580)"
    assert out[-1].startswith("  fix: install torch built for CUDA 12.6")


def completed(stdout, returncode=0):
    return lambda command, **kwargs: subprocess.CompletedProcess(command, returncode, stdout=stdout, stderr="")


def test_the_driver_is_read_from_nvidia_smi_or_the_kernel_module(tmp_path):
    assert nvidia_smi(completed("535.104.05, NVIDIA A100-SXM4-80GB\n535.104.05, NVIDIA A100-SXM4-80GB\n")) == (
        "535.104.05", ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"])
    assert nvidia_smi(completed("No devices were found\n", returncode=6)) == (None, [])
    version = tmp_path / "version"
    version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
                       "GCC version:  gcc version 12.2.0\n")
    assert proc_driver_version(version) == "535.104.05"
    version.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build\n")
    assert proc_driver_version(version) == "580.65.06"
    assert proc_driver_version(tmp_path / "absent") is None


@pytest.fixture
def cluster_job_without_cuda(monkeypatch):
    import torch

    monkeypatch.setenv(CLUSTER_JOB_VARIABLE, "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_a_gpu_job_on_a_node_with_an_old_driver_says_why_not_another_partition(monkeypatch,
                                                                               cluster_job_without_cuda):
    monkeypatch.setattr(doctor, "probe", lambda matmul=True: OLD_DRIVER)
    with pytest.raises(DDBError) as raised:
        check_cuda(job())
    message = str(raised.value)
    assert message.startswith("rule inpaint: asked for a GPU, but this cluster job cannot use the node's GPU: "
                              "NVIDIA driver 535.104.05 is older than torch's CUDA 13.0 needs (>= 580)")
    assert "--index-url https://download.pytorch.org/whl/cu126" in message
    assert "DDB_SLURM_GPU_PARTITION" not in message and "partition" not in message


def test_a_gpu_job_without_any_gpu_keeps_the_partition_fix(monkeypatch, cluster_job_without_cuda):
    monkeypatch.setattr(doctor, "probe", lambda matmul=True: NO_GPU)
    with pytest.raises(DDBError) as raised:
        check_cuda(job())
    message = str(raised.value)
    assert message.startswith("rule inpaint: asked for a GPU, but this cluster job has none: torch (CUDA 13.0) "
                              "finds no CUDA device")
    assert "DDB_SLURM_GPU_PARTITION" in message and "resources.cpu_fallback: true" in message


def test_a_torch_that_does_not_import_is_the_verdict(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("libcudart.so.13: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "torch   cannot be imported: libcudart.so.13: cannot open shared object file" in out
    assert "verdict: PROBLEM: torch cannot be imported in this Python" in out
