"""ddb.targets: a mistyped target names what exists (the config's datasets for an unknown dataset, the
artifacts of a run for an unknown file); what the `all` rule, the table across datasets and the report build."""

from __future__ import annotations

import pytest
import yaml

from helpers import REPO
from ddb.config import validate_config
from ddb.errors import DDBError
from ddb.targets import (all_targets, check_command_line_targets, describe_unknown_target, paper_table_adds_value,
                         paper_table_reports, step_wildcard_values, tune_reports, wildcard_values)

RUNS = ["demo", "waterbirds", "waterbirds/seed-1"]
CLASSES = {"demo": ["landbird", "waterbird"], "waterbirds": ["landbird", "waterbird"]}


def test_an_unknown_dataset_lists_the_datasets_of_the_config():
    line = describe_unknown_target("results/waterbird/eval.json", "results", RUNS, CLASSES)
    assert line == ("results/waterbird/eval.json: 'waterbird' is no dataset of the config (did you mean "
                    "results/waterbirds/eval.json?); its datasets are demo, waterbirds (config key `datasets`; "
                    "each is a folder results/<dataset>/)")


def test_an_unknown_file_lists_the_artifacts_of_a_run():
    line = describe_unknown_target("./results/waterbirds/seed-1/evall.json", "results/", RUNS, CLASSES)
    assert line.startswith("./results/waterbirds/seed-1/evall.json: no artifact 'evall.json' in "
                           "results/waterbirds/seed-1/ (did you mean results/waterbirds/seed-1/eval.json?); "
                           "the artifacts of a run are data/manifest.parquet, ")
    assert "masks/{src}/shard-{n}.tar" in line and "retrain/model.pt" in line
    wrong_value = describe_unknown_target("results/demo/low_loss/cat.parquet", "results", RUNS, CLASSES)
    assert "has the form of low_loss/{cls}.parquet" in wrong_value
    assert "classes of demo are landbird, waterbird" in wrong_value
    outside = describe_unknown_target("output/demo/eval.json", "results", RUNS, CLASSES)
    assert outside.endswith("every file DDB makes lies under results/ (config key `results`)")


# ---- what the `all` rule, the table across datasets and the report build ------------------------------

@pytest.fixture(scope="module")
def repo_config() -> dict:
    """config.yaml validated: the tuned demo (2 classes, 2 shards a class, 2 candidates) and the paper's datasets."""
    return validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))


def test_all_targets_and_the_table_across_datasets(repo_config):
    datasets = repo_config["datasets"]
    assert all_targets("results", ["demo"], datasets, seeds=False) == ["results/demo/eval.json"]
    assert all_targets("out", ["demo"], datasets, seeds=True) == ["out/demo/eval.json", "out/demo/summary.json"]
    # beside a dataset the paper reports figures for, or over two targets, `all` builds the table too
    assert not paper_table_adds_value(["demo"], datasets)
    assert paper_table_adds_value(["waterbirds"], datasets)
    assert all_targets("results", ["demo", "celeba"], datasets, seeds=False) == [
        "results/demo/eval.json", "results/celeba/eval.json", "results/paper_table.md", "results/paper_table.csv"]
    assert paper_table_reports("results", ["demo", "celeba"], seeds=True) == ["results/demo/summary.json",
                                                                               "results/celeba/summary.json"]
    assert paper_table_reports("results", ["demo"], seeds=False) == ["results/demo/eval.json"]
    assert tune_reports("results", ["demo", "waterbirds"], datasets) == ["results/demo/report/tune.html"]


def test_wildcard_values_of_the_demos_rules(repo_config):
    demo = repo_config["datasets"]["demo"]
    assert wildcard_values(demo, []) == [{}]
    assert wildcard_values(demo, ["cls"]) == [{"cls": "landbird"}, {"cls": "waterbird"}]
    assert wildcard_values(demo, ["src", "n"]) == [{"src": "landbird", "n": 0}, {"src": "landbird", "n": 1},
                                                   {"src": "waterbird", "n": 0}, {"src": "waterbird", "n": 1}]
    assert wildcard_values(demo, ["src", "dst", "n"])[:2] == [{"src": "landbird", "dst": "waterbird", "n": 0},
                                                              {"src": "landbird", "dst": "waterbird", "n": 1}]
    assert wildcard_values(demo, ["cand", "src", "dst"]) == [
        {"cand": cand, "src": src, "dst": dst} for cand in ("P0_0-g1_1", "P1_1-g1_1")
        for src, dst in (("landbird", "waterbird"), ("waterbird", "landbird"))]
    with pytest.raises(DDBError) as caught:
        wildcard_values(demo, ["cls", "pair"])
    assert str(caught.value).startswith("ddb.steps: no values for wildcard(s) pair in the `all` rule")


def test_step_wildcard_values_list_the_rules_the_target_needs(repo_config):
    found = {rule: values for ds, rule, values in step_wildcard_values(["demo"], repo_config["datasets"])}
    # tuned: tune_* in place of prune and retrain; no report, no seed rules, no seed summary
    assert list(found) == ["prepare_dataset", "train_erm", "textual_inversion", "select_low_loss", "mean_softmax",
                           "mask", "inpaint", "ig_score", "tune_prune", "tune_retrain", "tune_select", "dfr",
                           "evaluate"]
    assert found["train_erm"] == [{}] and len(found["inpaint"]) == 4 and len(found["tune_prune"]) == 4
    untuned = {**repo_config["datasets"]["demo"], "tune": None}
    rules = [rule for _, rule, _ in step_wildcard_values(["demo"], {"demo": untuned})]
    assert "prune" in rules and "retrain" in rules and "tune_select" not in rules


def test_command_line_targets_that_no_rule_makes(tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("")
    datasets = {run: {"classes": CLASSES["demo"]} for run in RUNS}
    check_command_line_targets(["all", str(kept), "results/demo/eval.json"], is_rule=lambda t: t == "all",
                               producible=lambda t: t.endswith("eval.json"), results="results", datasets=datasets)
    with pytest.raises(DDBError) as caught:
        check_command_line_targets(["all", str(kept), "results/demo/eval.jsn"], is_rule=lambda t: t == "all",
                                   producible=lambda t: False, results="results", datasets=datasets)
    message = str(caught.value)
    assert message.startswith("targets: no rule makes this target:\n    results/demo/eval.jsn: no artifact")
    # the rule name and the existing file are no unknown targets: one line, the mistyped one's
    assert message.count("\n    ") == 1 and str(kept) not in message
