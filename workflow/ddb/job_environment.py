"""The environment every rule script inherits from the Snakemake process that runs it (rules/common.smk
calls :func:`prepare` first thing; rule files keep no environment logic of their own)."""

from __future__ import annotations

import os
from pathlib import Path

# Set in a job that a cluster executor runs; read by ddb.scripting.check_cuda.
CLUSTER_JOB_VARIABLE = "DDB_CLUSTER_JOB"
# The hub libraries' offline switches, set in every cluster job: its models come from the cache the
# fetch_model jobs filled (ddb.models.fetching), and a missing one fails at once, naming itself, instead
# of waiting on a network a compute node may not have.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def prepare(package_root: str | os.PathLike, remote: bool) -> None:
    """Put ``package_root`` (the folder holding ``ddb``) first on the scripts' PYTHONPATH, and say where
    the job runs.

    - No empty PYTHONPATH entry: Python reads one as the current directory, so a stray pandas.py or
      yaml.py in the working directory would be imported by every rule script (SLURM jobs too) instead
      of the library.
    - OpenMP threads that wait by sleeping, not spinning: when a job's torch threads share cores with other
      jobs (several side by side, a busy machine), spinning made CPU steps up to ~60x slower; the numbers
      do not change. Read when torch loads, so it must be in the job's environment; a user's value wins.
    - ``remote``: Snakemake runs a job of a cluster executor (SLURM, ...) in remote mode. Its scripts then
      see DDB_CLUSTER_JOB=1, so a GPU job can tell a cluster node without CUDA from a local run, which
      ignores GPU requests by design. They also run offline (:data:`OFFLINE_VARIABLES` = 1; a value the
      user exported, e.g. HF_HUB_OFFLINE=0 on a cluster whose nodes reach the hub, wins).
    """
    entries = [str(Path(package_root)), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if remote:
        os.environ[CLUSTER_JOB_VARIABLE] = "1"
        for name in OFFLINE_VARIABLES:
            os.environ.setdefault(name, "1")
