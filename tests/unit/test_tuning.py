"""Tuning P and γ on validation (a dataset entry's `tune` section; ddb.tuning): the candidates, their names and
the config check; the selection and its ties."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from helpers import REPO
from ddb.config import load_config, validate_config
from ddb.errors import DDBError
from ddb.paths import RunPaths
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
