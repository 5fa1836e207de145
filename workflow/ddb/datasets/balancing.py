"""Class-balanced sampling (the paper trains CelebA class-balanced) without rewriting the manifest.

The data loaders draw rows with ``torch.utils.data.WeightedRandomSampler(class_balanced_weights(rows), ...)``
when the dataset's ``class_balanced`` option is set; the manifest, and so every count and table built
from it, stays as published.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DDBError


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
