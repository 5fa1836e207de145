"""run_step's GPU check: a cluster GPU job without CUDA stops with the fix; local CPU jobs and jobs that allow the
CPU go on."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from ddb.errors import DDBError
from ddb.scripting import CLUSTER_JOB_VARIABLE, check_cuda

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without CUDA")


def job(gpu=1, cpu_fallback=0, rule="inpaint"):
    return SimpleNamespace(rule=rule, resources=SimpleNamespace(gpu=gpu, cpu_fallback=cpu_fallback))


@needs_no_cuda
def test_a_cluster_gpu_job_without_cuda_stops_with_the_fix(monkeypatch):
    monkeypatch.setenv(CLUSTER_JOB_VARIABLE, "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(DDBError) as raised:
        check_cuda(job())
    message = str(raised.value)
    assert message.startswith("rule inpaint: asked for a GPU, but this cluster job has none")
    assert "CUDA_VISIBLE_DEVICES=''" in message or "CPU-only build" in message
    assert "resources.cpu_fallback: true" in message and "DDB_SLURM_GPU_PARTITION" in message


@needs_no_cuda
def test_no_stop_locally_for_cpu_jobs_or_where_the_cpu_is_allowed(monkeypatch, caplog):
    monkeypatch.delenv(CLUSTER_JOB_VARIABLE, raising=False)
    check_cuda(job())  # a local run ignores GPU requests
    monkeypatch.setenv(CLUSTER_JOB_VARIABLE, "1")
    check_cuda(job(gpu=0))  # a CPU rule on a cluster
    check_cuda(SimpleNamespace(rule="prune", resources=SimpleNamespace()))  # a light rule has no gpu resource
    with caplog.at_level(logging.WARNING, logger="ddb"):
        check_cuda(job(cpu_fallback=1))
    assert "asked for a GPU but runs on the CPU" in caplog.text
