"""`seeds`: the DAG once per seed, each run in its own folder, and summary.json with mean ± std per method."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import run_paths, target
from ddb.summary import format_summary
from test_summary import report

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def seeds_workdir(tmp_path) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["seeds"] = [0, 1, 2]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile",
               "config.yaml", "--cores", "1", *args]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)


def test_each_seed_runs_the_whole_dag_in_its_own_folder(seeds_workdir):
    result = snakemake(seeds_workdir, "-n", "--", target("seed_summary"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", output.split("Job stats:")[1].split("total")[0], re.M))
    # the data are drawn once; every seed trains, generates, prunes and retrains
    assert counts["prepare_dataset"] == "1" and counts["seed_run_data"] == "2"
    for rule in ("train_erm", "dfr", "evaluate", "mean_softmax"):
        assert counts[rule] == "3", rule
    assert counts["seed_summary"] == "1"
    assert int(counts["inpaint"]) % 3 == 0
    for run in ("demo", "demo/seed-1", "demo/seed-2"):
        assert target("erm_model", run) in output
        assert target("eval_json", run) in output


def test_the_seed_param_differs_per_run(seeds_workdir):
    """Each run's jobs get its own seed as their `seed` param (which every script draws from)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[seeds_workdir / "config.yaml"]),
                                snakefile=REPO / "Snakefile", workdir=seeds_workdir)
        workflow.dag()  # parses the Snakefile
        rule = workflow._workflow.get_rule("train_erm")
        seeds = {run: rule.params.seed(type("Wildcards", (), {"ds": run})())
                 for run in ("demo", "demo/seed-1", "demo/seed-2")}
    assert seeds == {"demo": 0, "demo/seed-1": 1, "demo/seed-2": 2}


def test_the_summary_rule_writes_json_table_and_prints_it(seeds_workdir):
    values = {"demo": report(0.1, 0.5, 0.9), "demo/seed-1": report(0.3, 0.6, 0.8), "demo/seed-2": report(0.2, 0.4, 0.6)}
    for run, content in values.items():
        path = run_paths(seeds_workdir, run).path("eval_json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    result = snakemake(seeds_workdir, "--allowed-rules", "seed_summary", "--", target("seed_summary"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    summary = json.loads(run_paths(seeds_workdir).path("seed_summary").read_text())
    assert summary["seeds"] == [0, 1, 2]
    assert summary["methods"]["erm"]["worst_group_accuracy"]["mean"] == pytest.approx(0.2)
    assert summary["methods"]["erm"]["worst_group_accuracy"]["std"] == pytest.approx(0.1)
    table = pd.read_parquet(run_paths(seeds_workdir).path("seed_summary_table"))
    assert len(table) == 3 * 3 * 3
    assert "demo: test accuracy over 3 seed(s) [0, 1, 2], mean ± std" in output

    # `ddb inspect` shows the same table under the config seed's run, and names a seed's run as such
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    inspect = lambda *args: subprocess.run([sys.executable, "-m", "ddb", "inspect", *args], cwd=seeds_workdir,  # noqa: E731
                                           capture_output=True, text=True, env=env, timeout=120)
    overview = inspect("results/demo")
    assert overview.returncode == 0, overview.stderr
    assert format_summary(summary) in overview.stdout and "results/demo/seed-<s>/" in overview.stdout
    assert json.loads(inspect("results/demo", "--json").stdout)["seed_summary"] == summary
    seed_run = inspect("results/demo/seed-1")
    assert seed_run.returncode == 0 and "dataset demo/seed-1" in seed_run.stdout.splitlines()[0]
    assert "mean ± std" not in seed_run.stdout  # the summary lies with the config seed's run only
