"""Step ``mask``: cut the causal object out of the source images of one class, one shard at a time.

Two maskers: ``files`` reads ready masks (the demo's exact ones, CUB segmentations, any folder of
``{sample_id}.png``), ``grounded_sam`` is the paper's LangSAM route (GroundingDINO box from a text
prompt, SAM mask from the box; :mod:`ddb.models.segmentation`). A sample without a detection is kept
in the index with ``detected = False`` (counted, never silently dropped) and no mask image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from .datasets.manifest import minority_groups
from .errors import DDBError
from .io import load_image, process_shard
from .seeding import derive_seed


MASK_INDEX_COLUMNS = ["sample_id", "detected", "area", "score", "box"]


def generation_sources(manifest: pd.DataFrame, y: int, generation_cfg: dict, *, seed: int) -> pd.DataFrame:
    """Training images of class ``y`` that will be redrawn as the other class(es), sorted by id."""
    rows = manifest[(manifest["split"] == "train") & (manifest["y"] == y)]
    if generation_cfg["sources"] == "majority":
        minority = minority_groups(manifest)[y]
        sizes = rows.groupby("group").size()
        rows = rows[rows["group"] == sizes.drop(minority, errors="ignore").idxmax()] if len(sizes) > 1 else rows
    cap = generation_cfg["max_sources_per_class"]
    if cap is not None and len(rows) > cap:
        rng = np.random.default_rng(derive_seed(seed, "generation_sources", y))
        rows = rows.iloc[np.sort(rng.choice(len(rows), size=cap, replace=False))]
    return rows.sort_values("sample_id", kind="stable").reset_index(drop=True)


def shard_rows(rows: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """Contiguous slice ``shard`` of ``shards``; per-sample seeds make the split irrelevant to results."""
    if not 0 <= shard < shards:
        raise DDBError("shard", f"shard {shard} is outside 0..{shards - 1}", "check generation.shards")
    bounds = np.linspace(0, len(rows), shards + 1).round().astype(int)
    return rows.iloc[bounds[shard]:bounds[shard + 1]]


class FilesMasker:
    """Masks from files: ``mask_dir/{sample_id}.png`` or the manifest's ``mask_path`` column."""

    def __init__(self, mask_dir: str | None = None):
        self.mask_dir = Path(mask_dir) if mask_dir else None

    def __call__(self, rows: list[dict], images: list[Image.Image]):
        results = []
        for row, image in zip(rows, images):
            path = self.mask_dir / f"{row['sample_id']}.png" if self.mask_dir else row.get("mask_path")
            if not isinstance(path, (str, Path)) or not Path(path).exists():
                results.append((np.zeros((image.height, image.width), bool), False, None, float("nan")))
                continue
            mask = load_image(path, "L")
            if mask.size != image.size:
                mask = mask.resize(image.size, Image.NEAREST)
            array = np.asarray(mask) > 127
            results.append((array, bool(array.any()), _box_of(array), 1.0 if array.any() else float("nan")))
        return results


class PromptMasker:
    """The paper's text-prompted masker, wrapped to the same call shape as :class:`FilesMasker`."""

    def __init__(self, masking_cfg: dict, *, seed: int, device):
        from .models.segmentation import TextPromptedMasker

        self.masker = TextPromptedMasker(masking_cfg["detector"], masking_cfg["segmenter"], masking_cfg["prompt"],
                                         masking_cfg["box_threshold"], masking_cfg["text_threshold"],
                                         seed=seed, device=device)

    def __call__(self, rows: list[dict], images: list[Image.Image]):
        return [(r.mask, r.detected, r.box, r.score) for r in self.masker(images)]


def _box_of(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def box_mask(mask: np.ndarray) -> np.ndarray:
    """The mask's bounding box, filled."""
    box = _box_of(mask)
    out = np.zeros_like(mask, dtype=bool)
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        out[y0:y1, x0:x1] = True
    return out


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * pixels + 1))
    return np.asarray(image) > 127


def make_masker(masking_cfg: dict, *, seed: int, device):
    if masking_cfg["masker"] == "files":
        return FilesMasker(masking_cfg["mask_dir"])
    return PromptMasker(masking_cfg, seed=seed, device=device)


def mask_shard(rows: pd.DataFrame, masker, masking_cfg: dict, tar_path, index_path) -> pd.DataFrame:
    """Masks of ``rows`` as ``{sample_id}.png`` (L, 0/255) in ``tar_path``; index with area, detected, box."""
    by_id = {r["sample_id"]: r for r in rows.to_dict("records")}

    def compute(ids):
        batch = [by_id[i] for i in ids]
        images = [load_image(r["path"]) for r in batch]
        out = []
        for row, (mask, detected, box, score) in zip(batch, masker(batch, images)):
            if masking_cfg["shape"] == "box":
                mask = box_mask(mask)
            mask = dilate(mask, masking_cfg["dilate"])
            record = {"sample_id": row["sample_id"], "detected": bool(detected and mask.any()),
                      "area": float(mask.mean()), "score": float(score) if score is not None else float("nan"),
                      "box": list(box) if box is not None else None}
            out.append((row["sample_id"], mask.astype(np.uint8) * 255 if record["detected"] else None, record))
        return out

    return process_shard(list(by_id), compute, masking_cfg["batch_size"], tar_path, index_path, desc="mask",
                         columns=MASK_INDEX_COLUMNS)
