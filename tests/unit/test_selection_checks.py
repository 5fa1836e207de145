"""Choices made on validation that validation could not make (ddb.selection_checks): each detector on
hand-made tables, the stop path's message, and eval.json's `warnings` written by the evaluate script."""

from __future__ import annotations

import json
import runpy
from types import SimpleNamespace

import pandas as pd
import pytest
from helpers import REPO, small_config
from helpers import Params, Wildcards, fake_snakemake

from ddb.errors import DDBError
from ddb.selection_checks import (check_validation_size, format_warnings, small_validation_group, tied_candidates,
                                  tied_dfr_c, tied_epochs, validation_group_sizes)


def manifest_of(val_sizes: dict[str, int], train_groups=("landbird_land", "landbird_water")) -> pd.DataFrame:
    rows = [{"split": "val", "group": g} for g, n in val_sizes.items() for _ in range(n)]
    rows += [{"split": "train", "group": g} for g in train_groups]
    rows += [{"split": "test", "group": "waterbird_land"}]
    return pd.DataFrame(rows)


def history(wga, mean=None, selected=None) -> pd.DataFrame:
    frame = pd.DataFrame({"epoch": range(1, len(wga) + 1), "val_worst_group_accuracy": wga,
                          "val_mean_accuracy": mean if mean is not None else [0.5] * len(wga)})
    if selected is not None:
        frame["selected"] = frame["epoch"] == selected
    return frame


# ---- small validation groups


def test_group_sizes_count_a_training_group_validation_lacks_as_zero():
    sizes = validation_group_sizes(manifest_of({"landbird_land": 12}))
    assert sizes == {"landbird_land": 12, "landbird_water": 0}  # the test-only group is not validation's business


def test_small_validation_group_names_each_group_with_its_count():
    found = small_validation_group(manifest_of({"landbird_land": 12, "landbird_water": 1}), "demo", 10)
    assert found == [{"code": "small_validation_group", "step": "prepare_dataset", "message":
                      "validation group landbird_water (1 image) has fewer than datasets.demo.validation."
                      "min_group_size = 10 images, so every choice made on validation (epochs, tune candidates, "
                      "DFR's C) rests on a handful of images: give the validation split more images of every group"}]
    two = small_validation_group(manifest_of({"landbird_land": 2, "landbird_water": 9}), "demo", 10)
    assert two[0]["message"].startswith("validation groups landbird_land (2 images), landbird_water (9 images) have "
                                        "fewer than")
    assert small_validation_group(manifest_of({"landbird_land": 10, "landbird_water": 10}), "demo", 10) == []
    assert small_validation_group(manifest_of({"landbird_land": 1, "landbird_water": 1}), "demo", 0) == []


def test_too_small_stop_names_the_group_its_count_the_minimum_and_the_fix():
    manifest = manifest_of({"landbird_land": 12, "landbird_water": 2})
    with pytest.raises(DDBError) as error:
        check_validation_size(manifest, "demo", {"min_group_size": 10, "too_small": "stop"})
    assert str(error.value) == (
        "dataset demo (data/manifest.parquet, split val): validation group landbird_water has 2 images, fewer than "
        "datasets.demo.validation.min_group_size = 10, too few to choose epochs, tune candidates and DFR's C on "
        "(validation.too_small: stop)\n  fix: give the validation split more images of every group; or lower "
        "datasets.demo.validation.min_group_size, or set datasets.demo.validation.too_small: warn to go on with a "
        "warning in eval.json")
    warned = check_validation_size(manifest, "demo", {"min_group_size": 10, "too_small": "warn"})
    assert [w["code"] for w in warned] == ["small_validation_group"]
    assert check_validation_size(manifest, "demo", {"min_group_size": 2, "too_small": "stop"}) == []


# ---- ties


def test_tied_epochs_of_retraining_name_the_epoch_kept_by_order():
    found = tied_epochs(history([0.0, 0.0, 0.0], selected=1), "retrain", "best_val_wga")
    assert found == [{"code": "tied_epochs", "step": "retrain", "message":
                      "all 3 epochs of retrain have the same validation WGA (0.000), so epoch 1 was kept by order, not "
                      "by validation: give the validation split more images of every group"}]
    assert tied_epochs(history([0.0, 0.5, 0.5], selected=2), "retrain", "best_val_wga") == []
    assert tied_epochs(history([0.25]), "retrain", "best_val_wga") == []  # one epoch: no choice to make


