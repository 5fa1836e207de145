"""Torch datasets over the manifest and over generated image shards."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..storage.images import load_image
from ..seeding import derive_seed
from .balancing import class_balanced_weights


class ImageDataset(Dataset):
    """(image, label, index) triples; each source is a file path or a (shard, sample_id) pair.

    With ``augment_seed``, the random transform of an item draws from a seed of its own, made of
    ``(augment_seed, draw, index)`` (``draw``: the epoch, set by the training loop), so the augmentation does
    not depend on which process loads the item: the same with 0 data-loading workers as with 8. Without it,
    the transform draws from the process's global torch RNG (the main process's stream with no workers).
    """

    def __init__(self, sources: Sequence, labels: Sequence[int], transform: Callable,
                 augment_seed: int | None = None):
        self.sources, self.labels, self.transform = list(sources), [int(y) for y in labels], transform
        self.augment_seed, self.draw = augment_seed, 0

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int):
        image = open_image(self.sources[index])
        if self.augment_seed is None:
            return self.transform(image), self.labels[index], index
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.augment_seed, self.draw, index))
            return self.transform(image), self.labels[index], index

    @classmethod
    def from_manifest(cls, manifest: pd.DataFrame, transform: Callable,
                      augment_seed: int | None = None) -> "ImageDataset":
        return cls(manifest["path"].tolist(), manifest["y"].tolist(), transform, augment_seed)


def loader_workers(configured: int | None, threads: int) -> int:
    """Data-loading worker processes of a training loader: ``configured`` where the config sets it, else
    (null) the job's threads less the one that trains, none with a single thread."""
    if configured is not None:
        return int(configured)
    return max(0, int(threads) - 1)


def per_sample_augmentation(configured: int | None, seed: int) -> int | None:
    """The ``augment_seed`` of a training dataset: per-item seeds (results independent of the worker count)
    unless the config asks for exactly 0 workers, which keeps the main process's RNG stream."""
    return None if configured == 0 else seed


def open_image(source) -> Image.Image:
    if isinstance(source, tuple):
        shard, sample_id = source
        return shard.image(sample_id).convert("RGB")
    return load_image(source)


def class_balanced_sampler(labels: Sequence[int], seed: int) -> torch.utils.data.WeightedRandomSampler:
    """Draw every class equally often (the paper's CelebA setting) without touching the manifest."""
    weights = class_balanced_weights(pd.DataFrame({"y": np.asarray(labels)}))
    return torch.utils.data.WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), num_samples=len(labels), replacement=True,
        generator=torch.Generator().manual_seed(seed))
