"""What every rule script does first: log to the rule's log file, honour threads, turn a DDBError
into one clear line on the terminal and a non-zero exit (never a traceback for a user error), and hand the
step a :class:`ddb.jobs.Job`: what the rule declares for this job, read once from the ``snakemake`` object."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from .errors import DDBError
from .failure_cleanup import JobFiles, as_ddb_error, quietly
from .job_environment import CLUSTER_JOB_VARIABLE
from .jobs import Job, files_of, named_of


def run_step(function):
    """Decorator for a rule script's ``main(job)``: called with Snakemake's ``snakemake`` object, it runs
    ``function`` with the :class:`~ddb.jobs.Job` read from it."""

    @functools.wraps(function)
    def wrapper(snakemake):
        log_path = snakemake.log[0] if len(snakemake.log) else os.devnull
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        log_file = open(log_path, "w", buffering=1)
        try:
            with JobFiles():  # what the job creates through it goes if the job fails
                result = _run_logged(function, snakemake, log_file, log_path)
        except BaseException:
            # the log may lie on the disk whose being full is the error: closing it must not replace that
            quietly(log_file.close)
            raise
        log_file.close()
        return result

    return wrapper


def _run_logged(function, snakemake, log_file, log_path: str):
    terminal = sys.__stderr__
    sys.stdout = sys.stderr = log_file
    logging.basicConfig(level=logging.INFO, stream=log_file, force=True,
                        format="%(asctime)s %(levelname)s %(message)s")
    # DDB's own warnings (e.g. a class with no generation left after pruning) reach the terminal too
    to_terminal = logging.StreamHandler(terminal)
    to_terminal.setLevel(logging.WARNING)
    to_terminal.setFormatter(logging.Formatter(f"ddb (rule {snakemake.rule}): %(message)s"))
    logging.getLogger("ddb").addHandler(to_terminal)
    import torch

    torch.set_num_threads(compute_threads(snakemake))
    previous_handler = stop_on_sigterm()
    try:
        check_inputs(snakemake)
        check_cuda(snakemake)
        result = function(job_record(snakemake))
        from .job_stats import report_gpu_memory

        report_gpu_memory()  # Snakemake's benchmark files have no GPU column
        return result
    except DDBError as error:
        _fail(error, snakemake, log_file, log_path, terminal)
    except Terminated:
        quietly(print, "ddb: stopped by SIGTERM (scancel, or the job's time limit); its temporary files are "
                "removed, finished shard checkpoints kept", file=log_file, flush=True)
        raise
    except Exception as error:
        # a full disk met outside ddb's writers (the log itself, a library's cache) is the same one line
        if (as_ddb := as_ddb_error(error, log_path)) is None:
            raise
        _fail(as_ddb, snakemake, log_file, log_path, terminal)
    finally:
        # a step run in-process (tests) must leave no state behind for the next one
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        logging.getLogger("ddb").removeHandler(to_terminal)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


def _fail(error: DDBError, snakemake, log_file, log_path: str, terminal) -> None:
    """The one line, on the terminal first: the log may lie on the full disk the error is about, and
    whatever fails after it says nothing new."""
    message = f"ddb: {error}"
    print(f"\n{message}\n  (rule {snakemake.rule}, log {log_path})\n", file=terminal, flush=True)
    quietly(print, message, file=log_file, flush=True)
    # the exception's context (a chain of OSErrors from clean-up) is not shown: SystemExit prints nothing
    sys.exit(1)


class Terminated(SystemExit):
    """SIGTERM, as an exception: it unwinds the step, so ``atomic_path`` removes its temporary file and
    the shard lock is released; the process then exits with 143 (128 + SIGTERM), as a shell reports it."""


def _raise_terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    raise Terminated(128 + signum)


def stop_on_sigterm():
    """Make SIGTERM (what SLURM sends at scancel or the time limit, before SIGKILL) raise
    :class:`Terminated` in this process; returns the handler it replaced (None off the main thread, where
    Python cannot set one)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)




def check_inputs(snakemake) -> None:
    """Stop a job one of whose declared inputs is gone, naming it and the rule that makes it.

    Snakemake checks inputs when it plans a job, not when the job starts; a file deleted in between
    (another run on the same results folder rerunning the rule that makes it) would otherwise surface deep
    in the step, e.g. a textual-inversion token path the model loader then takes for a hub id.
    """
    inputs = snakemake.input
    named = [(name, str(path)) for name, value in (inputs.items() if hasattr(inputs, "items") else ())
             for path in ([value] if isinstance(value, str) else value)]
    if not isinstance(inputs, Mapping):  # Snakemake's input list: unnamed files besides the named ones
        seen = {path for _, path in named}
        named += [(None, str(path)) for path in inputs if str(path) not in seen]
    for name, path in named:
        if os.path.exists(path):
            continue
        from .storage.remake import rule_of

        rule = rule_of(path)
        again = "rerun snakemake (another run on the same results folder may have removed it)"
        made_by = (f"made by rule {rule}; {again}" if rule else
                   f"a file of yours (dataset, model folder): put it back where the config says; else {again}")
        raise DDBError(path, f"input {name or 'file'} of rule {snakemake.rule} does not exist", made_by)


