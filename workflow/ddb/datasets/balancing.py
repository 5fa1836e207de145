"""Class balance, two ways (config ``class_balance``).

``subsample`` (the paper's CelebA setting, Table 2): prepare_dataset draws every class's training rows
down to the smallest class's count; the rows left out stay in the manifest with split ``excluded``.
``reweight``: the data loaders draw rows with
``torch.utils.data.WeightedRandomSampler(class_balanced_weights(rows), ...)`` from the whole training split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DDBError
from .manifest import EXCLUDED


def subsample_classes(manifest: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Every class's training rows drawn (seeded) down to the smallest class's count; the others get
    split ``excluded``. Val and test are untouched, and no row is dropped."""
    from ..seeding import derive_seed  # imports torch: not at module level, which Snakemake's process reads

    manifest = manifest.copy()
    train = manifest[manifest["split"] == "train"]
    counts = train.groupby("y").size()
    if counts.empty:
        return manifest
    target = int(counts.min())
    for y, count in counts.items():
        if count > target:
            rows = train.index[train["y"] == y]
            rng = np.random.default_rng(derive_seed(seed, "class_balance", int(y)))
            left_out = rng.choice(len(rows), size=count - target, replace=False)
            manifest.loc[rows[np.sort(left_out)], "split"] = EXCLUDED
    return manifest


def class_balanced_weights(manifest: pd.DataFrame) -> np.ndarray:
    """Per-row sampling weight 1 / (rows of that class), so every class is drawn equally often.

    Pass the rows the loader draws from (the training split); each class's weights sum to 1.
    """
    if "y" not in manifest.columns:
        raise DDBError("class-balanced sampling", "the table has no column 'y'", "pass manifest rows")
    labels = manifest["y"].to_numpy()
    if len(labels) == 0:
        return np.zeros(0, dtype=np.float64)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse].astype(np.float64)
