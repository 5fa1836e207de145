"""DFR, the baseline beside DDB (ddb.dfr): on features whose spurious direction is known."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from helpers import target
from ddb.dfr import DEFAULT_C_GRID, balanced_subsample, check_validation_groups, fit_dfr, predict, split_halves
from ddb.errors import DDBError
from ddb.metrics import group_accuracies

GROUPS = [(0, 0), (0, 1), (1, 0), (1, 1)]


def features(sizes: dict, seed: int, noise_dims: int = 20):
    """x = [core, spurious, noise...]: core = ±1 + N(0, 1) follows the label, spurious = ±1 + N(0, 0.2)
    follows the attribute; groups are (y, s)."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([[label] * sizes[(label, s)] for label, s in GROUPS])
    s = np.concatenate([[s] * sizes[(label, s)] for label, s in GROUPS])
    x = np.column_stack([(2 * y - 1) + rng.normal(0, 1.0, len(y)), (2 * s - 1) + rng.normal(0, 0.2, len(y)),
                         rng.normal(0, 1, (len(y), noise_dims))]).astype(np.float32)
    groups = np.array([f"g{label}{spurious}" for label, spurious in zip(y, s)])
    return x, y, groups


# training: Waterbirds-like, the attribute agrees with the label in 95 % of images; val and test balanced
TRAIN = features({(0, 0): 950, (0, 1): 50, (1, 0): 50, (1, 1): 950}, seed=1)
VAL = features({g: 60 for g in GROUPS}, seed=2)
TEST = features({g: 500 for g in GROUPS}, seed=3)


def wga(predicted, data) -> float:
    _, y, groups = data
    return float(group_accuracies(groups, predicted == y)["accuracy"].min())


@pytest.fixture(scope="module")
def dfr():
    return fit_dfr(TRAIN[0], *VAL, c_grid=DEFAULT_C_GRID, subsamples=10, seed=0)


def test_dfr_beats_erm_on_the_worst_group(dfr):
    from sklearn.linear_model import LogisticRegression

    erm = LogisticRegression().fit(TRAIN[0], TRAIN[1])  # ERM's stand-in: the imbalanced training set
    erm_wga, dfr_wga = wga(erm.predict(TEST[0]), TEST), wga(dfr.predict(TEST[0]), TEST)
    assert erm_wga < 0.5 and dfr_wga > 0.75 and dfr_wga - erm_wga >= 0.3, (erm_wga, dfr_wga)
    # the reweighted head leans on the core feature, not on the spurious one
    assert abs(dfr.coef[0, 0]) > 5 * abs(dfr.coef[0, 1])


def test_selected_c_is_recorded_and_has_the_best_select_half_wga(dfr):
    table = dfr.selection
    assert table["C"].tolist() == list(DEFAULT_C_GRID) and table["selected"].sum() == 1
    chosen = table[table["selected"]].iloc[0]
    assert chosen["C"] == dfr.selected_c
    best = table["val_worst_group_accuracy"].max()
    assert chosen["val_worst_group_accuracy"] == best
    assert chosen["order"] == table.loc[table["val_worst_group_accuracy"] == best, "order"].min()  # ties: first
    for row in table.to_dict("records"):  # WGA is the smallest group accuracy of the select half
        assert row["val_worst_group_accuracy"] == min(row[f"accuracy_g{y}{s}"] for y, s in GROUPS)


def test_the_halves_are_disjoint_stratified_and_the_fit_is_group_balanced(dfr):
    halves, groups = dfr.halves, VAL[2]
    assert set(halves) == {"fit", "select"} and len(halves) == len(groups)  # every row in exactly one half
    table = dfr.halves_table.set_index("group")
    for group in sorted(set(groups)):
        n = int((groups == group).sum())
        assert table.loc[group, "n_val"] == n
        assert table.loc[group, "n_select"] == n // 2 == int(((groups == group) & (halves == "select")).sum())
        assert table.loc[group, "n_fit"] == n - n // 2
    assert table["n_fit_balanced"].nunique() == 1 and table["n_fit_balanced"].iloc[0] == table["n_fit"].min()
    assert (table["n_final_balanced"] == table["n_val"].min()).all()
    assert dfr.subsamples == 10 and dfr.subsample_coefs.shape == (10, 1, TRAIN[0].shape[1])
    np.testing.assert_allclose(dfr.coef, dfr.subsample_coefs.mean(0))


def test_balanced_subsample_and_halves_on_unequal_groups():
    groups = np.array(["a"] * 9 + ["b"] * 4 + ["c"] * 7)
    rows = balanced_subsample(groups, np.random.default_rng(0))
    assert len(set(rows)) == len(rows) == 12 and pd.Series(groups[rows]).value_counts().to_dict() == {
        "a": 4, "b": 4, "c": 4}
    halves = split_halves(groups, seed=3)
    counts = pd.crosstab(groups, halves)
    assert counts["select"].to_dict() == {"a": 4, "b": 2, "c": 3} and counts["fit"].to_dict() == {"a": 5, "b": 2,
                                                                                                   "c": 4}