def check_cuda(snakemake) -> None:
    """Stop a cluster job that asked for a GPU (resource ``gpu``) and finds no CUDA device, unless its
    dataset allows the CPU (resource ``cpu_fallback``, from config ``resources.cpu_fallback``).

    Such a job would otherwise run for hours on the node's CPU (a partition without GPUs, a CPU-only
    torch, a driver too old for torch's CUDA, CUDA_VISIBLE_DEVICES emptied) and only a user reading its log
    would notice. Why, and the fix, come from :mod:`ddb.doctor`, as ``ddb doctor`` says them. A local run is never
    stopped: it ignores GPU requests by design (the demo, a laptop).
    """
    resources = snakemake.resources
    if not int(getattr(resources, "gpu", 0) or 0) or os.environ.get(CLUSTER_JOB_VARIABLE) != "1":
        return
    import torch

    if torch.cuda.is_available():
        return
    from .doctor import diagnose, probe

    verdict = diagnose(probe(matmul=False))
    if int(getattr(resources, "cpu_fallback", 0) or 0):
        logging.getLogger("ddb").warning(f"this job asked for a GPU but runs on the CPU: {verdict.problem} "
                                         "(resources.cpu_fallback is true)")
        return
    what = "this cluster job has none" if verdict.no_gpu else "this cluster job cannot use the node's GPU"
    fix = verdict.fix
    if verdict.no_gpu and "DDB_SLURM_GPU_PARTITION" not in fix:  # only without any GPU is the partition a fix
        fix = f"send GPU rules to a partition with GPUs (DDB_SLURM_GPU_PARTITION, resources.gpu_model); {fix}"
    raise DDBError(f"rule {snakemake.rule}", f"asked for a GPU, but {what}: {verdict.problem}",
                   f"{fix}; `ddb doctor` on a GPU node checks it before submitting; to run on the CPU anyway, set "
                   "resources.cpu_fallback: true (or the dataset's resources.cpu_fallback)")


def compute_threads(snakemake) -> int:
    """torch's intra-op threads: the rule's configured ``threads`` (resource ``cpu_threads``), at most the
    machine's CPU count.

    Not ``snakemake.threads``: Snakemake lowers that to ``--cores``, and on a CPU float reductions
    split their work by thread, so ``--cores 1`` and ``--cores 2`` would train different models and
    draw different images. Rules without that resource (light ones) use their ``threads``.
    """
    configured = int(getattr(snakemake.resources, "cpu_threads", None) or snakemake.threads)
    return max(1, min(configured, os.cpu_count() or 1))


def job_record(snakemake) -> Job:
    """The :class:`~ddb.jobs.Job` of ``snakemake``; call it after ``torch.set_num_threads`` (run_step does):
    the fingerprint names the thread count the job computes with."""
    params = named_of(snakemake.params)
    log = list(getattr(snakemake, "log", None) or [])
    return Job(rule=snakemake.rule, wildcards=named_of(snakemake.wildcards), input=files_of(snakemake.input),
               output=files_of(getattr(snakemake, "output", None)), params=params,
               resources=named_of(getattr(snakemake, "resources", None)),
               config=getattr(snakemake, "config", None) or {}, log=Path(log[0]) if log else None,
               seed=params.get("seed"), threads=compute_threads(snakemake),
               fingerprint=job_fingerprint(snakemake))


def job_fingerprint(snakemake) -> str:
    """What a job's results depend on: rule, wildcards, params, the size and mtime of each input, and where
    it computes (:func:`compute_setting`): a shard resumed on another device or with another thread count
    discards its checkpoints rather than mix images computed two ways."""
    inputs = []
    for path in snakemake.input:
        try:
            stat = os.stat(path)
            inputs.append([str(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            inputs.append([str(path), None, None])
    payload = json.dumps([snakemake.rule, dict(snakemake.wildcards.items()), list(snakemake.params), inputs,
                          compute_setting()], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def compute_setting() -> dict:
    """The device (``cpu``, or ``cuda`` with the GPU's name) and torch's intra-op thread count: both change
    float results (a CPU's reductions split by thread; another GPU model runs other kernels), so results are
    reproducible only for the same setting, and checkpoints of one are never mixed with another's. Call it
    after ``torch.set_num_threads`` (run_step does). The device is the one steps compute on (pick_device)."""
    import torch

    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(torch.cuda.current_device())}"
    else:
        device = "cpu"
    return {"device": device, "torch_threads": torch.get_num_threads()}


def device():
    from .models.classifier import pick_device

    return pick_device()
