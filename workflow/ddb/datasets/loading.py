"""Torch datasets over the manifest and over generated image shards."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..io import load_image
from .balancing import class_balanced_weights


class ImageDataset(Dataset):
    """(image, label, index) triples; each source is a file path or a (shard, sample_id) pair."""

    def __init__(self, sources: Sequence, labels: Sequence[int], transform: Callable):
        self.sources, self.labels, self.transform = list(sources), [int(y) for y in labels], transform

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int):
        return self.transform(open_image(self.sources[index])), self.labels[index], index

    @classmethod
    def from_manifest(cls, manifest: pd.DataFrame, transform: Callable) -> "ImageDataset":
        return cls(manifest["path"].tolist(), manifest["y"].tolist(), transform)


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
