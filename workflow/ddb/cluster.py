"""Before a SLURM run submits anything: does every planned job fit a node of its partition?

SLURM accepts a job that asks for more CPUs than any node of its partition has and keeps it PENDING
for ever (Reason=PartitionConfig), and Snakemake says nothing about it. So the workflow's ``onstart``
handler (Snakefile) runs :func:`check_planned_jobs` with the slurm executor, outside dry runs: it reads
the nodes of every partition with one ``sinfo`` call and stops with one message naming each rule whose
largest request (CPUs, memory, GPUs) no node of its partition offers, the request and the node size.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import DDBError

# One line per node and partition: partition (default marked `*`), node, CPUs, memory (MB), gres.
SINFO_COMMAND = ["sinfo", "--all", "--noheader", "--Node", "--format=%P|%N|%c|%m|%G"]
GPU_TYPE_HINT = "set resources.gpu_model"


@dataclass(frozen=True)
class Node:
    name: str
    partition: str
    cpus: int
    mem_mb: int
    gpus: dict = field(default_factory=dict)  # GPU type ("" when untyped) -> count
    default: bool = False  # in the cluster's default partition

    def gpu_count(self, model: str | None = None) -> int:
        """GPUs of ``model`` on this node (all of them when ``model`` is None)."""
        if not model:
            return sum(self.gpus.values())
        return self.gpus.get(model, 0)


@dataclass(frozen=True)
class Request:
    """What one SLURM job of ``rule`` asks for (as snakemake-executor-plugin-slurm's sbatch call does)."""

    rule: str
    partition: str | None  # None: the cluster's default partition
    cpus: int
    mem_mb: int | None = None
    gpus: int = 0
    gpu_model: str | None = None
    dataset: str | None = None

    def describe(self) -> str:
        parts = [f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}"]
        if self.mem_mb:
            parts.append(f"{self.mem_mb} MB memory")
        if self.gpus:
            parts.append(f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}" + (f" ({self.gpu_model})" if self.gpu_model else ""))
        return ", ".join(parts)


def parse_gres(text: str) -> dict:
    """GPU type -> count from sinfo's %G, e.g. ``gpu:a100:4(S:0-1),gpu:2`` -> {"a100": 4, "": 2}."""
    gpus: dict = {}
    for entry in re.sub(r"\([^)]*\)", "", text.strip()).split(","):
        fields = entry.strip().split(":")
        if fields[0] != "gpu":
            continue
        count = re.match(r"\d+", fields[-1]) if len(fields) > 1 else None
        kind = fields[1] if len(fields) == 3 else ""
        gpus[kind] = gpus.get(kind, 0) + (int(count.group()) if count else 1)
    return gpus


def _number(text: str) -> int:
    match = re.match(r"\d+", text.strip())
    return int(match.group()) if match else 0


def parse_sinfo(text: str) -> list[Node]:
    """The nodes in the output of :data:`SINFO_COMMAND` (one per node and partition)."""
    nodes = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        partition, name, cpus, memory, gres = fields
        nodes.append(Node(name=name, partition=partition.rstrip("*"), cpus=_number(cpus), mem_mb=_number(memory),
                          gpus=parse_gres(gres), default=partition.endswith("*")))
    return nodes


def fits(request: Request, node: Node) -> bool:
    return (node.cpus >= request.cpus
            and (not request.mem_mb or node.mem_mb >= request.mem_mb)
            and (not request.gpus or node.gpu_count(request.gpu_model) >= request.gpus))


def _partition_nodes(partition: str | None, nodes: list[Node]) -> list[Node]:
    if partition is None:
        return [n for n in nodes if n.default]
    names = {p.strip() for p in partition.split(",") if p.strip()}  # sbatch -p a,b: either
    return [n for n in nodes if n.partition in names]


def _node_size(nodes: list[Node], model: str | None) -> str:
    cpus, memory = max(n.cpus for n in nodes), max(n.mem_mb for n in nodes)
    gpus = max(n.gpu_count(model) for n in nodes)
    kind = f" ({model})" if model else ""
    return (f"{cpus} CPU{'s' if cpus != 1 else ''}, {memory} MB memory and {gpus} GPU{'s' if gpus != 1 else ''}"
            f"{kind}")


def misfits(requests: Iterable[Request], nodes: list[Node]) -> list[str]:
    """One line per (rule, partition) whose largest request fits no node of the partition."""
    worst: dict = {}
    for request in requests:
        candidates = _partition_nodes(request.partition, nodes)
        if any(fits(request, node) for node in candidates):
            continue
        key = (request.rule, request.partition)
        previous = worst.get(key)
        if previous is None or (request.cpus, request.mem_mb or 0, request.gpus) > (
                previous.cpus, previous.mem_mb or 0, previous.gpus):
            worst[key] = request
    lines = []
    for (rule, partition), request in worst.items():
        candidates = _partition_nodes(partition, nodes)
        where = f"partition {partition}" if partition else "the default partition"
        dataset = f" (dataset {request.dataset})" if request.dataset else ""
        if not candidates:
            lines.append(f"rule {rule}{dataset} asks for {where}, but sinfo lists no node in it")
        else:
            lines.append(f"rule {rule}{dataset} asks for {request.describe()}, but the nodes of {where} have at "
                         f"most {_node_size(candidates, request.gpu_model)}{_other_gpu_types(request, candidates)}")
    return lines


def _other_gpu_types(request: Request, nodes: list[Node]) -> str:
    """Where a typed GPU request finds GPUs of other types only: those types (sinfo's GRES names), and the
    config key that names the type, so the fix is not a smaller request."""
    if not request.gpu_model or any(n.gpu_count(request.gpu_model) for n in nodes):
        return ""
    types = sorted({kind for n in nodes for kind, count in n.gpus.items() if count})
    if not types:
        return ""
    named = ", ".join(kind or "untyped (gpu:N)" for kind in types)
    return (f"; its nodes' GPUs are of type {named}, not {request.gpu_model}: {GPU_TYPE_HINT} in config.yaml "
            f"to one of these (as sinfo names it), or null for any GPU")


def check_fit(requests: Iterable[Request], nodes: list[Node]) -> None:
    """Raise :class:`DDBError` naming every rule whose request fits no node of its partition."""
    lines = misfits(requests, nodes)
    if lines:
        gpu_type = any(GPU_TYPE_HINT in line for line in lines)
        raise DDBError(
            "slurm", "no job was submitted: SLURM would keep these jobs PENDING for ever (Reason=PartitionConfig) "
            "or reject them:\n    " + "\n    ".join(lines),
            ("name a GPU type the nodes have in resources.gpu_model (config.yaml; null: any GPU), or " if gpu_type
             else "") + "lower the rule's request in config.yaml, for this dataset (datasets.<name>.resources, e.g. "
            "`max: {threads: 2, mem_mb: 3000}`) or for every dataset (resources.rules), or send the jobs to a "
            "partition with bigger nodes (DDB_SLURM_PARTITION, DDB_SLURM_GPU_PARTITION); `sinfo -N -l` "
            "lists the nodes (docs/cluster.md)")


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def job_request(job) -> Request | None:
    """The :class:`Request` of a Snakemake job as the slurm plugin submits it (None: not checkable)."""
    resources = job.resources
    if any(resources.get(key) for key in ("slurm_cluster", "cluster", "clusters")):
        return None  # another cluster: this machine's sinfo does not list its nodes
    cpus = _int(job.threads, 1)
    if _int(resources.get("cpus_per_task"), 0) > 0:
        cpus = _int(resources.get("cpus_per_task"))
    mem_mb = _int(resources.get("mem_mb"), 0) or None
    if _int(resources.get("mem_mb_per_cpu"), 0) > 0:
        mem_mb = _int(resources.get("mem_mb_per_cpu")) * cpus
    partition = resources.get("slurm_partition")
    gpu_model = resources.get("gpu_model")
    return Request(rule=job.rule.name, partition=str(partition) if partition else None, cpus=max(1, cpus),
                   mem_mb=mem_mb, gpus=_int(resources.get("gpu"), 0) or (1 if gpu_model else 0),
                   gpu_model=str(gpu_model) if gpu_model else None, dataset=job.wildcards_dict.get("ds"))


def read_nodes(run: Callable = subprocess.run) -> list[Node] | None:
    """The cluster's nodes from ``sinfo``; None when sinfo is missing or fails."""
    try:
        result = run(SINFO_COMMAND, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return parse_sinfo(result.stdout)


# The slurm profile's variables (slurm/config.yaml): resource -> (variable, the fallback sbatch reads itself)
PROFILE_VARIABLES = {"slurm_account": ("DDB_SLURM_ACCOUNT", "SBATCH_ACCOUNT"),
                     "slurm_partition": ("DDB_SLURM_PARTITION", "SBATCH_PARTITION")}
UNSET_SUFFIX = "_IS_NOT_SET"  # the profile's value for a variable that is not set


def check_profile_variables(default_resources: dict) -> None:
    """Raise :class:`DDBError` naming every variable the slurm profile needs and finds unset (the profile
    puts ``<variable>_IS_NOT_SET`` in ``default_resources``, resource -> raw value, in its place)."""
    missing = [(name, fallback) for resource, (name, fallback) in PROFILE_VARIABLES.items()
               if str(default_resources.get(resource) or "").strip("'\"") == name + UNSET_SUFFIX]
    if missing:
        names = " and ".join(f"{name} (or {fallback})" for name, fallback in missing)
        raise DDBError(
            "slurm profile", f"environment variable {names} {'is' if len(missing) == 1 else 'are'} not set",
            " ".join(f"export {name}=<value>;" for name, _ in missing) + " then run snakemake again "
            "(`sacctmgr show associations user=$USER format=account,partition` lists yours; docs/cluster.md)")


def check_planned_jobs(jobs: Iterable, warn: Callable[[str], None] = print, run: Callable = subprocess.run) -> int:
    """Check the SLURM jobs among ``jobs`` (Snakemake jobs; local rules are skipped) against sinfo.

    Returns the number of jobs checked; raises :class:`DDBError` naming the rules that fit no node.
    """
    requests = [r for r in (job_request(job) for job in jobs if not job.is_local) if r is not None]
    if not requests:
        return 0
    nodes = read_nodes(run)
    if nodes is None:
        warn("ddb: could not run `sinfo`, so the jobs' requests were not compared with the nodes' sizes")
        return 0
    check_fit(requests, nodes)
    return len(requests)
