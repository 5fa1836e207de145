"""Retraining's batches (retrain.batching), MetaShift's val draw, and the whole training split behind
CelebA's weighted mean and DFR's final scaler."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import small_config
from helpers import small_settings
from test_datasets import build, dataset_cfg, write_image
from test_resume import demo, demo_settings  # noqa: F401 (demo: a fixture)

from ddb.metrics import group_accuracies, summarize
from ddb.retrain import joint_batch_loss
from ddb.training import train_sizes_of


def cross_entropy_by_hand(row: list[float], label: int) -> float:
    return math.log(sum(math.exp(v) for v in row)) - row[label]


# ------------------------------------------------------------------------------------------------ joint loss

LOGITS = [[2.0, -1.0], [0.5, 0.3], [-0.2, 1.7], [1.1, 0.0], [0.0, 2.5], [-1.0, -0.5]]
LABELS = [0, 1, 1, 0, 1, 0]
GENERATED = [False, False, True, True, True, False]


def test_joint_loss_is_the_real_mean_plus_gamma_times_each_class_generated_mean():
    gammas = [6.0, 10.0]
    loss, loss_ce, terms = joint_batch_loss(torch.tensor(LOGITS), torch.tensor(LABELS), torch.tensor(GENERATED),
                                            gammas)
    ce = [cross_entropy_by_hand(row, y) for row, y in zip(LOGITS, LABELS)]
    real = (ce[0] + ce[1] + ce[5]) / 3                 # rows 0, 1, 5
    generated_0 = ce[3]                                 # the one generated row labelled 0
    generated_1 = (ce[2] + ce[4]) / 2                  # the generated rows labelled 1
    assert loss_ce.item() == pytest.approx(real, rel=1e-6)
    assert terms[0].item() == pytest.approx(generated_0, rel=1e-6)
    assert terms[1].item() == pytest.approx(generated_1, rel=1e-6)
    assert loss.item() == pytest.approx(real + 6 * generated_0 + 10 * generated_1, rel=1e-6)
    # not the batch-size normalisation (sum / 6), which would weigh a term by how many rows it has
    assert loss.item() != pytest.approx((sum(ce[i] for i in (0, 1, 5)) + 6 * ce[3] + 10 * (ce[2] + ce[4])) / 6)


def test_a_class_without_generated_rows_in_the_batch_adds_exactly_zero():
    logits = torch.tensor(LOGITS, requires_grad=True)
    generated = torch.tensor([False, False, False, True, False, False])  # one generated row, labelled 0
    loss, loss_ce, terms = joint_batch_loss(logits, torch.tensor(LABELS), generated, [2.0, 7.0])
    assert terms[1].item() == 0.0 and not torch.isnan(terms[1])
    assert loss.item() == pytest.approx(loss_ce.item() + 2 * terms[0].item(), rel=1e-7)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # a batch of generated rows only: the real term is 0 too
    loss, loss_ce, _ = joint_batch_loss(torch.tensor(LOGITS), torch.tensor(LABELS), torch.ones(6, dtype=torch.bool),
                                        [1.0, 1.0])
    assert loss_ce.item() == 0.0 and math.isfinite(loss.item())


def test_the_paper_formats_default_to_joint_batches_and_the_demo_to_paired(tmp_path):
    from ddb.config import validate_config

    for fmt in ("waterbirds", "celeba", "metashift", "imagenet"):
        assert dataset_cfg(fmt, tmp_path)["retrain"]["batching"] == "joint"
    assert dataset_cfg("waterbirds", tmp_path, retrain={"batching": "paired"})["retrain"]["batching"] == "paired"
    assert validate_config(small_config())["datasets"]["demo"]["retrain"]["batching"] == "paired"
    metashift = dataset_cfg("metashift", tmp_path)
    assert metashift["retrain"]["augment"] is False and metashift["erm"]["augment"] is False
    assert dataset_cfg("waterbirds", tmp_path)["retrain"]["augment"] is True


def test_joint_retraining_steps_once_over_real_and_generated(demo, monkeypatch):
    """An epoch of joint batches: ceil((real + generated) / batch size) steps, each batch from one loader,
    and an uncommon class with no kept generation runs without NaN."""
    import ddb.retrain as retrain_module
    from ddb.models.classifier import build_classifier

    base, manifest = demo
    train = manifest[manifest["split"] == "train"]
    generated = {0: train[train["y"] == 1]["path"].tolist()[:7]}  # class 1: nothing kept
    cfg = demo_settings(base, retrain={"epochs": 1, "batch_size": 16, "batching": "joint", "lr": 1e-3})
    seen = []
    original = retrain_module.joint_batch_loss

    def recording(logits, labels, generated_rows, gammas):
        seen.append((len(labels), int(generated_rows.sum())))
        return original(logits, labels, generated_rows, gammas)

    monkeypatch.setattr(retrain_module, "joint_batch_loss", recording)
    _, history = retrain_module.retrain(build_classifier("tiny", 2, None, seed=0), manifest, generated, cfg,
                                        seed=0, device="cpu")
    assert len(seen) == math.ceil((len(train) + 7) / 16)
    assert sum(n for n, _ in seen) == len(train) + 7 and sum(g for _, g in seen) == 7
    assert history.loc[0, "loss_gen_1"] == 0.0 and np.isfinite(history.loc[0, "loss"])


# ------------------------------------------------------------------------------------------------ MetaShift


def make_metashift_counts(root: Path, test_counts: dict[str, int]) -> None:
    for class_name, contexts in {"cat": ("sofa", "bed"), "dog": ("bench", "bike")}.items():
        for context in contexts:
            write_image(root / "train" / class_name / f"{class_name}({context})" / "1.jpg", 1)
    for class_name, count in test_counts.items():
        for i in range(count):
            write_image(root / "test" / class_name / f"{class_name}(shelf)" / f"{1000 + i}.jpg", i)


def test_metashift_val_is_the_authors_train_test_split_with_table_3s_sizes(tmp_path):
    """The authors' loader: train_test_split(test_size=0.85, random_state=0) over the 235 cat(shelf) and
    306 dog(shelf) test images, cats first: Table 3's 34 / 47 val and 201 / 259 test."""
    from sklearn.model_selection import train_test_split

    make_metashift_counts(tmp_path, {"cat": 235, "dog": 306})
    manifest = build("metashift", tmp_path, check_images=False)
    counts = manifest[manifest["split"].isin(["val", "test"])].groupby(["split", "group"]).size().to_dict()
    assert counts == {("test", "cat_shelf"): 201, ("test", "dog_shelf"): 259,
                      ("val", "cat_shelf"): 34, ("val", "dog_shelf"): 47}
    # exactly the rows the authors' call picks, in class then file-name order
    pool = manifest[manifest["split"] != "train"].sort_values(["y", "sample_id"]).reset_index(drop=True)
    val_rows, _ = train_test_split(np.arange(len(pool)), test_size=0.85, random_state=0)
    assert set(pool.loc[val_rows, "sample_id"]) == set(manifest.loc[manifest["split"] == "val", "sample_id"])
    # seeded: another val_seed, another val set of the same size
    other = build("metashift", tmp_path, check_images=False, metashift={"val_seed": 1})
    assert (other["split"] == "val").sum() == 81
    assert set(other.loc[other["split"] == "val", "sample_id"]) != set(pool.loc[val_rows, "sample_id"])
    # the stratified draw stays selectable: 15 % of each group
    stratified = build("metashift", tmp_path, check_images=False, metashift={"val_split": "stratified"})
    assert stratified[stratified["split"] == "val"].groupby("group").size().to_dict() == {
        "cat_shelf": 35, "dog_shelf": 46}


