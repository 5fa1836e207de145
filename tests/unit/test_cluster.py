"""Running on SLURM without hanging: the check of planned jobs against the nodes (ddb.cluster), the
status command the `slurm` profile picks (with fake SLURM commands on PATH). The runs that stop before
submitting are in tests/workflow/test_cluster_dry_run.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from helpers import REPO
from helpers import cluster_env

sys.path.insert(0, str(REPO / "workflow"))
from ddb.cluster import (Request, check_fit, check_planned_jobs, job_request, misfits,  # noqa: E402
                         parse_gres, parse_sinfo)
from ddb.errors import DDBError  # noqa: E402

# `sinfo --all --noheader --Node --format=%P|%N|%c|%m|%G` on a small cluster: a default CPU partition
# with two sizes of node, and a GPU partition (typed GPUs, one node with an index suffix).
SINFO = """\
cpu*|c1|2|4000|(null)
cpu*|c2|16|64000|(null)
gpu|g1|8|32000|gpu:a100:1
gpu|g2|32|256000|gpu:a100:4(S:0-1)
"""


def fake_run(stdout: str = SINFO, returncode: int = 0):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, returncode, stdout=stdout, stderr="")

    run.calls = calls
    return run


def test_sinfo_output_is_read_per_node_and_partition():
    nodes = parse_sinfo(SINFO)
    assert [(n.partition, n.name, n.cpus, n.mem_mb, n.default) for n in nodes] == [
        ("cpu", "c1", 2, 4000, True), ("cpu", "c2", 16, 64000, True),
        ("gpu", "g1", 8, 32000, False), ("gpu", "g2", 32, 256000, False)]
    assert nodes[3].gpu_count("a100") == 4 and nodes[3].gpu_count() == 4 and nodes[3].gpu_count("v100") == 0


@pytest.mark.parametrize("gres, gpus", [("(null)", {}), ("gpu:2", {"": 2}), ("gpu:a100:4(S:0-1)", {"a100": 4}),
                                        ("gpu:a100:2,gpu:v100:1,nvme:1", {"a100": 2, "v100": 1}),
                                        ("gpu:a100:1(IDX:0),tmpdisk:100", {"a100": 1})])
def test_gres_strings(gres, gpus):
    assert parse_gres(gres) == gpus


def test_a_job_that_fits_a_node_passes():
    nodes = parse_sinfo(SINFO)
    requests = [Request("prepare_dataset", "cpu", cpus=1, mem_mb=4000),
                Request("train_erm", "gpu", cpus=8, mem_mb=32000, gpus=1, gpu_model="a100"),
                Request("inpaint", "gpu", cpus=16, mem_mb=100000, gpus=4, gpu_model="a100"),
                Request("prune", None, cpus=16, mem_mb=64000)]  # None: the default partition (cpu)
    assert misfits(requests, nodes) == []
    check_fit(requests, nodes)


def test_more_cpus_than_any_node_names_the_rule_the_request_and_the_node_size():
    nodes = parse_sinfo(SINFO)
    requests = [Request("train_erm", "gpu", cpus=64, mem_mb=32000, gpus=1, gpu_model="a100", dataset="waterbirds"),
                Request("evaluate", "gpu", cpus=4, mem_mb=16000, gpus=1, gpu_model="a100")]
    with pytest.raises(DDBError) as error:
        check_fit(requests, nodes)
    message = str(error.value)
    assert "rule train_erm (dataset waterbirds) asks for 64 CPUs, 32000 MB memory, 1 GPU (a100)" in message
    assert "the nodes of partition gpu have at most 32 CPUs, 256000 MB memory and 4 GPUs (a100)" in message
    assert "evaluate" not in message
    assert "PENDING" in message and "fix:" in message


def test_memory_gpus_and_partitions_are_checked_too():
    nodes = parse_sinfo(SINFO)
    lines = misfits([Request("mask", "cpu", cpus=2, mem_mb=128000),            # more memory than any cpu node
                     Request("inpaint", "gpu", cpus=1, gpus=8, gpu_model="a100"),  # more GPUs
                     Request("ig_score", "gpu", cpus=1, gpus=1, gpu_model="h100"),  # a GPU model no node has
                     Request("retrain", "nosuch", cpus=1)], nodes)
    assert len(lines) == 4
    assert lines[0].startswith("rule mask asks for 2 CPUs, 128000 MB memory") and "64000 MB" in lines[0]
    assert lines[1].startswith("rule inpaint asks for 1 CPU, 8 GPUs (a100)") and "4 GPUs (a100)" in lines[1]
    assert "0 GPUs (h100)" in lines[2]
    assert lines[3] == "rule retrain asks for partition nosuch, but sinfo lists no node in it"


def test_a_gpu_type_the_nodes_lack_names_their_types_and_the_config_key():
    """`gpu_model: a100` where sinfo names the GRES `nvidia_a100-sxm4-80gb`: the message lists the types of
    the partition's nodes and resources.gpu_model, not only "0 GPUs (a100)" and a smaller request."""
    nodes = parse_sinfo("gpu|g1|64|512000|gpu:nvidia_a100-sxm4-80gb:4(S:0-1)\n"
                        "gpu|g2|64|512000|gpu:nvidia_a100_3g.40gb:2,gpu:nvidia_a100-sxm4-80gb:2\n"
                        "cpu*|c1|64|256000|(null)\n")
    with pytest.raises(DDBError) as error:
        check_fit([Request("inpaint", "gpu", cpus=4, mem_mb=32000, gpus=1, gpu_model="a100", dataset="waterbirds")],
                  nodes)
    message = str(error.value)
    assert ("rule inpaint (dataset waterbirds) asks for 4 CPUs, 32000 MB memory, 1 GPU (a100), but the nodes of "
            "partition gpu have at most 64 CPUs, 512000 MB memory and 0 GPUs (a100); its nodes' GPUs are of type "
            "nvidia_a100-sxm4-80gb, nvidia_a100_3g.40gb, not a100: set resources.gpu_model in config.yaml to one "
            "of these (as sinfo names it), or null for any GPU") in message
    assert "fix: name a GPU type the nodes have in resources.gpu_model (config.yaml; null: any GPU)" in message
    # the same request with the nodes' own type fits; an untyped GRES is named as such
    check_fit([Request("inpaint", "gpu", cpus=4, mem_mb=32000, gpus=1, gpu_model="nvidia_a100-sxm4-80gb")], nodes)
    untyped = misfits([Request("mask", "gpu", cpus=1, gpus=1, gpu_model="a100")],
                      parse_sinfo("gpu|g1|8|32000|gpu:2\n"))
    assert untyped[0].endswith("its nodes' GPUs are of type untyped (gpu:N), not a100: set resources.gpu_model in "
                               "config.yaml to one of these (as sinfo names it), or null for any GPU")
    # too many GPUs of the right type is a request to lower: no type hint
    assert "resources.gpu_model" not in misfits([Request("inpaint", "gpu", cpus=1, gpus=8, gpu_model="a100")],
                                                parse_sinfo(SINFO))[0]