def test_tied_epochs_follow_erm_select_epoch():
    tied = history([0.5, 0.5], mean=[0.6, 0.6])
    assert tied_epochs(tied, "train_erm", "last") == []  # the last epoch is not chosen on validation
    assert tied_epochs(tied, "train_erm", "best_val_wga")[0]["message"].startswith(
        "all 2 epochs of train_erm have the same validation WGA (0.500), so epoch 1")
    message = tied_epochs(tied, "train_erm", "best_val_wga_mean")[0]["message"]
    assert "same validation WGA and mean accuracy (0.500 and 0.600)" in message
    # the mean breaks a WGA tie under best_val_wga_mean: a real choice
    assert tied_epochs(history([0.5, 0.5], mean=[0.6, 0.7]), "train_erm", "best_val_wga_mean") == []
    # accuracies equal but for float noise tie too
    assert tied_epochs(history([0.1 + 0.2, 0.3]), "retrain", "best_val_wga") != []


def test_tied_candidates_name_the_tie_break_winner():
    table = pd.DataFrame({"candidate": ["P0_0-g1_1", "P1_1-g1_1"], "val_worst_group_accuracy": [0.0, 0.0],
                          "selected": [False, True]})
    assert tied_candidates(table) == [{"code": "tied_candidates", "step": "tune_select", "message":
                                       "all 2 tune candidates have validation WGA 0.000, so P1_1-g1_1 was chosen by "
                                       "the tie-break (fewer kept generated images, then the order given), not by "
                                       "validation: give the validation split more images of every group, or set P "
                                       "and γ in the entry instead of tuning them"}]
    table["val_worst_group_accuracy"] = [0.45, 0.525]
    assert tied_candidates(table) == []


def test_tied_dfr_c_names_the_first_c_of_the_grid():
    selection = pd.DataFrame({"order": [0, 1, 2], "C": [1.0, 0.7, 0.3], "val_worst_group_accuracy": [0.0] * 3,
                              "selected": [True, False, False]})
    assert tied_dfr_c(selection) == [{"code": "tied_dfr_c", "step": "dfr", "message":
                                      "all 3 values of dfr.c_grid have the same validation WGA (0.000 on the select "
                                      "half), so C=1 was chosen as the first in the grid, not by validation: give "
                                      "the validation split more images of every group"}]
    selection["val_worst_group_accuracy"] = [0.0, 0.5, 0.5]
    assert tied_dfr_c(selection) == []


def test_format_warnings_gives_one_line_each():
    warning = {"code": "tied_dfr_c", "step": "dfr", "message": "all tied"}
    assert format_warnings([warning, {**warning, "step": "retrain"}]) == ["WARNING (dfr): all tied",
                                                                          "WARNING (retrain): all tied"]


