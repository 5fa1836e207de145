"""What each rule asks a cluster for: GPUs, memory, runtime, threads, partition and retries.

Heavy rules ask for a GPU on a cluster; a local run ignores the request. The names are the ones
snakemake-executor-plugin-slurm reads: `gpu` (count) and `gpu_model` become ``sbatch --gpus=<gpu_model>:<gpu>``;
mem_mb becomes --mem, runtime (minutes) --time, threads --cpus-per-task. A rule's defaults come from its
resource class (:data:`DEFAULT_RESOURCES`, keyed by the class each rule declares with its step in
:mod:`ddb.steps`); the config's ``resources`` and each dataset's own ``resources`` adjust them
(:meth:`ResourcePolicy.configured`). ``rules/common.smk`` builds one :class:`ResourcePolicy` and each rule
declares ``threads: rule_threads(...)``, ``resources: **rule_resources(...)`` and, for training rules,
``retries: training_retries(...)`` through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from .steps import resource_class

DEFAULT_RESOURCES = {
    # epochs over a training split: train_erm, retrain (and each tuning candidate's tune_retrain)
    "training": {"gpu": 1, "mem_mb": 32000, "runtime": 240, "threads": 8},
    # Stable Diffusion: textual_inversion, inpaint
    "diffusion": {"gpu": 1, "mem_mb": 32000, "runtime": 120, "threads": 4},
    # one shard's images through the masker (GroundingDINO + SAM) or integrated gradients: mask, ig_score
    "shard_models": {"gpu": 1, "mem_mb": 24000, "runtime": 60, "threads": 4},
    # f over every image of a split, which takes hours on one CPU core and minutes on a GPU: select_low_loss
    # (80 000 training images of a class for CelebA), dfr (the training and validation splits' features,
    # CelebA: 68 000 images, then seconds of liblinear)
    "classifier_pass": {"gpu": 1, "mem_mb": 16000, "runtime": 60, "threads": 4},
    # the test split through ERM, DFR and DDB: evaluate
    "evaluation": {"gpu": 1, "mem_mb": 16000, "runtime": 30, "threads": 4},
    "light": {"mem_mb": 4000, "runtime": 30, "threads": 1},
}

# The one cluster job of a shard's mask -> inpaint -> ig_score chain with resources.group_generation
GENERATION_GROUP = "generation"


def partitions(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(the GPU rules' partition, every other rule's) from the environment: DDB_SLURM_GPU_PARTITION where GPUs
    have their own partition (docs/cluster.md), else none; DDB_SLURM_PARTITION, else SBATCH_PARTITION, else
    None. Chosen in the workflow rather than in the profile's set-resources, which `--set-resources` on the
    command line would replace as a whole."""
    gpu = environ.get("DDB_SLURM_GPU_PARTITION", "").strip()
    common = environ.get("DDB_SLURM_PARTITION", "").strip() or environ.get("SBATCH_PARTITION", "").strip() or None
    return gpu, common


def per_dataset(values: dict):
    """``values`` (run -> value) as a rule's threads or resource: the value itself where every run agrees,
    else a function of the job's wildcards (Snakemake declares resources per rule, not per job)."""
    if len({repr(v) for v in values.values()}) == 1:
        return next(iter(values.values()))
    return lambda wildcards: values[wildcards.ds]


