"""Tuning on the reduced demo (rules/tune.smk): a two-candidate tuning generates once, prunes and retrains per
candidate, selects on validation and evaluates the selected model alone; inspect and the report show every
candidate; an added candidate plans only itself."""

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

from helpers import REPO, planned_jobs, run_paths, run_snakemake, write_config
from ddb.paths import ARTIFACTS


TWO = {"thresholds": [[0.0, 0.0], [1.0, 1.0]]}

NAMES = ["P0_0-g1_1", "P1_1-g1_1"]


def planned_wildcards(workdir, *args):
    """(rule, wildcards) of every job a dry run plans."""
    result = run_snakemake(workdir, "-n", *args)
    jobs, rule = [], None
    for line in (result.stdout + result.stderr).splitlines():
        if match := re.match(r"\s*(?:local)?rule (\w+):", line):
            rule = match[1]
        elif rule and (match := re.match(r"\s*wildcards: (.*)", line)):
            jobs.append((rule, dict(item.split("=", 1) for item in match[1].split(", "))))
            rule = None
    return jobs


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory, demo_run):
    """The finished reduced demo with a two-candidate `tune` section added, then run: only the tuning reruns."""
    import shutil

    workdir = tmp_path_factory.mktemp("tuned") / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)
    before = planned_jobs(workdir)  # nothing, unless the code changed since the demo ran
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["demo"]["tune"] = TWO
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    run_snakemake(workdir, "--cores", "2")
    return workdir, jobs, before


def test_generation_runs_once_and_each_candidate_prunes_and_retrains(tuned_run):
    workdir, jobs, before = tuned_run
    # added to a finished run: each candidate prunes (2 pairs) and retrains, evaluate reruns; no generation
    # step (nor anything else that a dry run without the section would not plan) reruns
    assert {rule: n for rule, n in jobs.items() if rule.startswith("tune_")} == {
        "tune_prune": 4, "tune_retrain": 2, "tune_select": 1}
    assert jobs["evaluate"] == 1
    others = lambda planned: {rule: n for rule, n in planned.items() if rule not in ("all", "evaluate")
                              and not rule.startswith("tune_")}
    assert others(jobs) == others(before)
    paths = run_paths(workdir)
    for name in NAMES:  # one set of shards, none per candidate: a candidate's folder holds prune/ and retrain/
        found = {p.relative_to(paths.path("tune_candidate_dir", cand=name)).parts[0]
                 for p in paths.path("tune_candidate_dir", cand=name).rglob("*")}
        folder = Path(ARTIFACTS["tune_candidate_dir"])
        assert found == {Path(ARTIFACTS[name]).relative_to(folder).parts[0] for name in ("tune_prune", "tune_model")}, found
    assert len(paths.glob("mask_tar")) == 4 and len(paths.glob("inpaint_tar")) == 4
    psi = pd.read_parquet(paths.path("psi"))
    for name, thresholds in zip(NAMES, TWO["thresholds"]):
        for src, dst in (("landbird", "waterbird"), ("waterbird", "landbird")):
            table = pd.read_parquet(paths.path("tune_prune", cand=name, src=src, dst=dst))
            assert sorted(set(table["threshold"])) == sorted({thresholds[int(y)] for y in table["y"]})
            assert set(table["psi_source"]) <= set(psi["psi"])
        assert paths.path("tune_model", cand=name).is_file()
        history = pd.read_parquet(paths.path("tune_history", cand=name))
        assert history["selected"].sum() == 1 and not [c for c in history.columns if "test" in c]


