"""Step ``mask``: cut the causal object out of the source images of one class, one shard at a time.

Two maskers: ``files`` reads ready masks (the demo's exact ones, CUB segmentations, any folder of
``{sample_id}.png``), ``grounded_sam`` is the paper's LangSAM route (GroundingDINO box from a text
prompt, SAM or SAM 2.1 mask from the box; :mod:`ddb.models.segmentation`). A sample without a detection is kept
in the index with ``detected = False`` (counted, never silently dropped) and no mask image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from .errors import DDBError
from .storage.images import load_image
from .storage.checkpoints import process_shard
from .seeding import derive_seed
from .settings import DatasetSettings, GenerationSettings, MaskingSettings


MASK_INDEX_COLUMNS = ["sample_id", "detected", "area", "score", "box"]


def generation_sources(manifest: pd.DataFrame, y: int, generation: GenerationSettings, *, seed: int,
                       minority_group: str | None = None, low_loss: pd.DataFrame | None = None) -> pd.DataFrame:
    """Training images of class ``y`` that will be redrawn as the other class(es), sorted by id.

    ``sources``: ``low_loss`` takes D_y, the rows of ``low_loss`` (select_low_loss's table of class y,
    Algorithm 1); ``all`` every training image of the class; ``majority`` those outside
    ``minority_group`` (all of them where the class has none).
    """
    rows = manifest[(manifest["split"] == "train") & (manifest["y"] == y)]
    if generation.sources == "low_loss":
        if low_loss is None:
            raise DDBError("generation.sources", "is low_loss but no low-loss table was given",
                           "pass the class's low_loss/{cls}.parquet (the rules do)")
        foreign = low_loss[~low_loss["sample_id"].isin(rows["sample_id"])]
        if len(foreign):
            raise DDBError("low-loss table", f"{len(foreign)} of its samples are not training images of class {y}: "
                           f"{foreign['sample_id'].head(3).tolist()}", "rerun select_low_loss on this manifest")
        rows = rows[rows["sample_id"].isin(low_loss["sample_id"])]
    elif generation.sources == "majority" and minority_group is not None:
        rows = rows[rows["group"] != minority_group]
    cap = generation.max_sources_per_class
    if cap is not None and len(rows) > cap:
        rng = np.random.default_rng(derive_seed(seed, "generation_sources", y))
        rows = rows.iloc[np.sort(rng.choice(len(rows), size=cap, replace=False))]
    return rows.sort_values("sample_id", kind="stable").reset_index(drop=True)


def step_sources(manifest: pd.DataFrame, settings: DatasetSettings, source_class: str, *, seed: int,
                 low_loss_path=None) -> pd.DataFrame:
    """``generation_sources`` as the mask and inpaint rules call it: from the dataset's settings (classes,
    generation, named minority groups) and, for ``sources: low_loss``, the class's table."""
    from .storage.reading import read_parquet

    y = settings.classes.index(source_class)
    low_loss = read_parquet(low_loss_path, ["sample_id"]) if low_loss_path else None
    return generation_sources(manifest, y, settings.generation, seed=seed,
                              minority_group=settings.minority_group(y), low_loss=low_loss)


def shard_rows(rows: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """Contiguous slice ``shard`` of ``shards`` (:func:`ddb.sharding.shard_count` counts them), at most
    ``ceil(len(rows) / shards)`` rows; per-sample seeds make the split irrelevant to results."""
    if not 0 <= shard < shards:
        raise DDBError("shard", f"shard {shard} is outside 0..{shards - 1}",
                       "ask for a shard the workflow plans (`snakemake -n` lists them; ddb.sharding counts them "
                       "from generation.images_per_shard)")
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

    def __init__(self, masking: MaskingSettings, *, seed: int, device):
        from .models.segmentation import TextPromptedMasker

        self.masker = TextPromptedMasker(masking.detector, masking.segmenter, masking.prompt, masking.box_threshold,
                                         masking.text_threshold, seed=seed, device=device,
                                         multimask=masking.multimask, boxes=masking.boxes)

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


def make_masker(masking: MaskingSettings, *, seed: int, device):
    if masking.masker == "files":
        return FilesMasker(masking.mask_dir)
    return PromptMasker(masking, seed=seed, device=device)


def mask_shard(rows: pd.DataFrame, masker, masking: MaskingSettings, tar_path, index_path,
               fingerprint: str | None = None) -> pd.DataFrame:
    """Masks of ``rows`` as ``{sample_id}.png`` (L, 0/255) in ``tar_path``; index with area, detected, box.
    ``fingerprint``: the job's (checkpoints of another job are discarded)."""
    by_id = {r["sample_id"]: r for r in rows.to_dict("records")}

    def compute(ids):
        batch = [by_id[i] for i in ids]
        images = [load_image(r["path"]) for r in batch]
        out = []
        for row, (mask, detected, box, score) in zip(batch, masker(batch, images)):
            if masking.shape == "box":
                mask = box_mask(mask)
            mask = dilate(mask, masking.dilate)
            record = {"sample_id": row["sample_id"], "detected": bool(detected and mask.any()),
                      "area": float(mask.mean()), "score": float(score) if score is not None else float("nan"),
                      "box": list(box) if box is not None else None}
            out.append((row["sample_id"], mask.astype(np.uint8) * 255 if record["detected"] else None, record))
        return out

    return process_shard(list(by_id), compute, masking.batch_size, tar_path, index_path, desc="mask",
                         columns=MASK_INDEX_COLUMNS, fingerprint=fingerprint)