def test_one_line_per_rule_with_its_largest_request_and_either_partition_of_a_list():
    nodes = parse_sinfo(SINFO)
    lines = misfits([Request("mask", "cpu", cpus=20), Request("mask", "cpu", cpus=40), Request("mask", "cpu", cpus=30),
                     Request("retrain", "cpu,gpu", cpus=24)], nodes)  # 24 CPUs: node g2 of gpu
    assert lines == ["rule mask asks for 40 CPUs, but the nodes of partition cpu have at most 16 CPUs, "
                     "64000 MB memory and 0 GPUs"]


def fake_job(rule="train_erm", threads=8, is_local=False, **resources):
    return SimpleNamespace(rule=SimpleNamespace(name=rule), threads=threads, is_local=is_local,
                           resources=resources, wildcards_dict={"ds": "demo"})


def test_a_job_is_read_as_the_slurm_plugin_submits_it():
    request = job_request(fake_job(mem_mb=32000, gpu=1, gpu_model="a100", slurm_partition="gpu"))
    assert request == Request("train_erm", "gpu", cpus=8, mem_mb=32000, gpus=1, gpu_model="a100", dataset="demo")
    # cpus_per_task wins over threads, mem_mb_per_cpu is per CPU, gpu_model alone means one GPU
    request = job_request(fake_job(threads=2, cpus_per_task=4, mem_mb_per_cpu=1000, gpu_model="a100"))
    assert (request.cpus, request.mem_mb, request.gpus, request.partition) == (4, 4000, 1, None)
    assert job_request(fake_job(slurm_cluster="other")) is None


