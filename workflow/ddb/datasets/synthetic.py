"""The embedded demo dataset: two kinds of object on two kinds of background, Waterbirds-shaped.

Class 0 ("landbird") is a disk, class 1 ("waterbird") a triangle, both in colours drawn from one shared
palette so that only the shape is causal. The background (green textured "land" or blue striped
"water") is the spurious attribute: in training it agrees with the class in Waterbirds' proportions
(3498 : 184 : 56 : 1018), while val and test are balanced per group. Masks are exact. Every image is
drawn from a seed derived from (global seed, sample id), so the dataset is identical on every machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..failure_cleanup import JobFiles
from ..storage.atomic import write_png
from ..seeding import numpy_rng
from .manifest import group_name

SPURIOUS = ["land", "water"]
# (class index, spurious index) of the four groups, in the order of synthetic.group_proportions
GROUPS = [(y, s) for y in range(2) for s in range(2)]
PALETTE = np.array([[230, 60, 50], [245, 160, 40], [250, 230, 80], [240, 240, 240],
                    [170, 80, 200], [120, 70, 40], [250, 130, 190]], dtype=np.float32)


def split_counts(total: int, proportions: list[float]) -> list[int]:
    """Largest-remainder rounding of ``total`` into ``proportions``, at least one per group."""
    weights = np.asarray(proportions, dtype=float) / float(np.sum(proportions))
    exact = weights * total
    counts = np.maximum(np.floor(exact).astype(int), 1)
    remainder = total - counts.sum()
    for index in np.argsort(-(exact - np.floor(exact)))[: max(remainder, 0)]:
        counts[index] += 1
    return counts.tolist()


def draw_background(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "land":
        base = np.array([80, 125, 55], np.float32) + rng.uniform(-20, 20, 3)
        # a few soft blobs of darker/lighter vegetation
        field = np.zeros((size, size), np.float32)
        for _ in range(6):
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.25)
            field += rng.uniform(-1, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        image = base + 30 * field[..., None]
    else:
        base = np.array([45, 95, 185], np.float32) + rng.uniform(-20, 20, 3)
        freq, phase = rng.uniform(6, 12), rng.uniform(0, 2 * np.pi)
        waves = np.sin(2 * np.pi * freq * yy + phase + 2 * np.sin(2 * np.pi * xx))
        image = base + np.array([18, 18, 28], np.float32) * waves[..., None]
    image += rng.normal(0, 6, image.shape)
    return image


def object_mask(rng: np.random.Generator, y: int, size: int) -> np.ndarray:
    radius = rng.uniform(0.14, 0.2) * size
    cy, cx = rng.uniform(radius + 2, size - radius - 2, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if y == 0:  # disk
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    # triangle: inside all three half-planes of a randomly rotated equilateral triangle
    angle = rng.uniform(0, 2 * np.pi)
    corners = [(cy + 1.25 * radius * np.sin(angle + k * 2 * np.pi / 3),
                cx + 1.25 * radius * np.cos(angle + k * 2 * np.pi / 3)) for k in range(3)]
    inside = np.ones((size, size), bool)
    for (y0, x0), (y1, x1) in zip(corners, corners[1:] + corners[:1]):
        cross = (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0)
        inside &= cross >= 0
    return inside


def draw_sample(global_seed: int, sample_id: str, y: int, spurious: str, size: int):
    """Return (RGB uint8 image, bool mask) for one sample; depends only on the arguments."""
    rng = numpy_rng(global_seed, "synthetic", sample_id)
    image = draw_background(rng, spurious, size)
    mask = object_mask(rng, y, size)
    colour = PALETTE[rng.integers(len(PALETTE))] + rng.uniform(-15, 15, 3)
    shading = 1 + 0.15 * rng.normal(size=(size, size, 1))
    image = np.where(mask[..., None], colour * shading, image)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def train_group_sizes(options: dict) -> dict[tuple[int, str], int]:
    """Training images per (class index, spurious value) that :func:`build_manifest` draws from the entry's
    ``synthetic`` options: known from the config alone, so the demo's generation shards are counted before
    it is drawn (ddb.sharding)."""
    counts = split_counts(options["n_train"], options["group_proportions"])
    return {(y, SPURIOUS[s]): count for (y, s), count in zip(GROUPS, counts)}


def build_manifest(cfg: dict, *, seed: int, workdir: Path) -> pd.DataFrame:
    options = cfg["synthetic"]
    classes = cfg["classes"]
    size = options["image_size"]
    root = Path(cfg["root"])
    groups = GROUPS
    plan = {
        "train": split_counts(options["n_train"], options["group_proportions"]),
        "val": [options["n_val_per_group"]] * 4,
        "test": [options["n_test_per_group"]] * 4,
    }
    rows = []
    # a draw that fails (a full disk) removes the images it wrote, never those a previous draw left
    with JobFiles() as drawn:
        for split, counts in plan.items():
            index = 0
            for (y, s), count in zip(groups, counts):
                for _ in range(count):
                    sample_id = f"{split}{index:05d}"
                    index += 1
                    image, mask = draw_sample(seed, sample_id, y, SPURIOUS[s], size)
                    path = root / split / f"{sample_id}.png"
                    mask_path = root / "masks" / f"{sample_id}.png"
                    write_png(image, drawn.add(workdir / path))
                    write_png(mask.astype(np.uint8) * 255, drawn.add(workdir / mask_path))
                    rows.append({"sample_id": sample_id, "path": str(path), "split": split, "y": y,
                                 "class_name": classes[y], "spurious": SPURIOUS[s],
                                 "group": group_name(classes[y], SPURIOUS[s]), "mask_path": str(mask_path)})
    return pd.DataFrame(rows)