def test_the_best_validation_wga_is_selected_and_only_it_is_evaluated_on_test(tuned_run, monkeypatch):
    workdir = tuned_run[0]
    monkeypatch.chdir(workdir)  # the manifest's image paths are relative to the working directory
    paths = run_paths(workdir)
    table = pd.read_parquet(paths.path("tune_candidates"))
    assert table["candidate"].tolist() == NAMES
    expected = []
    for order, name in enumerate(NAMES):
        history = pd.read_parquet(paths.path("tune_history", cand=name))
        best = history.loc[history["selected"]].iloc[0]
        kept = sum(int(pd.read_parquet(path)["keep"].sum()) for path in paths.glob("tune_prune", cand=name))
        row = table.set_index("candidate").loc[name]
        assert row["val_worst_group_accuracy"] == best["val_worst_group_accuracy"] and row["kept_total"] == kept
        expected.append((-best["val_worst_group_accuracy"], kept, order, name))
    winner = min(expected)[-1]
    assert table.loc[table["selected"], "candidate"].tolist() == [winner]
    chosen = json.loads(paths.path("tune_selected").read_text())
    assert chosen["selected"] == winner and chosen["thresholds"] == TWO["thresholds"][NAMES.index(winner)]

    # eval.json: DDB is the winner, recorded with its values; eval.parquet has one DDB model's rows
    report = json.loads(paths.path("eval_json").read_text())
    assert report["tune"]["selected"] == winner and report["tune"]["candidates"] == NAMES
    rows = pd.read_parquet(paths.path("eval_table"))
    manifest = pd.read_parquet(paths.path("manifest"))
    n_groups = manifest.loc[manifest["split"] == "test", "group"].nunique()
    assert (rows["model"] == "ddb").sum() == n_groups
    # the test accuracies are the winner's model's (evaluate loaded it, and no other candidate's)
    from ddb.models.classifier import eval_transform, load_classifier
    from ddb.training import evaluate_groups, train_sizes_of

    model, meta = load_classifier(paths.path("tune_model", cand=winner))
    metrics, _ = evaluate_groups(model, manifest[manifest["split"] == "test"],
                                 eval_transform(meta["image_size"], meta.get("transform", "stretch")), 32, "cpu",
                                 train_sizes_of(manifest))
    assert metrics["group_accuracy"] == report["ddb"]["group_accuracy"]
    log = (workdir / "results/logs/evaluate/demo.log").read_text()
    assert f"DDB is tuned candidate {winner}" in log


def test_inspect_and_the_report_show_every_candidate(tuned_run):
    workdir = tuned_run[0]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}

    def inspect(*args):
        result = subprocess.run([sys.executable, "-m", "ddb", "inspect", "results/demo", *args], cwd=workdir,
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return result.stdout

    paths = run_paths(workdir)
    table = pd.read_parquet(paths.path("tune_candidates")).set_index("candidate")
    winner = table.index[table["selected"]][0]
    out = inspect("--step", "tune")
    for name in NAMES:
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert f"{table.loc[name, 'kept_landbird']}/{table.loc[name, 'generated_landbird']}" in line
        assert f"{table.loc[name, 'val_worst_group_accuracy']:.3f}" in line
        assert f"{table.loc[name, 'val_mean_accuracy']:.3f}" in line
        assert line.rstrip().endswith("*") == (name == winner)
    overview = inspect()
    tune_line = next(line for line in overview.splitlines() if line.startswith("tune "))
    assert f"2 candidates, selected {winner}" in tune_line
    prune_line = next(line for line in overview.splitlines() if line.startswith("prune "))
    assert str(paths.folder("tune_prune", cand=winner).relative_to(paths.root)) + "/" in prune_line
    assert f"tuned candidate {winner}" in prune_line

    html_path = paths.path("report_tune_html")
    run_snakemake(workdir, "--cores", "1", str(html_path.relative_to(workdir)))
    html = html_path.read_text()
    assert all(name in html for name in NAMES) and f"Selected: {winner}" in html


def test_an_added_candidate_plans_only_itself(tuned_run):
    workdir = tuned_run[0]
    before = planned_wildcards(workdir)  # nothing, unless the code changed since the run
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["demo"]["tune"] = {"thresholds": TWO["thresholds"] + [[0.5, 0.5]]}
    write_config(workdir, config)
    try:
        jobs = planned_wildcards(workdir)
    finally:
        config["datasets"]["demo"]["tune"] = TWO
        write_config(workdir, config)
    # the new candidate's prune (2 pairs) and retrain, then the selection and evaluate downstream
    per_candidate = [(rule, w["cand"]) for rule, w in jobs if rule in ("tune_prune", "tune_retrain")]
    assert sorted(per_candidate) == [("tune_prune", "P0.5_0.5-g1_1")] * 2 + [("tune_retrain", "P0.5_0.5-g1_1")]
    assert {rule for rule, _ in jobs} - {rule for rule, _ in before} - {"all"} <= {
        "tune_prune", "tune_retrain", "tune_select", "evaluate"}
    assert {"tune_select", "evaluate"} <= {rule for rule, _ in jobs}
