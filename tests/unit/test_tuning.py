"""Tuning P and γ on validation (a dataset entry's `tune` section; ddb.tuning, rules/tune.smk): the
candidates, their names and the config check; the selection and its ties; and, on the reduced demo, a
two-candidate tuning that generates once, prunes and retrains per candidate, selects on validation and
evaluates the selected model alone."""

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

from conftest import REPO, planned_jobs, run_paths, run_snakemake, write_config
from ddb.config import load_config, validate_config
from ddb.errors import DDBError
from ddb.paths import ARTIFACTS, RunPaths
from ddb.tuning import (NAME_PATTERN, candidate_name, candidate_record, candidate_sections, candidates, select,
                        selected_model, selection)

CLASSES = ["landbird", "waterbird"]


def entry(**dataset):
    config = {"datasets": {"demo": {"format": "synthetic", "root": "x", **dataset}}}
    return validate_config(config)["datasets"]["demo"]


# ---- candidates, names, config --------------------------------------------------------------------------

def test_candidates_are_the_product_in_the_order_given_and_named_by_their_values():
    demo = entry(tune={"thresholds": [[0.0, 0.0], [0.2, 0.25]], "gammas": [[1, 1], [2.5, 10]]})
    found = candidates(demo)
    assert [c["name"] for c in found] == ["P0_0-g1_1", "P0_0-g2.5_10", "P0.2_0.25-g1_1", "P0.2_0.25-g2.5_10"]
    assert [c["order"] for c in found] == [0, 1, 2, 3]
    assert found[2]["thresholds"] == [0.2, 0.25] and found[2]["gammas"] == [1.0, 1.0]
    # path-safe and unique whatever the numbers: no '/', '-' only between P and g, no '+'
    odd = candidate_name([-1e-05, 1e20], [0.1, 3])
    assert odd == "Pm1em05_1e20-g0.1_3" and re.fullmatch(NAME_PATTERN, odd)
    assert candidate_name([0.1], [1]) != candidate_name([0.10000000000000002], [1])
    # a list left out is the entry's own value
    only_p = entry(tune={"thresholds": [[0.5, 0.5]]}, retrain={"gammas": [2, 3]})
    assert [c["name"] for c in candidates(only_p)] == ["P0.5_0.5-g2_3"]


def test_no_tune_section_changes_nothing():
    demo = entry()
    assert demo["tune"] is None and candidates(demo) == []


def test_with_pruning_disabled_the_thresholds_are_not_tuned():
    demo = entry(prune=False, tune={"thresholds": [[0, 0], [1, 1]], "gammas": [[1, 1], [2, 2]]})
    assert [c["name"] for c in candidates(demo)] == ["P1_1-g1_1", "P1_1-g2_2"]


def test_a_candidates_sections_carry_its_values():
    demo = entry(tune={"thresholds": [[0.0, 0.0], [0.3, 0.4]], "gammas": [[1, 2]]})
    cfg = candidate_sections(demo, "P0.3_0.4-g1_2", ("prune", "retrain", "classes"))
    assert cfg["prune"]["thresholds"] == [0.3, 0.4] and cfg["retrain"]["gammas"] == [1.0, 2.0]
    assert cfg["classes"] == CLASSES and demo["prune"]["thresholds"] == [1.0, 1.0]  # the entry is untouched
    with pytest.raises(DDBError, match="P9_9-g1_2.*its candidates: P0_0-g1_2, P0.3_0.4-g1_2"):
        candidate_sections(demo, "P9_9-g1_2", ("prune",))


@pytest.mark.parametrize("tune, message", [
    ({"thresholds": [0.0, 0.2]}, r"tune\.thresholds: is a flat list .*\n  fix: make each candidate a list"),
    ({"thresholds": [[0.0, 0.0, 0.0]]}, r"tune\.thresholds\.0: .*3 values but the dataset has 2 classes.*\n  fix: "
                                        r"give one value per class"),
    ({"gammas": [[1.0, 1.0], [1.0]]}, r"tune\.gammas\.1: \[1\.0\] is too short"),
    ({}, r"tune: lists no candidates"),
    ({"thresholds": [[0, 0], [0.0, 0.0]]}, r"tune: lists the candidate\(s\) P0_0-g1_1 more than once"),
    ({"gammas": [[1, -1]]}, r"tune\.gammas\.0\.1: -1 is less than the minimum of 0"),
    ({"thresholds": [[0, 0]], "pp": 1}, r"tune: .*'pp' was unexpected"),
])
def test_bad_tune_sections_are_named_with_the_fix(tune, message):
    with pytest.raises(DDBError, match=message):
        entry(tune=tune)