# ---- eval.json through the evaluate script


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A drawn demo manifest (12 validation images per group) and two tiny classifiers."""
    from ddb.config import validate_config
    from ddb.datasets import build_manifest
    from ddb.models.classifier import build_classifier, save_classifier

    folder = tmp_path_factory.mktemp("evaluate")
    config = validate_config(small_config(synthetic={"n_train": 40, "n_val_per_group": 12, "n_test_per_group": 2,
                                                     "image_size": 32}))
    cfg = config["datasets"]["demo"]
    cfg["root"] = str(folder / "synthetic")
    manifest = build_manifest("demo", cfg, seed=0, workdir=folder)
    manifest.to_parquet(folder / "manifest.parquet")
    for name, seed in (("erm", 0), ("ddb", 1)):
        save_classifier(build_classifier("tiny", 2, None, seed=seed), folder / f"{name}.pt", arch="tiny",
                        classes=cfg["classes"], image_size=32)
    history([0.5]).to_parquet(folder / "erm_history.parquet")
    return folder, cfg


def evaluate(folder, cfg, retrain_history: pd.DataFrame, validation: dict) -> dict:
    retrain_history.to_parquet(folder / "retrain_history.parquet")
    out = folder / f"out-{len(list(folder.glob('out-*')))}"
    snakemake = fake_snakemake(
        out, "evaluate", wildcards=Wildcards(ds="demo"),
        input=Wildcards(manifest=str(folder / "manifest.parquet"), erm=str(folder / "erm.pt"),
                        ddb=[str(folder / "ddb.pt")], tune=[], dfr=[], erm_history=str(folder / "erm_history.parquet"),
                        ddb_history=[str(folder / "retrain_history.parquet")], tune_candidates=[], dfr_selection=[]),
        params=Params(cfg={"classifier": cfg["classifier"], "retrain": cfg["retrain"]}, random_models={},
                      validation=validation, erm_select_epoch="last"),
        output=SimpleNamespace(json=str(out / "eval.json"), table=str(out / "eval.parquet")))
    runpy.run_path(str(REPO / "scripts" / "evaluate.py"), init_globals={"snakemake": snakemake})
    return {"report": json.loads((out / "eval.json").read_text()), "log": (out / "logs" / "evaluate.log").read_text()}


def test_eval_json_has_warnings_only_when_a_choice_tied(tiny_run, in_process_step):
    folder, cfg = tiny_run
    settings = {"min_group_size": 10, "too_small": "warn"}
    clean = evaluate(folder, cfg, history([0.25, 0.5], selected=2), settings)
    assert set(clean["report"]) == {"dataset", "erm", "ddb"} and "WARNING" not in clean["log"]

    tied = evaluate(folder, cfg, history([0.0, 0.0], selected=1), {"min_group_size": 13, "too_small": "warn"})
    assert [(w["code"], w["step"]) for w in tied["report"]["warnings"]] == [
        ("small_validation_group", "prepare_dataset"), ("tied_epochs", "retrain")]
    assert tied["report"]["warnings"][0]["message"].startswith(
        "validation groups landbird_land (12 images), landbird_water (12 images), waterbird_land (12 images), "
        "waterbird_water (12 images) have fewer than datasets.demo.validation.min_group_size = 13 images")
    assert "WARNING (retrain): all 2 epochs of retrain have the same validation WGA (0.000)" in tied["log"]
    assert list(tied["report"])[-1] == "warnings"  # after the figures, which are the same as without it
    assert {k: v for k, v in tied["report"].items() if k != "warnings"} == clean["report"]


# ---- where a person sees them


def test_inspect_and_the_report_show_the_warnings(tmp_path):
    from ddb.presenters.overview import format_overview, format_step, summarize
    from ddb.results.reader import Results
    from ddb.paths import RunPaths
    from ddb.visualize import write_eval_tables

    metrics = {"worst_group_accuracy": 0.25, "mean_accuracy": 0.5, "weighted_mean_accuracy": 0.5,
               "group_accuracy": {"a": 0.25, "b": 0.75}, "group_size": {"a": 4, "b": 4}}
    warning = {"code": "tied_dfr_c", "step": "dfr", "message": "all 7 values of dfr.c_grid tied"}
    root = tmp_path / "results" / "demo"
    path = RunPaths(root).path("eval_json")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"dataset": "demo", "erm": metrics, "ddb": metrics, "warnings": [warning]}))
    pd.DataFrame([{"model": m, "group": g, "accuracy": a, "n_test": 4, "n_train": 10, "worst_group": g == "a"}
                  for m in ("erm", "ddb") for g, a in metrics["group_accuracy"].items()]).to_parquet(
        RunPaths(root).path("eval_table"))
    results = Results(root)
    overview = format_overview(results, summarize(results))
    assert "1 WARNING (below)" in overview and overview.endswith("\nWARNING (dfr): all 7 values of dfr.c_grid tied")
    assert "WARNING (dfr): all 7 values of dfr.c_grid tied" in format_step(results, "evaluate")
    report = tmp_path / "report"
    write_eval_tables(results.eval_json, results.eval_table, "demo", report)
    html = next(report.rglob("eval.html")).read_text()
    assert "<p>WARNING (dfr): all 7 values of dfr.c_grid tied. Per-group accuracy" in html


def test_too_small_stop_ends_prepare_dataset_before_the_manifest(tmp_path, in_process_step):
    from ddb.config import validate_config
    from ddb.paths import RunPaths

    config = validate_config(small_config(synthetic={"n_train": 40, "n_val_per_group": 1, "n_test_per_group": 1,
                                                     "image_size": 32},
                                          validation={"min_group_size": 2, "too_small": "stop"}))
    cfg = config["datasets"]["demo"]
    cfg["root"] = str(tmp_path / "synthetic")
    paths = RunPaths(tmp_path / "results" / "demo")
    snakemake = fake_snakemake(tmp_path, "prepare_dataset", params=Params(cfg=cfg, seed=0), config=config,
                               wildcards=Wildcards(ds="demo"),
                               output=SimpleNamespace(manifest=str(paths.path("manifest")),
                                                      groups=str(paths.path("groups"))))
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(REPO / "scripts" / "prepare_dataset.py"), init_globals={"snakemake": snakemake})
    assert stopped.value.code == 1 and not paths.path("manifest").exists()
    log = (tmp_path / "logs" / "prepare_dataset.log").read_text()
    assert ("ddb: dataset demo (data/manifest.parquet, split val): validation group landbird_land has 1 image, fewer "
            "than datasets.demo.validation.min_group_size = 2 (so do landbird_water (1 image), waterbird_land "
            "(1 image), waterbird_water (1 image))") in log


def test_the_selected_candidates_history_is_found_among_every_candidates():
    from ddb.tuning import selected_history

    paths = [f"results/demo/tune/{c}/retrain/history.parquet" for c in ("P0_0-g1_1", "P1_1-g1_1")]
    assert selected_history("P1_1-g1_1", paths) == paths[1]
    with pytest.raises(DDBError, match="'P2_2-g1_1' has no retraining history"):
        selected_history("P2_2-g1_1", paths)
