"""``ddb config NAME``: every value of a resolved entry with the layer it comes from."""

from __future__ import annotations

import json

import pytest

from ddb.cli import main
from ddb.config_sources import resolve_entry
from ddb.errors import DDBError


@pytest.fixture
def two_files(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text("datasets:\n  wb:\n    format: waterbirds\n    root: /data/wb\n    low_loss: {k: 30}\n"
                     "    retrain: {lr: 1.0e-4}\n")
    second = tmp_path / "b.yaml"
    second.write_text("datasets:\n  wb:\n    prune: false\n    retrain: {lr: 1.0e-5}\n")
    return first, second


def test_each_value_names_its_layer(two_files):
    first, second = two_files
    values = {v.key: (v.value, v.source) for v in resolve_entry([first, second], "wb")}
    assert values["root"] == ("/data/wb", str(first))
    assert values["retrain.lr"] == (1.0e-5, str(second))  # the later file wins, as with snakemake
    assert values["low_loss.k"] == ([30, 30], f"{first}, derived")  # one k, given for every class
    assert values["prune.enabled"] == (False, str(second))  # `prune: false` sets only `enabled`
    assert values["prune.thresholds"] == ([1, 1], "format default (waterbirds)")
    assert values["retrain.gammas"] == ([6, 10], "format default (waterbirds)")
    assert values["erm.momentum"] == (0.9, "schema default")
    assert values["classes"] == (["landbird", "waterbird"], "derived")
    assert values["minority_groups.landbird"] == ("water", "format default (waterbirds), derived")


def test_the_values_are_what_the_workflow_loads(two_files):
    from ddb.config import validate_config
    from ddb.config_sources import _leaves

    first, _ = two_files
    import yaml

    loaded = validate_config(yaml.safe_load(first.read_text()), str(first))["datasets"]["wb"]
    assert {v.key: v.value for v in resolve_entry([first], "wb")} == _leaves(loaded)


def test_an_unknown_dataset_is_one_line_naming_the_datasets(two_files, capsys):
    first, _ = two_files
    with pytest.raises(DDBError, match=r"no dataset 'nope' \(datasets: \['wb'\]\)"):
        resolve_entry([first], "nope")
    assert main(["config", "nope", "--configfile", str(first)]) == 1
    assert capsys.readouterr().err.startswith(f"ddb: {first}: no dataset 'nope'")


def test_an_invalid_value_is_the_loader_message(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  wb:\n    format: waterbirds\n    root: /data/wb\n    erm: {epochs: many}\n")
    assert main(["config", "wb", "--configfile", str(bad)]) == 1
    assert "datasets.wb.erm.epochs: 'many' is not of type 'integer'" in capsys.readouterr().err


def test_cli_prints_a_table_and_json(two_files, capsys):
    first, second = two_files
    assert main(["config", "wb", "--configfile", str(first), "--configfile", str(second)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "datasets.wb, as the workflow resolves it (key, value, where it comes from):"
    assert [line.split() for line in lines if line.split()[0] == "retrain.lr"] == [["retrain.lr", "1e-05", str(second)]]
    assert main(["config", "wb", "--configfile", str(first), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"key": "erm.epochs", "value": 100, "source": "format default (waterbirds)"} in rows


def test_resources_name_the_layer_that_set_each_value(tmp_path):
    from ddb.config_sources import resolve_resources

    base = tmp_path / "base.yaml"
    base.write_text("resources:\n  rules:\n    mask: {mem_mb: 9000, runtime: 50}\n"
                    "datasets:\n  wb:\n    format: waterbirds\n    root: /data/wb\n")
    own = tmp_path / "own.yaml"
    own.write_text("datasets:\n  wb:\n    resources: {scale: 2, max: {mem_mb: 40000}, rules: {inpaint: {threads: 2}}}\n")
    found = {(r.rule, r.key): (r.value, r.source) for r in resolve_resources([base, own], "wb")}
    scale = f"({own}: datasets.wb.resources.scale)"
    # the rule's class default, scaled
    assert found["prepare_dataset", "mem_mb"] == (8000, f"resource class 'light' (ddb.resources) x 2 {scale}")
    assert found["prepare_dataset", "threads"] == (1, "resource class 'light' (ddb.resources)")
    # resources.rules of the first file, scaled; its runtime too, as mask's work is not estimated
    assert found["mask", "mem_mb"] == (18000, f"{base}: resources.rules.mask.mem_mb x 2 {scale}")
    assert found["mask", "runtime"] == (100, f"{base}: resources.rules.mask.runtime x 2 {scale}")
    # the dataset's cap, and its own rule setting
    assert found["train_erm", "mem_mb"] == (40000, f"{own}: datasets.wb.resources.max.mem_mb")
    assert found["inpaint", "threads"] == (2, f"{own}: datasets.wb.resources.rules.inpaint.threads")
    assert found["inpaint", "runtime"][1] == "estimated from the job's work (ddb.sizing)"
    # prune and retrain run, not the tuning rules; rules of seconds of work declare nothing
    rules = {rule for rule, _ in found}
    assert {"retrain", "dfr", "evaluate"} <= rules and not rules & {"tune_retrain", "prune", "mean_softmax"}


def test_resources_are_what_the_workflow_asks_for(tmp_path):
    from ddb.config import validate_config
    from ddb.config_sources import resolve_resources
    from ddb.resources import ResourcePolicy

    import yaml

    path = tmp_path / "c.yaml"
    path.write_text("datasets:\n  wb:\n    format: waterbirds\n    root: /data/wb\n"
                    "    resources: {scale: 1.5, max: {runtime: 100, threads: 2}}\n")
    config = validate_config(yaml.safe_load(path.read_text()), str(path))
    policy = ResourcePolicy(config, {"wb": config["datasets"]["wb"]}, {})
    for r in resolve_resources([path], "wb"):
        assert policy.configured(r.rule, "wb")[r.key] == r.value, (r.rule, r.key)


def test_config_resources_command_prints_a_line_per_rule_and_value(capsys):
    assert main(["config", "demo", "--resources"]) == 0
    text = capsys.readouterr().out
    assert "train_erm.mem_mb" in text and "config.yaml: datasets.demo.resources.max.mem_mb" in text
    assert main(["config", "demo", "--resources", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"rule": "train_erm", "key": "threads", "value": 2,
            "source": "config.yaml: datasets.demo.resources.max.threads"} in rows
