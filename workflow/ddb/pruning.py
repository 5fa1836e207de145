"""Step ``prune``: keep or drop each generated image, and record why.

A generation labelled i' from a source of class i is dropped when ``softmax(f(x_gen))[i] >= Ψ_i``
(it still looks like its source class: ``still_source``) or when ``ρ <= P_{i'}`` (the change that
matters is not in the causal region: ``low_ig``). Samples the masker found nothing in are
``no_mask``. A generation whose ρ or softmax is not a finite number (a diverged classifier, an image
of NaNs) is dropped as ``non_finite`` even without pruning: NaN compares False, so both rules would
otherwise keep it. Both rules are evaluated and stored for every sample, so the ablation without
pruning (``enabled: false``, every generation kept) still shows what pruning would have done.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .results.schema import PRUNE_COLUMNS, REASONS
from .settings import PruneSettings


def prune(scores: pd.DataFrame, psi: pd.DataFrame, settings: PruneSettings) -> pd.DataFrame:
    """One row per generated sample: keep, reason, and the quantities both rules compared (``settings``:
    the ``prune`` section: P per target class, and whether the rules drop anything)."""
    thresholds, enabled = settings.thresholds, settings.enabled
    psi_by_class = dict(zip(psi["class"].astype(int), psi["psi"].astype(float)))
    out = scores[["sample_id", "source_id", "y", "source_y", "has_image", "rho", "p_source"]].copy()
    out["psi_source"] = out["source_y"].map(psi_by_class).astype(float)
    out["threshold"] = out["y"].map(lambda c: float(thresholds[int(c)])).astype(float)
    has_image = out["has_image"].astype(bool).to_numpy()
    finite = np.isfinite(out["rho"].to_numpy(dtype=float)) & np.isfinite(out["p_source"].to_numpy(dtype=float))
    out["still_source"] = has_image & (out["p_source"].to_numpy() >= out["psi_source"].to_numpy())
    out["low_ig"] = has_image & (out["rho"].to_numpy() <= out["threshold"].to_numpy())
    reason = np.select([~has_image, ~finite, out["still_source"] & enabled, out["low_ig"] & enabled],
                       ["no_mask", "non_finite", "still_source", "low_ig"], default="kept")
    out["reason"] = reason
    out["keep"] = reason == "kept"
    return out[PRUNE_COLUMNS]


def reason_counts(table: pd.DataFrame) -> dict[str, int]:
    counts = table["reason"].value_counts()
    return {reason: int(counts.get(reason, 0)) for reason in REASONS}
