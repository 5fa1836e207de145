"""The `slurm` profile: what `snakemake --profile slurm` would ask SLURM for, checked by a dry run.

Each test builds a tiny Waterbirds tree in ``tmp_path``, copies the repo's ``slurm/`` profile into the
working directory (Snakemake 9 resolves ``--profile slurm`` as ``./slurm/`` there) and runs the CLI
from that directory with no SLURM command on PATH: a dry run validates against the slurm executor
but executes nothing, so it needs neither ``sbatch`` nor ``sinfo``/``sacct``.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import cluster_env, target
from test_datasets import make_waterbirds

REPO = Path(__file__).resolve().parents[2]
TARGET = target("eval_json", "waterbirds")  # results/waterbirds/eval.json, the command the README gives
GPU_RULES = {"train_erm", "textual_inversion", "select_low_loss", "mask", "inpaint", "ig_score", "retrain",
             "dfr", "evaluate"}
LIGHT_RULES = {"prepare_dataset", "mean_softmax", "prune"}


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A working directory with the profile, a Waterbirds tree and a config that targets it."""
    root = tmp_path / "data" / "waterbird_complete95_forest2water2"
    make_waterbirds(root)
    run_dir = tmp_path / "run"
    shutil.copytree(REPO / "slurm", run_dir / "slurm")
    repo_config = yaml.safe_load((REPO / "config.yaml").read_text())
    waterbirds = {**repo_config["datasets"]["waterbirds"], "root": str(root)}
    config = {"seed": 0, "targets": ["waterbirds"], "datasets": {"waterbirds": waterbirds}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run_dir


def dry_run(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """``snakemake --profile slurm -n ... TARGET`` run from ``workdir``, as a user on a login node would."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile", "slurm",
               "-n", *args, "--", TARGET]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def planned_jobs(output: str) -> list[tuple[str, dict]]:
    """(rule, resources) for every job a dry run prints, group members included."""
    jobs, rule = [], None
    for line in output.splitlines():
        header = re.match(r"\s*(?:local)?rule (\w+):$", line)
        if header:
            rule = header.group(1)
        elif rule and line.strip().startswith("resources:"):
            entries = line.split("resources:", 1)[1].split(", ")
            jobs.append((rule, dict(entry.strip().split("=", 1) for entry in entries)))
            rule = None
    return jobs


def expected_rule_resources(rule: str) -> dict:
    """mem_mb and runtime that config.yaml asks for ``rule`` (rules/common.smk's defaults otherwise); the
    runtime of a rule it gives none is the one estimated from a Waterbirds job's work (ddb.sizing)."""
    rules = yaml.safe_load((REPO / "config.yaml").read_text())["resources"]["rules"]
    expected = dict(rules.get(rule, {"mem_mb": 4000, "runtime": 30}))
    if "runtime" not in expected:
        expected["runtime"] = waterbirds_estimate(rule)
    return expected


@functools.lru_cache(maxsize=None)
def waterbirds_estimate(rule: str) -> int:
    from ddb.config import load_config
    from ddb.sizing import rule_estimate

    config = load_config(REPO / "config.yaml")
    return rule_estimate(rule, config["datasets"]["waterbirds"], config["resources"])["minutes"]


def test_dry_run_prints_slurm_resources_per_job(workdir):
    result = dry_run(workdir, cluster_env(DDB_SLURM_ACCOUNT="ddb_account", DDB_SLURM_PARTITION="standard"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    # ("Using profiles slurm and workflow specific profile ..." when profiles/default/ exists too)
    assert re.search(r"Using profiles? slurm\b", output)
    # fetch_model runs where Snakemake runs (a local rule), one job per hub model of the config
    jobs = [(rule, resources) for rule, resources in planned_jobs(output) if rule != "fetch_model"]
    assert sum(rule == "fetch_model" for rule, _ in planned_jobs(output)) == 5
    # 1 manifest, ERM, 2 tokens, 2 low-loss, Ψ, 2 pairs x 2 shards x (mask, inpaint, IG), 2 prunes, retrain, DFR,
    # eval (K = 1300 landbirds and 1074 waterbirds, at most 1000 images a shard: 2 shards per source class)
    assert {rule for rule, _ in jobs} == GPU_RULES | LIGHT_RULES
    assert len(jobs) == 24
    for rule, resources in jobs:
        expected = expected_rule_resources(rule)
        assert resources["slurm_account"] == "ddb_account", rule
        assert resources["slurm_partition"] == "standard", rule
        assert int(resources["mem_mb"]) == expected["mem_mb"], rule
        assert int(resources["runtime"]) == expected["runtime"], rule
        if rule in GPU_RULES:
            assert resources["gpu"] == "1" and resources["gpu_model"] == "a100", rule
        else:
            assert "gpu" not in resources and "gpu_model" not in resources, rule


def test_gpu_rules_go_to_their_own_partition(workdir):
    env = cluster_env(DDB_SLURM_ACCOUNT="ddb_account", DDB_SLURM_PARTITION="cpu",
                      DDB_SLURM_GPU_PARTITION="gpu_a100")
    result = dry_run(workdir, env)
    assert result.returncode == 0, result.stderr[-4000:]
    for rule, resources in planned_jobs(result.stdout + result.stderr):
        assert resources["slurm_partition"] == ("gpu_a100" if rule in GPU_RULES else "cpu"), rule


def test_set_resources_on_the_command_line_keeps_the_gpu_partition(workdir):
    """docs/cluster.md's override: `--set-resources` replaces the profile's whole set-resources, so the GPU
    partition must not live there."""
    env = cluster_env(DDB_SLURM_ACCOUNT="ddb_account", DDB_SLURM_PARTITION="cpu",
                      DDB_SLURM_GPU_PARTITION="gpu_a100")
    result = dry_run(workdir, env, "--set-resources", "inpaint:runtime=240")
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    for rule, resources in jobs:
        assert resources["slurm_partition"] == ("gpu_a100" if rule in GPU_RULES else "cpu"), rule
        assert int(resources["runtime"]) == (240 if rule == "inpaint" else expected_rule_resources(rule)["runtime"])


def test_a_dataset_entry_scales_caps_and_sets_its_own_requests(workdir):
    """datasets.<name>.resources: scale (mem_mb, runtime), max (caps), rules (as given); other datasets keep
    theirs; threads are torch's (cpu_threads) too."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    small = {**config["datasets"]["waterbirds"],
             "resources": {"scale": 0.5, "max": {"threads": 2, "mem_mb": 10000},
                           "rules": {"inpaint": {"threads": 3, "mem_mb": 20000}, "evaluate": {"gpu": 0}}}}
    config["datasets"]["small"] = small
    config["targets"] = ["waterbirds", "small"]
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile", "slurm",
               "-n", "--", TARGET, target("eval_json", "small")]
    env = cluster_env(DDB_SLURM_ACCOUNT="a", DDB_SLURM_PARTITION="cpu", DDB_SLURM_GPU_PARTITION="gpu")
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    seen = set()
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", output):
        header, wildcards = re.match(r"\s*(?:local)?rule (\w+):", block), re.search(r"wildcards: ds=(\w+)", block)
        if not header or not wildcards or "resources:" not in block:
            continue
        rule, ds = header.group(1), wildcards.group(1)
        (_, resources), = planned_jobs(block)
        base = {"threads": 1, **expected_rule_resources(rule)}
        if ds == "waterbirds" or rule in ("mean_softmax", "prune"):  # local rules: no cluster request
            expected = base
        else:
            # `scale` halves a configured runtime; an estimated one counts the dataset's own work already
            estimated = "runtime" not in yaml.safe_load((REPO / "config.yaml").read_text())["resources"]["rules"].get(
                rule, {"runtime": 30})
            expected = {"mem_mb": min(base["mem_mb"] // 2, 10000),
                        "runtime": base["runtime"] if estimated else base["runtime"] // 2,
                        "threads": min(base["threads"], 2)}
            expected.update({"inpaint": {"threads": 3, "mem_mb": 20000}}.get(rule, {}))
        if rule not in ("mean_softmax", "prune"):
            assert int(resources["mem_mb"]) == expected["mem_mb"], (rule, ds)
            assert int(resources["runtime"]) == expected["runtime"], (rule, ds)
            # (a dry run with the slurm executor prints no `threads:`; sbatch's --cpus-per-task is checked
            # in test_cluster.py)
            assert int(resources["cpu_threads"]) == expected["threads"], (rule, ds)
        gpu = rule in GPU_RULES and not (ds == "small" and rule == "evaluate")
        assert ("gpu_model" in resources) == gpu, (rule, ds)
        assert resources["slurm_partition"] == ("gpu" if gpu else "cpu"), (rule, ds)
        seen.add((rule, ds))
    assert {ds for _, ds in seen} == {"waterbirds", "small"} and len(seen) == 2 * len(GPU_RULES | LIGHT_RULES)


def test_a_retried_job_asks_for_more_runtime(workdir):
    """The profile retries a failed job once (a TIMEOUT most often; the training steps go on from their
    checkpoint): attempt n asks for n times the first runtime, never above the dataset's max.runtime
    (unless the first request is). Snakemake's `--attempt` sets the attempt a dry run plans for."""
    assert yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())["retries"] >= 1
    env = cluster_env(DDB_SLURM_ACCOUNT="a", DDB_SLURM_PARTITION="p")
    result = dry_run(workdir, env, "--attempt", "2")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    assert {rule for rule, _ in jobs} >= GPU_RULES
    for rule, resources in jobs:
        if rule in ("mean_softmax", "prune", "fetch_model"):  # local rules (in Snakemake's process): never retried
            continue
        assert int(resources["runtime"]) == 2 * expected_rule_resources(rule)["runtime"], rule
        assert int(resources["mem_mb"]) == expected_rule_resources(rule)["mem_mb"], rule

    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["waterbirds"]["resources"] = {"max": {"runtime": 300}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for attempt, grown in (("1", lambda first: first), ("3", lambda first: max(first, min(3 * first, 300)))):
        result = dry_run(workdir, env, "--attempt", attempt)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        for rule, resources in planned_jobs(result.stdout + result.stderr):
            if rule in ("mean_softmax", "prune", "fetch_model"):
                continue
            first = min(expected_rule_resources(rule)["runtime"], 300)
            assert int(resources["runtime"]) == grown(first), (rule, attempt)


def test_resource_names_are_the_ones_the_slurm_plugin_reads(workdir):
    """`gpu` + `gpu_model` become sbatch's --gpus=a100:1 (snakemake-executor-plugin-slurm's own code)."""
    utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils")
    result = dry_run(workdir, cluster_env(DDB_SLURM_ACCOUNT="a", DDB_SLURM_PARTITION="p"))
    resources = dict(next(r for rule, r in planned_jobs(result.stdout + result.stderr) if rule == "inpaint"))
    resources["gpu"] = int(resources["gpu"])

    class Job:  # the two attributes set_gres_string reads
        def __init__(self, values):
            self.resources = type("Resources", (dict,), {"__getattr__": dict.__getitem__})(values)

    assert utils.set_gres_string(Job(resources)).strip() == "--gpus=a100:1"


def test_group_generation_makes_one_job_per_shard(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["resources"] = {"group_generation": True}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = dry_run(workdir, cluster_env(DDB_SLURM_ACCOUNT="a", DDB_SLURM_PARTITION="p"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    groups = output.split("Group job generation")[1:]
    assert len(groups) == 4  # 2 class pairs x 2 shards
    for group in groups:
        members = sorted(rule for rule, _ in planned_jobs(group.split("\n[", 1)[0]))
        assert members == ["ig_score", "inpaint", "mask"]


@pytest.mark.parametrize("missing, present", [("DDB_SLURM_ACCOUNT", "DDB_SLURM_PARTITION"),
                                              ("DDB_SLURM_PARTITION", "DDB_SLURM_ACCOUNT")])
def test_unset_variable_is_named(workdir, missing, present):
    """One short message naming the variable, not Snakemake's usage text with the error at its end."""
    result = dry_run(workdir, cluster_env(**{present: "x"}))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"slurm profile: environment variable {missing} (or SBATCH_{missing.split('_')[-1]}) is not set" in output
    assert f"fix: export {missing}=<value>;" in output
    assert "usage:" not in output and len(output.strip().splitlines()) <= 8, output
