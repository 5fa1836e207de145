"""What a job reports about its own cost, in its log: when its models were ready, and its peak GPU memory.

Snakemake's ``benchmark:`` files give each job's wall time and peak resident memory, but not its GPU
memory, nor how much of the wall time was start-up (interpreter, imports, CUDA, building or loading the
models) rather than work per image. Each job therefore writes two lines to its log, which
``benchmarks/rehearsal.py`` (and anyone sizing a cluster request) reads back::

    ddb: setup 12.3 s (process start to models ready), then 48 images
    ddb: peak GPU memory 5321 MiB allocated, 6016 MiB reserved (cuda: NVIDIA H100 80GB HBM3)
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

SETUP_LINE = re.compile(r"ddb: setup ([0-9.]+) s \(process start to models ready\), then (\d+) (\w+)")
GPU_LINE = re.compile(r"ddb: peak GPU memory ([0-9.]+) MiB allocated, ([0-9.]+) MiB reserved \((.*)\)")


def process_seconds() -> float:
    """Seconds since this process started (Linux /proc; psutil elsewhere; 0 when neither can tell)."""
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process(os.getpid()).create_time())
    except Exception:  # pragma: no cover - psutil comes with snakemake
        return 0.0


def report_setup(count: int, what: str = "images") -> None:
    """Print the setup line: called by a step once its models are built, before its first batch."""
    print(f"ddb: setup {process_seconds():.1f} s (process start to models ready), then {count} {what}", flush=True)


def report_gpu_memory() -> None:
    """Print the peak GPU memory line, if this process used CUDA (run_step calls it when a step ends)."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return
    device = torch.cuda.current_device()
    allocated = torch.cuda.max_memory_allocated(device) / 2 ** 20
    reserved = torch.cuda.max_memory_reserved(device) / 2 ** 20
    print(f"ddb: peak GPU memory {allocated:.0f} MiB allocated, {reserved:.0f} MiB reserved "
          f"(cuda: {torch.cuda.get_device_name(device)})", flush=True)


def read_job_log(path: str | os.PathLike) -> dict:
    """The figures of :func:`report_setup` and :func:`report_gpu_memory` in a job's log (missing ones absent)."""
    found: dict = {}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return found
    for match in SETUP_LINE.finditer(text):
        found.update(setup_s=float(match.group(1)), count=int(match.group(2)), counted=match.group(3))
    for match in GPU_LINE.finditer(text):
        found.update(gpu_allocated_mib=float(match.group(1)), gpu_reserved_mib=float(match.group(2)),
                     gpu=match.group(3))
    return found
