"""ddb.resources: each rule's cluster requests from its resource class, the config's and each dataset's own
`resources`, the partitions of the environment, the runtime of a retried job and a training rule's retries."""

from __future__ import annotations

import copy
import types

import pytest
import yaml

from helpers import REPO
from ddb.config import validate_config
from ddb.resources import DEFAULT_RESOURCES, ResourcePolicy, partitions, per_dataset
from ddb.runs import Runs
from ddb.sizing import attempts_needed


@pytest.fixture(scope="module")
def repo_config() -> dict:
    """config.yaml validated (defaults filled in): the demo and the paper's datasets."""
    return validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))


@pytest.fixture
def config(repo_config) -> dict:
    return copy.deepcopy(repo_config)


def policy(config: dict, environ=None, only=None) -> ResourcePolicy:
    entries = Runs(config).entries
    if only is not None:
        entries = {run: entries[run] for run in only}
    return ResourcePolicy(config, entries, environ or {})


def wildcards(ds: str):
    return types.SimpleNamespace(ds=ds)


def test_partitions_from_the_environment():
    assert partitions({}) == ("", None)
    assert partitions({"SBATCH_PARTITION": " batch "}) == ("", "batch")
    assert partitions({"DDB_SLURM_PARTITION": "cpu", "SBATCH_PARTITION": "batch"}) == ("", "cpu")
    assert partitions({"DDB_SLURM_GPU_PARTITION": " gpu ", "DDB_SLURM_PARTITION": "  "}) == ("gpu", None)


def test_the_demo_is_capped_by_its_own_max(config):
    demo = policy(config, only=["demo"])
    # train_erm: the training class's 240 minutes, config.yaml's 32000 MB and 8 threads, then the demo's max
    assert demo.configured("train_erm") == {"gpu": 1, "mem_mb": 32000, "runtime": 240, "threads": 8}
    assert demo.configured("train_erm", "demo") == {"gpu": 1, "mem_mb": 3000, "runtime": 30, "threads": 2}
    assert demo.configured("train_erm", "demo", capped=False) == {"gpu": 1, "mem_mb": 32000, "runtime": 240,
                                                                    "threads": 8}
    # a rule of no resource class asks for the light defaults
    assert demo.configured("prune", "demo") == {"mem_mb": 3000, "runtime": 30, "threads": 1}
    assert DEFAULT_RESOURCES["light"] == {"mem_mb": 4000, "runtime": 30, "threads": 1}


def test_scale_then_estimate_then_max_then_the_datasets_own_rules(config):
    config["datasets"]["demo"]["resources"] = {"scale": 1.5, "max": {"mem_mb": 40000}, "rules": {},
                                               "cpu_fallback": None}
    config["datasets"]["waterbirds"]["resources"].update(max={"runtime": 20}, rules={"retrain": {"mem_mb": 7}})
    both = policy(config, only=["demo", "waterbirds"])
    # the demo: nothing estimated, so 240 x 1.5; 32000 x 1.5 = 48000 capped at 40000
    assert both.configured("train_erm", "demo") == {"gpu": 1, "mem_mb": 40000, "runtime": 360, "threads": 8}
    estimate = both.estimated_runtime("retrain", "waterbirds")
    assert estimate > 20
    assert both.configured("retrain", "waterbirds", capped=False) == {"gpu": 1, "mem_mb": 7, "runtime": estimate,
                                                                       "threads": 8}
    assert both.configured("retrain", "waterbirds") == {"gpu": 1, "mem_mb": 7, "runtime": 20, "threads": 8}
    # resources.rules setting a runtime leaves nothing to estimate
    assert both.estimated_runtime("mask", "waterbirds") is None
    assert both.configured("mask", "waterbirds")["runtime"] == 20


