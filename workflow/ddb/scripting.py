"""What every rule script does first: log to the rule's log file, honour threads, turn a DDBError
into one clear line on the terminal and a non-zero exit (never a traceback for a user error)."""

from __future__ import annotations

import functools
import logging
import os
import sys

from .errors import DDBError


def run_step(function):
    """Decorator for a rule script's ``main(snakemake)``."""

    @functools.wraps(function)
    def wrapper(snakemake):
        terminal = sys.__stderr__
        log_path = snakemake.log[0] if len(snakemake.log) else os.devnull
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        with open(log_path, "w", buffering=1) as log_file:
            sys.stdout = sys.stderr = log_file
            logging.basicConfig(level=logging.INFO, stream=log_file, force=True,
                                format="%(asctime)s %(levelname)s %(message)s")
            import torch

            torch.set_num_threads(compute_threads(snakemake))
            try:
                return function(snakemake)
            except DDBError as error:
                message = f"ddb: {error}"
                print(message, file=log_file)
                print(f"\n{message}\n  (rule {snakemake.rule}, log {log_path})\n", file=terminal, flush=True)
                sys.exit(1)
            finally:
                sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    return wrapper


def compute_threads(snakemake) -> int:
    """torch's intra-op threads: the rule's configured ``threads`` (resource ``cpu_threads``).

    Not ``snakemake.threads``: Snakemake lowers that to ``--cores``, and on a CPU float reductions
    split their work by thread, so ``--cores 1`` and ``--cores 2`` would train different models and
    draw different images. Rules without that resource (light ones) use their ``threads``.
    """
    return max(1, int(getattr(snakemake.resources, "cpu_threads", None) or snakemake.threads))


def device():
    from .models.classifier import pick_device

    return pick_device()
