"""Unit tests of the steps that are pure computations: low loss and Ψ, pruning, metrics, retraining."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ddb.config import validate_config
from ddb.evaluate import format_comparison
from ddb.storage.atomic import write_png
from ddb.low_loss import mean_softmax, per_sample_losses, select_low_loss
from ddb.metrics import group_accuracies, summarize
from ddb.pruning import prune, reason_counts
from ddb.settings import PruneSettings, dataset_settings


class MeanColourModel(nn.Module):
    """A fixed 'classifier': logits = (mean red, mean blue) of the normalised image."""

    def forward(self, x):
        return torch.stack([x[:, 0].mean((1, 2)), x[:, 2].mean((1, 2))], 1)


def image_rows(tmp_path, colours, labels):
    rows = []
    for i, (colour, y) in enumerate(zip(colours, labels)):
        path = tmp_path / f"s{i}.png"
        write_png(np.full((8, 8, 3), colour, np.uint8), path)
        rows.append({"sample_id": f"s{i}", "path": str(path), "y": y})
    return pd.DataFrame(rows)


def test_per_sample_losses_low_loss_and_psi_match_hand_computation(tmp_path):
    colours = [(250, 0, 10), (200, 0, 60), (120, 0, 120), (30, 0, 240), (90, 0, 160)]
    rows = image_rows(tmp_path, colours, [0, 0, 0, 0, 0])
    losses = per_sample_losses(MeanColourModel(), rows, image_size=8, batch_size=2, device="cpu")
    # by hand: normalised channel means, softmax, cross-entropy of class 0, sample by sample
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    logits = np.array([[(c[0] / 255 - mean[0]) / std[0], (c[2] / 255 - mean[2]) / std[2]] for c in colours])
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(losses["loss"], -np.log(probabilities[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(losses["softmax"], probabilities[:, 0], rtol=1e-5)

    selected = select_low_loss(losses, k=3)
    assert selected["sample_id"].tolist() == ["s0", "s1", "s2"] and selected["rank"].tolist() == [1, 2, 3]
    psi = mean_softmax({0: selected, 1: select_low_loss(losses.assign(y=1), k=2)}, ["red", "blue"])
    assert psi["k"].tolist() == [3, 2]
    assert psi.loc[0, "psi"] == pytest.approx(probabilities[:3, 0].mean(), rel=1e-5)
    assert len(select_low_loss(losses, k=50)) == 5  # K larger than the class keeps everything


def test_low_loss_uses_un_augmented_images_whatever_the_model_mode(tmp_path):
    rows = image_rows(tmp_path, [(10, 20, 30)] * 3, [0, 1, 0])
    model = nn.Sequential(nn.Dropout(0.9), MeanColourModel())
    a = per_sample_losses(model.train(), rows, 8, 3, "cpu")
    b = per_sample_losses(model, rows, 8, 3, "cpu")
    assert a["loss"].tolist() == b["loss"].tolist()  # eval mode forced: dropout off, same value twice


def scores_table():
    return pd.DataFrame({
        "sample_id": ["a", "b", "c", "d", "e"], "source_id": ["A", "B", "C", "D", "E"],
        "y": [1, 1, 1, 0, 0], "source_y": [0, 0, 0, 1, 1],
        "has_image": [True, True, True, True, False],
        "rho": [2.0, 0.5, 3.0, 0.4, np.nan], "p_source": [0.2, 0.1, 0.95, 0.3, np.nan],
    })


def test_pruning_keeps_exactly_the_samples_that_pass_both_rules():
    psi = pd.DataFrame({"class": [0, 1], "psi": [0.9, 0.8]})
    table = prune(scores_table(), psi, PruneSettings(enabled=True, thresholds=[0.3, 1.0]))
    # a: p_source 0.2 < Ψ_0 0.9 and ρ 2 > P_1 1 -> kept; b: ρ 0.5 <= 1 -> low_ig;
    # c: p_source 0.95 >= 0.9 -> still_source (its ρ would pass); d: 0.3 < Ψ_1, ρ 0.4 > P_0 0.3 -> kept
    assert table["reason"].tolist() == ["kept", "low_ig", "still_source", "kept", "no_mask"]
    assert table["keep"].tolist() == [True, False, False, True, False]
    assert table["psi_source"].tolist()[:4] == [0.9, 0.9, 0.9, 0.8]
    assert table["threshold"].tolist()[:4] == [1.0, 1.0, 1.0, 0.3]
    assert reason_counts(table) == {"kept": 2, "still_source": 1, "low_ig": 1, "no_mask": 1, "non_finite": 0}


def test_disabled_pruning_keeps_every_image_but_records_the_rules():
    psi = pd.DataFrame({"class": [0, 1], "psi": [0.9, 0.8]})
    table = prune(scores_table(), psi, PruneSettings(enabled=False, thresholds=[0.3, 1.0]))
    assert table["keep"].tolist() == [True, True, True, True, False]
    assert table["low_ig"].tolist() == [False, True, False, False, False]
    assert table["still_source"].tolist() == [False, False, True, False, False]


def test_weighted_mean_and_worst_group_match_hand_computation():
    groups = np.array(["a"] * 4 + ["b"] * 2 + ["c"] * 4)
    correct = np.array([1, 1, 1, 0] + [1, 0] + [0, 0, 0, 1])
    per_group = group_accuracies(groups, correct)
    assert per_group["accuracy"].tolist() == [0.75, 0.5, 0.25] and per_group["n"].tolist() == [4, 2, 4]
    summary = summarize(per_group, train_sizes={"a": 70, "b": 20, "c": 10})
    assert summary["worst_group_accuracy"] == 0.25
    assert summary["mean_accuracy"] == pytest.approx(5 / 10)
    assert summary["weighted_mean_accuracy"] == pytest.approx(0.7 * 0.75 + 0.2 * 0.5 + 0.1 * 0.25)
    text = format_comparison({"dataset": "x", "erm": summary, "ddb": summary})
    assert "WORST-GROUP ACCURACY" in text and "0.250" in text


def tiny_manifest(tmp_path):
    rows, rng = [], np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 8)):
        for i in range(n):
            y, s = i % 2, (i // 2) % 2
            path = tmp_path / f"{split}{i}.png"
            colour = (200, 40, 40) if y == 0 else (40, 40, 200)
            write_png((np.full((16, 16, 3), colour) + rng.integers(0, 30, (16, 16, 3))).astype(np.uint8), path)
            rows.append({"sample_id": f"{split}{i}", "path": str(path), "split": split, "y": y,
                         "class_name": ["red", "blue"][y], "spurious": "ab"[s], "group": f"{'rb'[y]}_{'ab'[s]}"})
    return pd.DataFrame(rows)


def retrain_cfg(**retrain):
    cfg = validate_config({"datasets": {"d": {"format": "synthetic", "root": "x", "classes": ["red", "blue"],
                                              "classifier": {"arch": "tiny", "weights": None, "image_size": 16},
                                              "retrain": {"epochs": 3, "batch_size": 8, "generated_batch_size": 4,
                                                          "lr": 1e-3, "gammas": [2.0, 5.0], "augment": False,
                                                          **retrain}}}})
    return cfg["datasets"]["d"]


def test_retrain_loss_is_ce_plus_weighted_generated_terms_and_empty_class_adds_zero(tmp_path):
    from ddb.models.classifier import build_classifier
    from ddb.retrain import retrain

    manifest = tiny_manifest(tmp_path)
    generated_paths = [str(tmp_path / f"train{i}.png") for i in range(0, 24, 2)]  # red images, labelled 0
    model = build_classifier("tiny", 2, None, seed=0)
    selected, history = retrain(model, manifest, {0: generated_paths}, dataset_settings(retrain_cfg(), "d"), seed=0,
                                device="cpu")
    assert len(history) == 3 and history["selected"].sum() == 1
    assert history["loss_gen_1"].tolist() == [0.0, 0.0, 0.0]  # no generated class-1 sample: exactly 0, not NaN
    assert (history["loss_gen_0"] > 0).all()
    np.testing.assert_allclose(history["loss"], history["loss_ce"] + 2.0 * history["loss_gen_0"], rtol=1e-5)
    best = history.loc[history["val_worst_group_accuracy"].idxmax(), "epoch"]
    assert history.loc[history["selected"], "epoch"].item() == best
    assert not any(p.requires_grad is False for p in selected.parameters())


def test_box_shape_and_dilation_of_masks():
    from ddb.masking import box_mask, dilate

    mask = np.zeros((10, 10), bool)
    mask[2, 3] = mask[5, 6] = True
    box = box_mask(mask)
    assert box.sum() == 16 and box[2:6, 3:7].all()
    assert dilate(mask, 1).sum() == 18 and dilate(mask, 0) is mask
    assert not box_mask(np.zeros((4, 4), bool)).any()