def test_a_gpu_job_names_its_model_partition_and_cpu_fallback(config):
    gpu = policy(config, {"DDB_SLURM_GPU_PARTITION": "gpuq"}, only=["demo", "waterbirds"])
    assert gpu.job_resources("evaluate", "demo") == {"gpu": 1, "mem_mb": 3000, "runtime": 30, "cpu_threads": 2,
                                                     "gpu_model": "a100", "slurm_partition": "gpuq",
                                                     "cpu_fallback": 1}
    assert gpu.job_resources("evaluate", "waterbirds")["cpu_fallback"] == 0  # resources.cpu_fallback: false
    assert gpu.job_resources("prepare_dataset", "demo") == {"mem_mb": 3000, "runtime": 30, "cpu_threads": 1}
    config["resources"]["gpu_model"] = None
    assert "gpu_model" not in policy(config, only=["demo"]).job_resources("evaluate", "demo")


def test_rule_resources_are_values_where_the_runs_agree_and_functions_where_not(config):
    config["datasets"]["waterbirds"]["resources"]["rules"] = {"train_erm": {"gpu": 0}}
    rules = policy(config, {"DDB_SLURM_GPU_PARTITION": "gpuq", "SBATCH_PARTITION": "batch"},
                   only=["demo", "waterbirds"])
    train = rules.rule_resources("train_erm")
    assert set(train) == {"gpu", "mem_mb", "runtime", "cpu_threads", "gpu_model", "slurm_partition", "cpu_fallback"}
    assert train["mem_mb"](wildcards("demo")) == 3000 and train["mem_mb"](wildcards("waterbirds")) == 32000
    # the GPU-less job of the rule goes to the common partition, the GPU job to the GPU one
    assert train["slurm_partition"](wildcards("demo")) == "gpuq"
    assert train["slurm_partition"](wildcards("waterbirds")) == "batch"
    assert train["gpu_model"](wildcards("waterbirds")) is None
    assert train["runtime"](wildcards("waterbirds"), 1) == rules.estimated_runtime("train_erm", "waterbirds")
    prepare = rules.rule_resources("prepare_dataset")
    assert prepare["cpu_threads"] == 1 and "slurm_partition" not in prepare
    assert rules.rule_threads("prepare_dataset") == 1
    threads = rules.rule_threads("train_erm")
    assert threads(wildcards("demo")) == 2 and threads(wildcards("waterbirds")) == 8


def test_a_retried_job_asks_for_more_time_up_to_its_max(config):
    config["datasets"]["waterbirds"]["resources"]["max"] = {"runtime": 250}
    config["resources"]["rules"]["retrain"]["runtime"] = 100
    rules = policy(config, only=["demo", "waterbirds"])
    runtime = rules.rule_resources("retrain")["runtime"]
    assert [runtime(wildcards("waterbirds"), attempt) for attempt in (1, 2, 3, 4)] == [100, 200, 250, 250]
    # the demo's first request is its max already
    assert [runtime(wildcards("demo"), attempt) for attempt in (1, 2)] == [30, 30]
    # a job of no run (a group job's wildcards) takes the first run's
    assert runtime(types.SimpleNamespace(), 2) == 30
    # the dataset's own `rules` set a first request above its max: a retry asks for that, no more, no less
    config["datasets"]["waterbirds"]["resources"].update(max={"runtime": 50}, rules={"retrain": {"runtime": 80}})
    over = policy(config, only=["waterbirds"]).rule_resources("retrain")["runtime"]
    assert [over(wildcards("waterbirds"), attempt) for attempt in (1, 3)] == [80, 80]


def test_retries_where_max_runtime_cuts_the_estimate_short(config):
    assert policy(config).retries("retrain") is None  # every estimate fits its dataset's requests
    config["datasets"]["celeba"]["resources"]["max"] = {"runtime": 60}
    capped = policy(config)
    estimate = capped.estimated_runtime("retrain", "celeba")
    assert estimate > 60
    assert capped.retries("retrain") == attempts_needed(estimate, 60) - 1 > 0
    assert capped.retries("mask") is None  # nothing estimated: the profile's retries
    assert policy(config, only=["demo"]).retries("retrain") is None  # the demo is never estimated


def test_per_dataset():
    assert per_dataset({"a": 4, "b": 4}) == 4
    varies = per_dataset({"a": 4, "b": None})
    assert varies(wildcards("a")) == 4 and varies(wildcards("b")) is None


def test_generation_group(config):
    assert policy(config, only=["demo"]).generation_group is None
    config["resources"]["group_generation"] = True
    assert policy(config, only=["demo"]).generation_group == "generation"
