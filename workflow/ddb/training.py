"""What ERM training, retraining, scoring and evaluation share: batched prediction and the epoch loop."""

from __future__ import annotations

import logging
from typing import Iterable

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .datasets.loading import ImageDataset
from .datasets.manifest import EXCLUDED
from .errors import DDBError
from .metrics import group_accuracies, summarize
from .precision import FP32, Precision

log = logging.getLogger("ddb")


@torch.inference_mode()
def predict_logits(model: nn.Module, dataset: ImageDataset, batch_size: int, device,
                   num_workers: int = 0, desc: str = "predict", precision: Precision | None = None) -> torch.Tensor:
    """Float32 logits for every item of ``dataset``, in order (model in eval mode: no dropout, frozen BN),
    computed in ``precision`` (:mod:`ddb.precision`; default plain float32)."""
    precision = precision or FP32
    precision.prepare(model.eval())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    outputs = []
    for images, _, _ in tqdm(loader, desc=desc, mininterval=5, leave=False):
        with precision.autocast():
            logits = model(precision.inputs(images, device))
        outputs.append(logits.float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


def evaluate_groups(model: nn.Module, manifest: pd.DataFrame, transform, batch_size: int, device,
                    train_sizes: dict[str, int] | None = None, num_workers: int = 0,
                    precision: Precision | None = None) -> tuple[dict, pd.DataFrame]:
    """Summary metrics and the per-group table of ``model`` on the rows of ``manifest``."""
    logits = predict_logits(model, ImageDataset.from_manifest(manifest, transform), batch_size, device,
                            num_workers, desc="evaluate", precision=precision)
    correct = (logits.argmax(1).numpy() == manifest["y"].to_numpy())
    per_group = group_accuracies(manifest["group"].to_numpy(), correct)
    return summarize(per_group, train_sizes), per_group


def require_finite(loss: torch.Tensor, *, what: str, when: str, lr: float, lr_key: str) -> None:
    """Stop the step when a loss is NaN or infinite: the weights are diverging, and training on would
    write a NaN model and a plausible-looking eval.json. Nothing of the step is written."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise DDBError(what, f"the loss became {loss.detach().float().flatten()[0].item()} in {when}: training "
                       "diverged, so the step stops and writes nothing",
                       f"lower the learning rate {lr_key} (now {lr:g}; try {lr / 10:g}) and rerun")


def make_optimizer(name: str, params: Iterable, lr: float, weight_decay: float, momentum: float = 0.9):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def seeded_loader(dataset, batch_size: int, seed: int, sampler=None, num_workers: int = 0,
                  drop_last: bool = False) -> DataLoader:
    """A shuffling loader whose order depends only on ``seed`` (reproducible epochs)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                      generator=generator, num_workers=num_workers, drop_last=drop_last)


def epoch_batches(loader: DataLoader) -> Iterable:
    """One pass over ``loader``, for a progress bar (tqdm.auto's makes an iterator of a DataLoader it is given
    and then another: with workers, the first one would start them and take batches from the sampler).

    The one draw of the loader's generator that such a discarded iterator makes (its workers' base seed) is
    made here too, so every epoch's order is the one the loop always had.
    """
    torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
    yield from loader


# The whole training split: "train" and the rows a class subsample (class_balance: subsample) left out.
TRAINING_SPLITS = ("train", EXCLUDED)


def train_sizes_of(manifest: pd.DataFrame) -> dict[str, int]:
    """Group sizes of the whole training split (the weights of the weighted mean accuracy): a class
    subsample changes what f trains on, not the training distribution the weighted mean stands for."""
    return manifest[manifest["split"].isin(TRAINING_SPLITS)].groupby("group").size().astype(int).to_dict()
