"""Group metrics of the spurious-correlation literature: WGA, mean, train-weighted mean."""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_accuracies(groups: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    """Per-group accuracy and count: columns group, accuracy, n."""
    frame = pd.DataFrame({"group": np.asarray(groups), "correct": np.asarray(correct, dtype=float)})
    table = frame.groupby("group", sort=True)["correct"].agg(["mean", "size"]).reset_index()
    return table.rename(columns={"mean": "accuracy", "size": "n"})


def summarize(per_group: pd.DataFrame, train_sizes: dict[str, int] | None = None) -> dict:
    """WGA, mean accuracy (over images) and accuracy weighted by the training group proportions.

    ``mean_accuracy`` is the plain accuracy over all evaluated images; ``weighted_mean_accuracy``
    re-weights each group's accuracy by its share of the training set (the Waterbirds convention,
    since Waterbirds' test groups are balanced but its training groups are not).
    """
    accuracy = dict(zip(per_group["group"], per_group["accuracy"].astype(float)))
    sizes = dict(zip(per_group["group"], per_group["n"].astype(int)))
    total = sum(sizes.values())
    result = {
        "worst_group_accuracy": float(min(accuracy.values())),
        "mean_accuracy": float(sum(accuracy[g] * sizes[g] for g in accuracy) / total),
        "weighted_mean_accuracy": None,
        "group_accuracy": accuracy,
        "group_size": sizes,
    }
    if train_sizes:
        weights = {g: float(train_sizes.get(g, 0)) for g in accuracy}
        norm = sum(weights.values())
        result["weighted_mean_accuracy"] = (float(sum(accuracy[g] * w for g, w in weights.items()) / norm)
                                            if norm > 0 else result["mean_accuracy"])
    else:
        result["weighted_mean_accuracy"] = result["mean_accuracy"]
    return result


def worst_group_accuracy(groups: np.ndarray, correct: np.ndarray) -> float:
    return float(group_accuracies(groups, correct)["accuracy"].min())
