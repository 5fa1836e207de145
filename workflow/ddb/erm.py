"""Step ``train_erm``: the ERM classifier f, trained on the training split or imported from a file."""

from __future__ import annotations

import logging
from dataclasses import asdict

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .datasets.loading import ImageDataset, class_balanced_sampler, loader_workers, per_sample_augmentation
from .models.classifier import build_classifier, eval_transform, import_classifier, train_transform
from .precision import classifier_precision
from .resume import TrainingCheckpoint, restore_training_state, training_state
from .seeding import derive_seed
from .settings import DatasetSettings
from .training import (epoch_batches, evaluate_groups, make_optimizer, require_finite, seeded_loader,
                       train_sizes_of)

log = logging.getLogger("ddb")


def train_erm(manifest: pd.DataFrame, settings: DatasetSettings, *, seed: int, device, name: str = "dataset",
              resume: TrainingCheckpoint | None = None):
    """Return (model, history) where history has one row per epoch (loss, train acc, val WGA/mean); the
    model is the epoch that ``erm.select_epoch`` keeps (the last, or the best on validation). ``settings``:
    the dataset's (its classes, class_balance, classifier and erm sections).

    With ``resume``, a checkpoint is saved after every epoch and a run finds the last one there and goes on
    from it (:mod:`ddb.resume`); removing it once the outputs are written is the caller's part.
    """
    classes = settings.classes
    classifier, erm = settings.classifier, settings.erm
    size, recipe = classifier.image_size, classifier.transform
    precision = classifier_precision(asdict(classifier), device)
    if erm.checkpoint:
        model = import_classifier(erm.checkpoint, classifier.arch, len(classes),
                                  f"datasets.{name}.erm.checkpoint").to(device)
        metrics, _ = evaluate_groups(model, manifest[manifest["split"] == "val"], eval_transform(size, recipe),
                                     erm.batch_size, device, precision=precision)
        log.info("imported ERM checkpoint %s: val WGA %.3f", erm.checkpoint, metrics["worst_group_accuracy"])
        return model, pd.DataFrame([{"epoch": 0, "loss": float("nan"), "train_accuracy": float("nan"),
                                     "val_worst_group_accuracy": metrics["worst_group_accuracy"],
                                     "val_mean_accuracy": metrics["mean_accuracy"]}])

    model = build_classifier(classifier.arch, len(classes), classifier.weights, derive_seed(seed, "erm", "init"),
                             f"datasets.{name}.classifier").to(device)
    precision.prepare(model)
    train = manifest[manifest["split"] == "train"]
    val = manifest[manifest["split"] == "val"]
    dataset = ImageDataset.from_manifest(train, train_transform(size, erm.augment, recipe),
                                         per_sample_augmentation(erm.num_workers,
                                                                 derive_seed(seed, "erm", "augment")))
    sampler = (class_balanced_sampler(train["y"].tolist(), derive_seed(seed, "erm", "sampler"))
               if settings.class_balance == "reweight" else None)
    loader = seeded_loader(dataset, erm.batch_size, derive_seed(seed, "erm", "order"), sampler,
                           loader_workers(erm.num_workers, torch.get_num_threads()))
    optimizer = make_optimizer(erm.optimizer, model.parameters(), erm.lr,
                               erm.weight_decay, erm.momentum)
    scaler = precision.grad_scaler()
    criterion = nn.CrossEntropyLoss()
    history, start, kept = [], 0, None
    select = erm.select_epoch
    state = resume.load() if resume is not None else None
    if state is not None:
        restore_training_state(state, model, optimizer, scaler, loader, sampler)
        history, start, kept = list(state["history"]), state["epoch"], state.get("kept")
        resume.announce(f"epoch {start}", f"{erm.epochs} (epoch {start + 1} next)")
    for epoch in range(start + 1, erm.epochs + 1):
        dataset.draw = epoch
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for images, labels, _ in tqdm(epoch_batches(loader), total=len(loader), desc=f"ERM epoch {epoch}",
                                      mininterval=10, leave=False):
            images, labels = precision.inputs(images, device), labels.to(device)
            with precision.autocast():
                logits = model(images)
            loss = criterion(logits.float(), labels)
            require_finite(loss, what=f"train_erm ({name})", when=f"epoch {epoch}", lr=erm.lr,
                           lr_key=f"datasets.{name}.erm.lr")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            total += len(labels)
        metrics, _ = evaluate_groups(model, val, eval_transform(size, recipe), erm.batch_size, device,
                                     train_sizes_of(manifest), precision=precision)
        history.append({"epoch": epoch, "loss": loss_sum / total, "train_accuracy": correct / total,
                        "val_worst_group_accuracy": metrics["worst_group_accuracy"],
                        "val_mean_accuracy": metrics["mean_accuracy"]})
        log.info("ERM epoch %d: loss %.4f, train acc %.3f, val WGA %.3f, val mean %.3f", epoch,
                 history[-1]["loss"], history[-1]["train_accuracy"], metrics["worst_group_accuracy"],
                 metrics["mean_accuracy"])
        if select != "last" and (kept is None or improves(history[-1], history[kept["epoch"] - 1], select)):
            kept = {"epoch": epoch, "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        if resume is not None:
            resume.save({"epoch": epoch, **training_state(model, optimizer, scaler, loader, sampler),
                         "history": history, "kept": kept})
    if kept is not None:
        model.load_state_dict(kept["state_dict"])
        log.info("ERM keeps epoch %d of %d (%s): val WGA %.3f", kept["epoch"], len(history), select,
                 history[kept["epoch"] - 1]["val_worst_group_accuracy"])
    return model.eval(), pd.DataFrame(history)


def improves(epoch: dict, best: dict, rule: str) -> bool:
    """Whether ``epoch``'s validation scores replace ``best``'s under ``erm.select_epoch`` ``rule``:
    ``best_val_wga`` a strictly higher WGA (DISC's save_best, disc/train.py:218-222), ``best_val_wga_mean``
    also an equal WGA with a higher mean accuracy (DaC's main.py:85-93)."""
    wga, best_wga = epoch["val_worst_group_accuracy"], best["val_worst_group_accuracy"]
    if rule == "best_val_wga_mean" and wga == best_wga:
        return epoch["val_mean_accuracy"] > best["val_mean_accuracy"]
    return wga > best_wga