class ResourcePolicy:
    """The requests of every rule for the runs ``datasets`` (run -> dataset entry, ddb.runs.Runs.entries)
    under the validated ``config``; ``environ`` names the partitions (:func:`partitions`)."""

    def __init__(self, config: dict, datasets: Mapping[str, dict], environ: Mapping[str, str]):
        self.resources = config["resources"]
        self.datasets = datasets
        self.gpu_partition, self.common_partition = partitions(environ)

    @property
    def generation_group(self) -> str | None:
        """The `group` of mask, inpaint and ig_score: with resources.group_generation, one SLURM job per shard
        runs the chain in series (one queue wait instead of three; the shard's files are read back on the node
        that wrote them), asking for one GPU, the largest mem_mb and the sum of the runtimes. None otherwise."""
        return GENERATION_GROUP if self.resources["group_generation"] else None

    def estimated_runtime(self, rule: str, ds: str) -> int | None:
        """Minutes a job of ``rule`` for run ``ds`` is estimated to take from its work (ddb.sizing); None where
        config resources.rules sets the rule's runtime, or nothing is estimated (the demo, light rules)."""
        if "runtime" in self.resources["rules"].get(rule, {}):
            return None
        from .sizing import rule_estimate

        estimate = rule_estimate(rule, self.datasets[ds], self.resources)
        return None if estimate is None else estimate["minutes"]

    def configured(self, rule: str, ds: str | None = None, capped: bool = True) -> dict:
        """gpu, mem_mb, runtime, threads for ``rule``: the defaults of its resource class, overridden by config
        resources.rules, then for run ``ds`` by its dataset's own `resources`: `scale` multiplies mem_mb and
        runtime, the runtime estimated from the job's work replaces the scaled runtime (unless resources.rules
        sets one), `max` caps every value (not with ``capped`` false), `rules` sets the rule's values outright."""
        return {key: value for key, (value, _) in self.explained(rule, ds, capped).items()}

    def explained(self, rule: str, ds: str | None = None, capped: bool = True,
                  where: Callable[[str], str] = str) -> dict[str, tuple[object, str]]:
        """:meth:`configured`, each value with the layer that set it last (what ``ddb config NAME --resources``
        prints): a config key is named through ``where`` (its dotted path in, a label out: the file that set it)."""
        cls = resource_class(rule) or "light"
        merged = {key: (value, f"resource class {cls!r} (ddb.resources)")
                  for key, value in DEFAULT_RESOURCES[cls].items()}
        merged.update({key: (value, where(f"resources.rules.{rule}.{key}"))
                       for key, value in self.resources["rules"].get(rule, {}).items()})
        if ds is not None:
            own = self.datasets[ds]["resources"]
            section = f"datasets.{ds}.resources"
            for key in ("mem_mb", "runtime"):
                value, source = merged[key]
                scaled = f"{source} x {own['scale']} ({where(f'{section}.scale')})" if own["scale"] != 1 else source
                merged[key] = (max(1, math.ceil(round(value * own["scale"], 6))), scaled)
            if estimate := self.estimated_runtime(rule, ds):
                merged["runtime"] = (estimate, "estimated from the job's work (ddb.sizing)")
            for key, cap in own["max"].items() if capped else ():
                if key in merged and cap < merged[key][0]:
                    merged[key] = (cap, where(f"{section}.max.{key}"))
            merged.update({key: (value, where(f"{section}.rules.{rule}.{key}"))
                           for key, value in own["rules"].get(rule, {}).items()})
        return merged

    def job_resources(self, rule: str, ds: str) -> dict:
        """The Snakemake resources of a job of ``rule`` for run ``ds`` (gpu_model, the GPU partition and
        cpu_fallback added where it asks for a GPU)."""
        merged = self.configured(rule, ds)
        # torch's intra-op thread count changes float results on a CPU, and Snakemake lowers `threads` to
        # --cores: scripts compute with this configured count instead (ddb.scripting.compute_threads).
        merged["cpu_threads"] = merged.pop("threads")
        if merged.get("gpu"):
            # no gpu_model: the plugin asks for any GPU (--gpus=1)
            if self.resources["gpu_model"]:
                merged["gpu_model"] = self.resources["gpu_model"]
            if self.gpu_partition:
                merged["slurm_partition"] = self.gpu_partition
            # read by the job itself (ddb.scripting.check_cuda): may it run on a CPU if it finds no CUDA?
            fallback = self.datasets[ds]["resources"]["cpu_fallback"]
            merged["cpu_fallback"] = int(self.resources["cpu_fallback"] if fallback is None else fallback)
        return merged

    def rule_resources(self, rule: str) -> dict:
        """The Snakemake resources of ``rule``, each job's from its run (a missing one is dropped, except a
        GPU-less job's partition where the GPU rules have their own); runtime grows with the attempt
        (:meth:`runtime_by_attempt`)."""
        jobs = {ds: self.job_resources(rule, ds) for ds in self.datasets}
        names = dict.fromkeys(name for resources in jobs.values() for name in resources)
        fallback = {"slurm_partition": self.common_partition}
        merged = {name: per_dataset({ds: resources.get(name, fallback.get(name)) for ds, resources in jobs.items()})
                  for name in names}
        if "runtime" in merged:
            merged["runtime"] = self.runtime_by_attempt({ds: resources["runtime"] for ds, resources in jobs.items()})
        return merged

    def runtime_by_attempt(self, runtimes: dict):
        """A rule's runtime (minutes; run -> first request) as a function of Snakemake's `attempt`: a failed job
        that is retried (the slurm profile's `retries: 1`; a SLURM TIMEOUT most often) asks for `attempt` times
        its first runtime, and the training steps go on from their checkpoint (ddb.resume). Never above the
        dataset's `resources.max.runtime`, unless the first request already is."""
        caps = {ds: self.datasets[ds]["resources"]["max"].get("runtime") for ds in runtimes}
        first = next(iter(runtimes))

        def runtime(wildcards, attempt):
            ds = getattr(wildcards, "ds", None)
            ds = ds if ds in runtimes else first
            grown = runtimes[ds] * max(1, int(attempt))
            return grown if caps[ds] is None else max(runtimes[ds], min(grown, caps[ds]))

        return runtime

    def retries(self, rule: str) -> int | None:
        """A training rule's `retries`: where a dataset's max.runtime cuts its estimated runtime short, enough
        attempts to finish, each going on from the last checkpoint (ddb.sizing.training_retries); None (the
        profile's `retries`) elsewhere. Snakemake's settings are unknown while it reads the rules, so these
        retries hold for a local run too, where a job that fails is then run again from its checkpoint."""
        from .sizing import training_retries

        return training_retries([(self.configured(rule, ds, capped=False)["runtime"], self.configured(rule, ds)["runtime"])
                                 for ds in self.datasets if self.estimated_runtime(rule, ds) is not None])

    def rule_threads(self, rule: str):
        """The `threads` of ``rule``: each run's configured count (:func:`per_dataset`)."""
        return per_dataset({ds: self.configured(rule, ds)["threads"] for ds in self.datasets})
