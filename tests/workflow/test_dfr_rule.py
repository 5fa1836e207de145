"""DFR through the `dfr` rule of the reduced demo run: its artifacts, eval.json's `dfr` entry, the printed DFR
column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from helpers import run_paths
from ddb.dfr import feature_columns, predict


def test_the_dfr_rule_on_the_demo(demo_run):
    import torch

    from ddb.datasets.loading import ImageDataset
    from ddb.evaluate import format_comparison
    from ddb.models.classifier import eval_transform, load_classifier
    from ddb.training import predict_logits

    paths = run_paths(demo_run)
    report = json.loads((paths.path("eval_json")).read_text())
    assert list(report)[:4] == ["dataset", "erm", "dfr", "ddb"]
    assert set(report["dfr"]) == set(report["erm"]) == {"worst_group_accuracy", "mean_accuracy",
                                                        "weighted_mean_accuracy", "group_accuracy", "group_size"}
    assert report["dfr"]["worst_group_accuracy"] == min(report["dfr"]["group_accuracy"].values())
    table = pd.read_parquet(paths.path("eval_table"))
    rows = table[table["model"] == "dfr"].set_index("group")
    assert rows["accuracy"].to_dict() == report["dfr"]["group_accuracy"]
    printed = format_comparison(report)
    assert printed.splitlines()[0].split()[-3:] == ["ERM", "DFR", "DDB"]
    assert "DFR" in (demo_run / "snakemake.out").read_text()  # the table printed at the end of the run

    manifest = pd.read_parquet(paths.path("manifest"))
    val = manifest[manifest["split"] == "val"]
    feats = pd.read_parquet(paths.path("dfr_features"))
    assert sorted(feats["sample_id"]) == sorted(val["sample_id"]) and set(feats["half"]) == {"fit", "select"}
    assert (feats.groupby("group")["half"].value_counts().unstack() == 4).all().all()  # 8 per group, 4 + 4
    selection = pd.read_parquet(paths.path("dfr_selection"))
    chosen = selection[selection["selected"]]
    assert len(chosen) == 1 and chosen["val_worst_group_accuracy"].iloc[0] == selection["val_worst_group_accuracy"].max()
    halves = pd.read_parquet(paths.path("dfr_halves"))
    assert halves["n_val"].tolist() == [8, 8, 8, 8] and halves["n_fit_balanced"].tolist() == [4, 4, 4, 4]

    # dfr/model.pt is ERM's backbone with the averaged regression (standardisation folded in) as its head
    coefficients = pd.read_parquet(paths.path("dfr_coefficients"))
    assert coefficients.loc[coefficients["part"] == "subsample", "subsample"].nunique() == 20
    columns = feature_columns(sum(c.startswith("f") and c[1:].isdigit() for c in coefficients.columns))
    part = coefficients.set_index("part")
    average = coefficients[coefficients["part"] == "average"]
    x = (feats[columns].to_numpy(np.float64) - part.loc["scaler_mean", columns].to_numpy(np.float64)) \
        / part.loc["scaler_scale", columns].to_numpy(np.float64)
    expected = predict(x, average[columns].to_numpy(np.float64), average["intercept"].to_numpy(np.float64))
    dfr_model, meta = load_classifier(paths.path("dfr_model"))
    erm_model, _ = load_classifier(paths.path("erm_model"))
    for name, tensor in erm_model.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(tensor, dfr_model.state_dict()[name]), name
    rows = val.set_index("sample_id").loc[feats["sample_id"]].reset_index()
    rows["path"] = [str(demo_run / path) for path in rows["path"]]  # manifest paths are relative to the run
    dataset = ImageDataset.from_manifest(rows, eval_transform(meta["image_size"], meta["transform"]))
    logits = predict_logits(dfr_model, dataset, 16, "cpu")
    assert (logits.argmax(1).numpy() == expected).mean() >= 0.95  # float32 head vs float64 regression
