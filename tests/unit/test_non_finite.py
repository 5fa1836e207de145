"""No silent NaN: a diverging training step stops with the epoch and the learning rate to
lower; a generation whose ρ or softmax is not finite is pruned with a reason of its own, and counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ddb.errors import DDBError
from ddb.pruning import prune, reason_counts
from ddb.settings import PruneSettings, dataset_settings
from test_step_computations import retrain_cfg, tiny_manifest


def test_a_nan_rho_or_softmax_is_pruned_as_non_finite_even_without_pruning():
    scores = pd.DataFrame({
        "sample_id": ["ok", "nan_rho", "nan_p", "inf_rho", "no_image"], "source_id": list("ABCDE"),
        "y": [1, 1, 1, 1, 1], "source_y": [0, 0, 0, 0, 0], "has_image": [True, True, True, True, False],
        "rho": [2.0, np.nan, 2.0, np.inf, np.nan], "p_source": [0.1, 0.1, np.nan, 0.1, np.nan],
    })
    psi = pd.DataFrame({"class": [0, 1], "psi": [0.9, 0.9]})
    for enabled in (True, False):
        table = prune(scores, psi, PruneSettings(enabled=enabled, thresholds=[1.0, 1.0]))
        # NaN compares False against Ψ and P: without its own rule such a generation would be kept
        assert table["reason"].tolist() == ["kept", "non_finite", "non_finite", "non_finite", "no_mask"]
        assert table["keep"].tolist() == [True, False, False, False, False]
        assert reason_counts(table)["non_finite"] == 3


def test_a_diverging_erm_stops_naming_the_epoch_and_the_learning_rate(tmp_path):
    from ddb.erm import train_erm

    cfg = retrain_cfg()
    cfg["erm"] = {**cfg["erm"], "epochs": 3, "batch_size": 8, "lr": 1e38, "augment": False, "checkpoint": None}
    with pytest.raises(DDBError, match=r"(?s)train_erm \(d\): the loss became (nan|inf) in epoch 1.*"
                                       r"lower the learning rate datasets\.d\.erm\.lr \(now 1e\+38; try 1e\+37\)"):
        train_erm(tiny_manifest(tmp_path), dataset_settings(cfg, "d"), seed=0, device="cpu", name="d")


def test_a_diverging_retrain_stops_and_writes_nothing(tmp_path):
    from ddb.models.classifier import build_classifier
    from ddb.retrain import retrain

    manifest = tiny_manifest(tmp_path)
    with pytest.raises(DDBError, match=r"(?s)retrain: the loss became (nan|inf) in epoch 1.*retrain\.lr \(now 1e\+30"):
        retrain(build_classifier("tiny", 2, None, seed=0), manifest, {}, dataset_settings(retrain_cfg(lr=1e30), "d"),
                seed=0, device="cpu")