def test_planned_jobs_are_checked_with_one_sinfo_call_and_local_rules_are_skipped():
    run = fake_run()
    jobs = [fake_job(threads=2, mem_mb=4000, slurm_partition="cpu"),
            fake_job("prune", threads=99, is_local=True, mem_mb=10 ** 9)]  # runs in the Snakemake process
    assert check_planned_jobs(jobs, run=run) == 1
    assert len(run.calls) == 1 and run.calls[0][0] == "sinfo"
    with pytest.raises(DDBError, match="rule train_erm .dataset demo. asks for 64 CPUs"):
        check_planned_jobs([fake_job(threads=64, slurm_partition="cpu")], run=fake_run())


def test_without_sinfo_the_check_warns_and_lets_the_run_go_on():
    warnings = []
    assert check_planned_jobs([fake_job(threads=64)], warn=warnings.append, run=fake_run(returncode=1)) == 0

    def missing(command, **kwargs):
        raise FileNotFoundError(command[0])

    assert check_planned_jobs([fake_job(threads=64)], warn=warnings.append, run=missing) == 0
    assert len(warnings) == 2 and "sinfo" in warnings[0]


# ---- the profile's status command -------------------------------------------------------------------

def fake_commands(directory: Path, **scripts: str) -> Path:
    """Executables ``name`` with shell body ``scripts[name]`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in scripts.items():
        path = directory / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return directory


def scontrol(accounting: str, min_job_age: str = "300 sec") -> str:
    return (f"cat <<'EOF'\nConfiguration data as of 2026-01-01T00:00:00\nAccountingStorageType   = {accounting}\n"
            f"MinJobAge               = {min_job_age}\nEOF")


def load_profile(env: dict) -> dict:
    """slurm/config.yaml rendered by YTE (as Snakemake does) in a child process with environment ``env``."""
    code = ("import sys, yaml, yte; print(yaml.safe_dump(yte.process_yaml(open(sys.argv[1]).read())))")
    result = subprocess.run([sys.executable, "-c", code, str(REPO / "slurm" / "config.yaml")], env=env,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("commands, expected", [
    ({"scontrol": scontrol("accounting_storage/none")}, "squeue"),
    ({"scontrol": scontrol("accounting_storage/slurmdbd", "30 sec"), "sacct": "exit 0"}, "sacct"),
    ({"scontrol": "exit 1", "sacct": "echo 'Slurm accounting storage is disabled' >&2; exit 1"}, "squeue"),
    ({"scontrol": "exit 1", "sacct": "exit 0"}, "sacct"),
    ({}, "sacct"),  # no SLURM at all (a dry run on a laptop): nothing will be queried
])
def test_the_profile_picks_squeue_without_accounting_and_sacct_with_it(tmp_path, commands, expected):
    env = cluster_env(DDB_SLURM_ACCOUNT="a", DDB_SLURM_PARTITION="p")
    env["PATH"] = os.pathsep.join([str(fake_commands(tmp_path / "bin", **commands)), env["PATH"]])
    profile = load_profile(env)
    assert profile["slurm-status-command"] == expected
    assert profile["slurm-init-seconds-before-status-checks"] <= 15


def test_the_profile_stops_where_squeue_would_forget_finished_jobs(tmp_path):
    env = cluster_env(DDB_SLURM_ACCOUNT="a", DDB_SLURM_PARTITION="p")
    bin_dir = fake_commands(tmp_path / "bin", scontrol=scontrol("accounting_storage/none", "60 sec"))
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    with pytest.raises(RuntimeError, match="MinJobAge=60 s.*MinJobAge >= 180"):
        load_profile(env)


def test_the_profiles_placeholder_for_an_unset_variable_is_one_message():
    from ddb.cluster import check_profile_variables

    check_profile_variables({"slurm_account": "none", "slurm_partition": "debug", "mem_mb": 4000})
    with pytest.raises(DDBError) as error:
        check_profile_variables({"slurm_account": "DDB_SLURM_ACCOUNT_IS_NOT_SET", "slurm_partition": "debug"})
    assert str(error.value).startswith("slurm profile: environment variable DDB_SLURM_ACCOUNT (or SBATCH_ACCOUNT) "
                                       "is not set\n  fix: export DDB_SLURM_ACCOUNT=<value>;")
