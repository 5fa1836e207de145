"""Training that survives a timeout: one checkpoint file per training job, beside its outputs.

``train_erm``, ``retrain`` (every epoch) and ``textual_inversion`` (every ``checkpoint_every`` steps) save
everything their loop depends on: weights, optimizer (and GradScaler) state, every random state (torch,
CUDA, numpy, python, the loaders' generators and samplers), the history rows so far and, for retraining,
the best epoch so far. A job killed mid-way (a SLURM time limit, a lost node) and started again continues
from the last checkpoint to the same final model as an uninterrupted run (bit for bit on a CPU).

The file is ``<output stem>.resume.pt`` in the step's folder (``erm/model.resume.pt``,
``retrain/model.resume.pt``, ``textual_inversion/<cls>/learned_embeds.resume.pt``). It is no declared
output, so Snakemake does not delete it when the job fails; it is written atomically, and removed once the
step's outputs are in place. It records the job's fingerprint (:func:`ddb.scripting.job_fingerprint`:
rule, wildcards, params with the code's version, inputs, device and thread count) and the step's own
settings: a checkpoint of a job with other settings or inputs is discarded with a message, never resumed.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import torch

from .storage.atomic import save_torch

RESUME_SUFFIX = ".resume.pt"
FORMAT = 1


def resume_path(output: str | Path) -> Path:
    """The checkpoint file of the job whose main output is ``output``: ``model.pt`` -> ``model.resume.pt``."""
    output = Path(output)
    return output.with_name(output.name.split(".")[0] + RESUME_SUFFIX)


class TrainingCheckpoint:
    """The resume file of one training job.

    ``fingerprint`` is the job's (:attr:`ddb.jobs.Job.fingerprint`); ``settings`` is what the step's result
    depends on besides it (its config section, seed): a step run outside Snakemake (tests) has no job
    fingerprint. ``note`` is added to the "resuming" message (the job's runtime request, for a retried
    SLURM job).
    """

    def __init__(self, path: str | Path, what: str, settings=None, fingerprint: str | None = None, note: str = ""):
        self.path, self.what, self.note = Path(path), what, note
        payload = json.dumps([FORMAT, what, fingerprint, settings], sort_keys=True, default=str)
        self.fingerprint = hashlib.sha256(payload.encode()).hexdigest()

    def load(self) -> dict | None:
        """The saved state, or None: no checkpoint, an unreadable one or one of other settings (both
        discarded, with a message)."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # truncated or corrupt: it was written atomically, so hardly ever
            print(f"{self.what}: discarding the unreadable checkpoint {self.path} ({type(error).__name__}: "
                  f"{error}); starting from the beginning", flush=True)
            self.remove()
            return None
        if not isinstance(saved, dict) or saved.get("fingerprint") != self.fingerprint:
            print(f"{self.what}: discarding the checkpoint {self.path} of a job with other settings or inputs; "
                  "starting from the beginning", flush=True)
            self.remove()
            return None
        return saved["state"]

    def save(self, state: dict) -> None:
        """Write ``state`` atomically (a kill while saving leaves the previous checkpoint)."""
        save_torch({"fingerprint": self.fingerprint, "what": self.what, "state": state}, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def announce(self, position: str, total: str) -> None:
        """Print ``<step>: resuming from <position> of <total>`` (in the rule's log)."""
        print(f"{self.what}: resuming from {position} of {total} (checkpoint {self.path})"
              + (f"; {self.note}" if self.note else ""), flush=True)


def runtime_note(job) -> str:
    """The job's runtime request, for the "resuming" message: a retried job asks for more (ddb.resources)."""
    runtime = getattr(job.resources, "runtime", None)
    return f"this attempt's runtime request: {runtime} min" if runtime else ""


# ---- random states, as tensors and plain Python values (a checkpoint loads with weights_only=True)


def rng_state() -> dict:
    """torch's (CPU and every CUDA device's), numpy's global and python's random states."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda,
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():  # the same device (the fingerprint says), maybe fewer of them
        for index, cuda in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda, index)
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])


def generator_state(generator: torch.Generator | None):
    return None if generator is None else generator.get_state()


def set_generator_state(generator: torch.Generator | None, state) -> None:
    if generator is not None and state is not None:
        generator.set_state(state)


def cpu_state_dict(module_or_optimizer) -> dict:
    """A state dict with every tensor copied to the CPU (a checkpoint is independent of the live model)."""
    return _to_cpu(module_or_optimizer.state_dict())


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def training_state(model, optimizer, scaler, loader, sampler) -> dict:
    """What every classifier training loop (ERM, retraining) saves each epoch to resume bit for bit: the
    weights, the optimizer and GradScaler, the loader's and the sampler's generators and the global RNGs."""
    return {"model": cpu_state_dict(model), "optimizer": cpu_state_dict(optimizer), "scaler": scaler.state_dict(),
            "loader": generator_state(loader.generator), "sampler": generator_state(getattr(sampler, "generator", None)),
            "rng": rng_state()}


def restore_training_state(state: dict, model, optimizer, scaler, loader, sampler) -> None:
    """Put :func:`training_state`'s ``state`` back into the loop's objects."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    set_generator_state(loader.generator, state["loader"])
    set_generator_state(getattr(sampler, "generator", None), state["sampler"])
    set_rng_state(state["rng"])