def test_deterministic_under_the_seed():
    kwargs = dict(c_grid=DEFAULT_C_GRID, subsamples=5)
    first = fit_dfr(TRAIN[0], *VAL, seed=7, **kwargs)
    again = fit_dfr(TRAIN[0], *VAL, seed=7, **kwargs)
    other = fit_dfr(TRAIN[0], *VAL, seed=8, **kwargs)
    assert (first.halves == again.halves).all()
    pd.testing.assert_frame_equal(first.selection, again.selection)
    np.testing.assert_array_equal(first.coef, again.coef)
    np.testing.assert_array_equal(first.intercept, again.intercept)
    assert not (first.halves == other.halves).all()  # the seed draws the halves


def test_the_folded_head_predicts_what_the_regression_predicts(dfr):
    weight, bias = dfr.head(n_classes=2)
    logits = TEST[0].astype(np.float64) @ weight.T + bias
    np.testing.assert_array_equal(logits.argmax(1), dfr.predict(TEST[0]))
    standardised = (TEST[0] - dfr.scaler_mean) / dfr.scaler_scale
    np.testing.assert_array_equal(predict(standardised, dfr.coef, dfr.intercept), dfr.predict(TEST[0]))


def test_three_classes_one_vs_rest():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    x = np.eye(3)[y] * 2 + rng.normal(0, 0.5, (120, 3))
    groups = np.array([f"c{label}" for label in y])
    fit = fit_dfr(x, x, y, groups, c_grid=[1.0], subsamples=2, seed=0, n_classes=3)
    weight, bias = fit.head(3)
    assert weight.shape == (3, 3)
    assert ((x @ weight.T + bias).argmax(1) == y).mean() > 0.9


def manifest_of(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["split", "y", "spurious"])
    frame["group"] = [f"{'landbird' if y == 0 else 'waterbird'}_{s}" for y, s in zip(frame["y"], frame["spurious"])]
    frame["class_name"] = np.where(frame["y"] == 0, "landbird", "waterbird")
    frame["sample_id"] = [f"s{i}" for i in range(len(frame))]
    return frame


def test_a_validation_split_without_a_group_stops_naming_it():
    every = [(split, y, s) for split in ("train", "val", "test") for y in (0, 1) for s in ("land", "water")
             for _ in range(3)]
    assert check_validation_groups(manifest_of(every), "mydata") == [
        "landbird_land", "landbird_water", "waterbird_land", "waterbird_water"]
    no_group = [r for r in every if r != ("val", 1, "land")]
    with pytest.raises(DDBError, match=r"dataset mydata .*no image of group waterbird_land") as error:
        check_validation_groups(manifest_of(no_group), "mydata")
    assert "dfr: false" in str(error.value)
    no_class = [r for r in every if not (r[0] == "val" and r[1] == 1)]
    with pytest.raises(DDBError, match=r"dataset mydata .*no image of class waterbird"):
        check_validation_groups(manifest_of(no_class), "mydata")
    one_image = [r for r in every if r != ("val", 0, "water")] + [("val", 0, "water")]
    with pytest.raises(DDBError, match=r"landbird_water has 1 validation image"):
        check_validation_groups(manifest_of(one_image), "mydata")


def test_validation_with_other_spurious_values_balances_its_own_groups():
    """MetaShift / ImageNet-A: validation's contexts are not training's; DFR balances validation's groups."""
    rows = [("train", y, s) for y in (0, 1) for s in ("sofa", "bed") for _ in range(3)]
    rows += [(split, y, "shelf") for split in ("val", "test") for y in (0, 1) for _ in range(3)]
    assert check_validation_groups(manifest_of(rows), "meta") == ["landbird_shelf", "waterbird_shelf"]


def test_config_switch_and_format_defaults():
    from helpers import SMALL_DEMO
    from ddb.config import validate_config

    config = validate_config({"datasets": {"a": dict(SMALL_DEMO), "b": {"format": "celeba", "root": "y", "dfr": False}}})
    assert config["datasets"]["a"]["dfr"] == {"enabled": True, "c_grid": list(DEFAULT_C_GRID), "subsamples": 20,
                                              "batch_size": 64}
    assert config["datasets"]["b"]["dfr"]["enabled"] is False
    assert config["datasets"]["b"]["dfr"]["c_grid"] == [3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003]
    with pytest.raises(DDBError, match="dfr.c_grid"):
        validate_config({"datasets": {"a": {**SMALL_DEMO, "dfr": {"c_grid": [0]}}}})


def test_a_damaged_dfr_artifact_names_its_rule():
    from ddb.storage.remake import rule_of

    assert rule_of(target("dfr_features")) == rule_of(target("dfr_model")) == "dfr"