# ------------------------------------------------------------------------------------------------ CelebA


def celeba_like_manifest() -> pd.DataFrame:
    """Training rows of four groups, some of them left out by a class subsample (split `excluded`)."""
    rows = ([("train", "non_blond_female")] * 4 + [("excluded", "non_blond_female")] * 36
            + [("train", "non_blond_male")] * 4 + [("excluded", "non_blond_male")] * 16
            + [("train", "blond_female")] * 6 + [("train", "blond_male")] * 2
            + [("test", g) for g in ("non_blond_female", "non_blond_male", "blond_female", "blond_male")])
    frame = pd.DataFrame(rows, columns=["split", "group"])
    frame["y"] = frame["group"].str.startswith("blond").astype(int)
    frame["spurious"] = frame["group"].str.rsplit("_", n=1).str[-1]
    frame["class_name"] = np.where(frame["y"] == 1, "blond", "non_blond")
    frame["sample_id"] = [f"s{i:03d}" for i in range(len(frame))]
    frame["path"] = frame["sample_id"]
    return frame


def test_the_weighted_mean_uses_the_whole_training_splits_proportions():
    manifest = celeba_like_manifest()
    sizes = train_sizes_of(manifest)
    assert sizes == {"non_blond_female": 40, "non_blond_male": 20, "blond_female": 6, "blond_male": 2}
    per_group = group_accuracies(np.array(["non_blond_female", "non_blond_male", "blond_female", "blond_male"]),
                                 np.array([1.0, 0.0, 1.0, 0.0]))
    weighted = summarize(per_group, sizes)["weighted_mean_accuracy"]
    assert weighted == pytest.approx((40 * 1 + 20 * 0 + 6 * 1 + 2 * 0) / 68)


def test_dfrs_final_scaler_is_fit_on_the_whole_training_splits_features(monkeypatch):
    import ddb.dfr as dfr_module
    from ddb.models.classifier import build_classifier

    manifest = celeba_like_manifest()
    val = manifest[manifest["split"] == "test"].assign(split="val")
    manifest = pd.concat([manifest, val, val, val.assign(sample_id=val["sample_id"] + "b")], ignore_index=True)
    manifest["sample_id"] = [f"r{i:03d}" for i in range(len(manifest))]
    rng = np.random.default_rng(0)
    # the excluded rows' features lie far from the subsample's: a scaler fit on the subsample alone differs
    manifest["f0"] = rng.normal(size=len(manifest)) + np.where(manifest["split"] == "excluded", 5.0, 0.0)
    manifest["f1"] = rng.normal(size=len(manifest))
    seen = []

    def features_of(model, rows, **_):
        seen.append(set(rows["split"]))
        return rows[["f0", "f1"]].to_numpy(np.float32)

    monkeypatch.setattr(dfr_module, "extract_features", features_of)
    model = build_classifier("tiny", 2, None, seed=0)
    model.fc = torch.nn.Linear(2, 2)
    settings = small_settings(dfr={"batch_size": 4, "c_grid": [1.0], "subsamples": 2},
                              classifier={"image_size": 8, "transform": "stretch"})
    result = dfr_module.deep_feature_reweighting(model, manifest, settings, seed=0, dataset="celeba", device="cpu")
    assert seen[0] == {"train", "excluded"}
    whole = manifest[manifest["split"].isin(["train", "excluded"])][["f0", "f1"]].to_numpy(np.float32)
    np.testing.assert_allclose(result.fit.scaler_mean, whole.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(result.fit.scaler_scale, whole.astype(np.float64).std(0), rtol=1e-6)
