"""Steps ``select_low_loss`` and ``mean_softmax``: the K cleanest samples per class and Ψ.

Per-sample cross-entropy (``reduction="none"``) on un-augmented images: the public code ranked by a
batch mean and on augmented tensors, which docs/method.md lists as mistakes not to copy.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from .datasets.loading import ImageDataset
from .models.classifier import eval_transform
from .training import predict_logits


def per_sample_losses(model, rows: pd.DataFrame, image_size: int, batch_size: int, device,
                      transform: str = "stretch", precision=None) -> pd.DataFrame:
    """sample_id, y, loss (cross-entropy of each sample) and softmax of its own class (f computing in
    ``precision``, :mod:`ddb.precision`; the losses from its float32 logits)."""
    logits = predict_logits(model, ImageDataset.from_manifest(rows, eval_transform(image_size, transform)), batch_size,
                            device, desc="per-sample loss", precision=precision)
    labels = torch.as_tensor(rows["y"].to_numpy().copy())
    losses = F.cross_entropy(logits, labels, reduction="none")
    probabilities = logits.softmax(1).gather(1, labels[:, None])[:, 0]
    return pd.DataFrame({"sample_id": rows["sample_id"].to_numpy(), "y": labels.numpy(),
                         "loss": losses.numpy(), "softmax": probabilities.numpy()})


def select_low_loss(losses: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` lowest-loss rows (all, if fewer), ranked from 1; ties broken by sample id."""
    ranked = losses.sort_values(["loss", "sample_id"], kind="stable").head(k).reset_index(drop=True)
    ranked.insert(len(ranked.columns), "rank", range(1, len(ranked) + 1))
    return ranked


def mean_softmax(low_loss_tables: dict[int, pd.DataFrame], classes: list[str]) -> pd.DataFrame:
    """Ψ_c = mean softmax[c] over the K_c low-loss samples of class c: one row per class."""
    rows = []
    for y, table in sorted(low_loss_tables.items()):
        if (table["y"] != y).any():
            raise ValueError(f"low-loss table of class {y} holds samples of another class")
        rows.append({"class": y, "class_name": classes[y], "k": len(table), "psi": float(table["softmax"].mean())})
    return pd.DataFrame(rows)