def test_the_repo_demo_tunes_p_on_a_small_grid():
    demo = load_config(REPO / "config.yaml")["datasets"]["demo"]
    found = candidates(demo)
    assert 2 <= len(found) <= 3 and len({tuple(c["gammas"]) for c in found}) == 1
    assert [0.0, 0.0] in [c["thresholds"] for c in found]  # the hand-set P = 0 is one candidate among others


# ---- the selection -------------------------------------------------------------------------------------

def history(*val_wga, selected=None, mean=0.5):
    rows = [{"epoch": e + 1, "loss": 0.1, "val_worst_group_accuracy": w, "val_mean_accuracy": mean}
            for e, w in enumerate(val_wga)]
    frame = pd.DataFrame(rows)
    best = int(frame["val_worst_group_accuracy"].idxmax()) if selected is None else selected - 1
    frame["selected"] = frame.index == best
    return frame


def verdicts(kept_per_label, generated_per_label=(10, 10)):
    rows = []
    for y, (kept, total) in enumerate(zip(kept_per_label, generated_per_label)):
        rows += [{"y": y, "keep": i < kept} for i in range(total)]
    return pd.DataFrame(rows)


def record(name, order, wga, kept, mean=0.5):
    candidate = {"name": name, "order": order, "thresholds": [0.0, 0.0], "gammas": [1.0, 1.0]}
    return candidate_record(candidate, [verdicts(kept)], history(0.1, wga, mean=mean), CLASSES)


def test_a_record_counts_kept_images_per_label_and_takes_the_kept_epoch():
    row = record("a", 0, 0.6, (3, 7), mean=0.8)
    assert (row["kept_landbird"], row["kept_waterbird"], row["kept_total"]) == (3, 7, 10)
    assert (row["generated_landbird"], row["generated_waterbird"]) == (10, 10)
    assert (row["epoch"], row["val_worst_group_accuracy"], row["val_mean_accuracy"]) == (2, 0.6, 0.8)
    # the epoch retrain kept, not a later better one (retrain's `selected` flag wins)
    candidate = {"name": "b", "order": 0, "thresholds": [0, 0], "gammas": [1, 1]}
    assert candidate_record(candidate, [verdicts((1, 1))], history(0.2, 0.9, selected=1), CLASSES)["epoch"] == 1


def test_the_best_validation_wga_wins():
    table = select([record("a", 0, 0.5, (9, 9)), record("b", 1, 0.7, (9, 9)), record("c", 2, 0.6, (1, 1))])
    assert table.loc[table["selected"], "candidate"].tolist() == ["b"]
    assert table["rank"].tolist() == [3, 1, 2] and table["candidate"].tolist() == ["a", "b", "c"]


def test_ties_go_to_fewer_kept_images_then_to_the_order_given():
    table = select([record("a", 0, 0.7, (9, 9)), record("b", 1, 0.7, (2, 3)), record("c", 2, 0.7, (3, 2))])
    assert table.loc[table["selected"], "candidate"].tolist() == ["b"]  # 5 kept; c also 5, but later
    assert table["rank"].tolist() == [3, 1, 2]
    # records given out of order: the order given (`order`), not the list's, breaks the last tie
    table = select([record("late", 1, 0.7, (2, 2)), record("early", 0, 0.7, (2, 2))])
    assert table.loc[table["selected"], "candidate"].tolist() == ["early"]
    # equal accuracies computed with float noise still tie
    table = select([record("a", 0, 0.1 + 0.2, (5, 5)), record("b", 1, 0.3, (1, 1))])
    assert table.loc[table["selected"], "candidate"].tolist() == ["b"]


def test_selection_and_the_model_evaluate_reads(tmp_path):
    table = select([record("P0_0-g1_1", 0, 0.5, (9, 9)), record("P1_1-g1_1", 1, 0.6, (4, 4))])
    chosen = selection(table, "demo", CLASSES)
    assert chosen["selected"] == "P1_1-g1_1" and chosen["kept"] == {"landbird": 4, "waterbird": 4}
    assert chosen["candidates"] == ["P0_0-g1_1", "P1_1-g1_1"]
    path = tmp_path / "selected.json"
    path.write_text(json.dumps(chosen))
    models = [str(RunPaths(tmp_path).path("tune_model", cand=name)) for name in chosen["candidates"]]
    model, tuned = selected_model([str(path)], models)
    assert model == models[1] and tuned["selected"] == "P1_1-g1_1" and tuned["thresholds"] == [0.0, 0.0]
    assert selected_model([], ["results/demo/retrain/model.pt"]) == ("results/demo/retrain/model.pt", None)


# ---- on the reduced demo ------------------------------------------------------------------------------

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
