"""Step ``retrain``: fine-tune f on real + kept generated data, ``L = L_CE + Σ_c γ_c · L_gen(c)``.

Two ways to form the steps' batches (``retrain.batching``):

* ``joint`` (the paper's datasets): one shuffled loader of ``retrain.batch_size`` over the real training
  samples and the kept generated ones together (Algorithm 1: D_train ← D_train ∪ D'_i ∪ D'_i'), as the
  authors' ``train.py`` does (``run_retraining``: ``ConcatDataset`` of the generated and real sets in one
  ``DataLoader(shuffle=True)``). Each batch's loss is theirs (``retrain_cnn``): the mean cross-entropy of
  the real samples in the batch plus, per class c, γ_c times the mean cross-entropy of the generated
  samples labelled c in the batch (``nn.CrossEntropyLoss()``, mean reduction, on each subset).
* ``paired`` (the demo's): a batch B of real training samples and, for each class c, a batch B'_c of
  ``retrain.generated_batch_size`` kept generated samples labelled c (Algorithm 1, lines 13-18), so a
  generated image is seen several times per epoch.

A subset that is empty in a batch (no generated sample of class c, or no real sample) adds exactly 0
(the public code's mean over nothing is NaN). The head is re-initialised, the whole network trains with Adam, and
the epoch with the best validation worst-group accuracy is kept (the authors: up to 200 epochs; an
optional ``patience`` stops after that many epochs without a better one).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict
from typing import Iterator

import pandas as pd
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .datasets.loading import ImageDataset, class_balanced_sampler, loader_workers, per_sample_augmentation
from .models.classifier import eval_transform, reset_head, train_transform
from .precision import classifier_precision
from .resume import TrainingCheckpoint, restore_training_state, training_state
from .seeding import derive_seed
from .settings import DatasetSettings
from .training import epoch_batches, evaluate_groups, require_finite, seeded_loader, train_sizes_of

log = logging.getLogger("ddb")


class GeneratedBatches:
    """Batches of ``dataset`` forever, reshuffled at each pass (cycle) with a seed of its own: the batches
    ``seeded_loader(dataset, batch_size, derive_seed(seed, cycle))`` gives, pass after pass. Its position
    (``served``, the batches handed out so far) is all a checkpoint needs to go on with the same batches.

    :meth:`epoch` hands out one epoch's batches through a DataLoader of their own, whose worker seeds
    (with ``num_workers`` > 0: the augmentation drawn in the workers) come from ``(seed, epoch)``.
    """

    def __init__(self, dataset, batch_size: int, seed: int, num_workers: int = 0):
        self.dataset, self.seed, self.num_workers = dataset, seed, num_workers
        self.batch_size = min(batch_size, len(dataset))
        self.per_cycle = math.ceil(len(dataset) / self.batch_size)
        self.served = 0
        self._orders: dict[int, list[int]] = {}

    def order(self, cycle: int) -> list[int]:
        """The sample order of pass ``cycle``: what a shuffling DataLoader seeded so draws, first the
        base seed of its workers, then one permutation."""
        if cycle not in self._orders:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, cycle))
            torch.empty((), dtype=torch.int64).random_(generator=generator)
            self._orders = {cycle: torch.randperm(len(self.dataset), generator=generator).tolist()}
        return self._orders[cycle]

    def epoch(self, steps: int, epoch: int) -> Iterator:
        """The next ``steps`` batches."""
        batches = []
        for position in range(self.served, self.served + steps):
            cycle, index = divmod(position, self.per_cycle)
            batches.append(self.order(cycle)[index * self.batch_size:(index + 1) * self.batch_size])
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                            generator=torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch)))
        for batch in loader:
            self.served += 1
            yield batch


def subset_mean_ce(logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the ``rows`` (a mask) of the batch; exactly 0 (not NaN) where none is set."""
    if not bool(rows.any()):
        return logits.new_zeros(())
    return F.cross_entropy(logits[rows], labels[rows])


def joint_batch_loss(logits: torch.Tensor, labels: torch.Tensor, generated: torch.Tensor,
                     gammas: list[float]) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
    """The authors' loss of one joint batch: mean CE over its real samples + Σ_c γ_c · mean CE over its
    generated samples labelled c (``generated``: a mask of the batch's generated rows).

    Returns the loss, the real term and the per-class generated terms (before γ)."""
    loss_ce = subset_mean_ce(logits, labels, ~generated)
    terms = {c: subset_mean_ce(logits, labels, generated & (labels == c)) for c in range(len(gammas))}
    loss = loss_ce
    for c, term in terms.items():
        loss = loss + gammas[c] * term
    return loss, loss_ce, terms


def paired_batch_loss(model: nn.Module, precision, images: torch.Tensor, labels: torch.Tensor,
                      generated_epoch: dict[int, Iterator], gammas: list[float], device):
    """A real batch B and the next B'_c of every class with kept generations: mean CE over B +
    Σ_c γ_c · mean CE over B'_c (a class without generations adds 0)."""
    generated_batch = {c: next(batches)[:2] for c, batches in generated_epoch.items()}
    # B and every B'_c in one forward pass: batch norm in train mode fails on a B'_c of one
    # image whose last feature map is 1x1 (one kept generation, small images)
    with precision.autocast():
        logits = model(precision.inputs(torch.cat([images] + [g[0] for g in generated_batch.values()]), device))
    logits = logits.float().split([len(images)] + [len(g[0]) for g in generated_batch.values()])
    loss_ce = F.cross_entropy(logits[0], labels.to(device))
    loss = loss_ce
    terms = {c: torch.zeros((), device=device) for c in range(len(gammas))}
    for (c, (_, gen_labels)), gen_logits in zip(generated_batch.items(), logits[1:]):
        terms[c] = F.cross_entropy(gen_logits, gen_labels.to(device))
        loss = loss + gammas[c] * terms[c]
    return loss, loss_ce, terms


def retrain(erm_model: nn.Module, manifest: pd.DataFrame, generated: dict[int, list], settings: DatasetSettings, *,
            seed: int, device, resume: TrainingCheckpoint | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """``generated[c]`` lists image sources (shard, sample_id) of kept generations labelled c; ``settings``:
    the dataset's (its classes, class_balance, classifier and retrain sections).

    Returns the selected model (best val WGA) and one history row per epoch. With ``resume``, a checkpoint
    is saved after every epoch and a run goes on from the last one found (:mod:`ddb.resume`).
    """
    retraining, classes = settings.retrain, settings.classes
    size, recipe = settings.classifier.image_size, settings.classifier.transform
    precision = classifier_precision(asdict(settings.classifier), device)
    model = precision.prepare(copy.deepcopy(erm_model).to(device))
    if retraining.reinit_head:
        reset_head(model, derive_seed(seed, "retrain", "head"), retraining.head_init)
    train = manifest[manifest["split"] == "train"]
    val = manifest[manifest["split"] == "val"]
    transform = train_transform(size, retraining.augment, recipe)
    joint = retraining.batching == "joint"
    train_sources, train_labels = train["path"].tolist(), train["y"].tolist()
    generated_sources, generated_labels = [], []
    for c in range(len(classes)):
        sources = generated.get(c, [])
        if not sources:
            log.warning("no generated sample labelled %s survived pruning: its term L_gen adds 0 and "
                        "retraining continues with the real data", classes[c])
        generated_sources += sources
        generated_labels += [c] * len(sources)
    if joint:
        # one set: an item's index past the real ones marks it generated
        train_sources, train_labels = train_sources + generated_sources, train_labels + generated_labels
    sampler = (class_balanced_sampler(train_labels, derive_seed(seed, "retrain", "sampler"))
               if settings.class_balance == "reweight" else None)
    workers = loader_workers(retraining.num_workers, torch.get_num_threads())
    augment_seed = per_sample_augmentation(retraining.num_workers, derive_seed(seed, "retrain", "augment"))
    real_loader = seeded_loader(ImageDataset(train_sources, train_labels, transform, augment_seed),
                                retraining.batch_size, derive_seed(seed, "retrain", "order"), sampler, workers)
    generated_batches = {}
    for c in range(len(classes)):
        sources = generated.get(c, [])
        if joint or not sources:
            continue
        augment_seed = per_sample_augmentation(retraining.num_workers, derive_seed(seed, "retrain", "augment", c))
        generated_batches[c] = GeneratedBatches(ImageDataset(sources, [c] * len(sources), transform, augment_seed),
                                                retraining.generated_batch_size,
                                                derive_seed(seed, "retrain", "generated", c), workers)
    optimizer = torch.optim.Adam(model.parameters(), lr=retraining.lr, weight_decay=retraining.weight_decay)
    scaler = precision.grad_scaler()
    gammas = retraining.gammas
    train_sizes = train_sizes_of(manifest)
    history, best_state, best_wga, best_epoch, start, stopped = [], None, -1.0, 0, 0, False
    state = resume.load() if resume is not None else None
    if state is not None:
        restore_training_state(state, model, optimizer, scaler, real_loader, sampler)
        for c, served in state["generated_served"].items():
            generated_batches[c].served = served
        history, start, stopped = list(state["history"]), state["epoch"], state["stopped"]
        best_wga, best_epoch = state["best_wga"], state["best_epoch"]
        # the best epoch's weights: saved apart only when they are not the last epoch's
        best_state = state["best_state"] if state["best_state"] is not None else copy.deepcopy(model.state_dict())
        resume.announce(f"epoch {start}", f"{retraining.epochs} ("
                        + ("stopped there by patience" if stopped else f"epoch {start + 1} next") + ")")
    for epoch in range(start + 1, retraining.epochs + 1):
        if stopped:
            break
        model.train()
        sums = {"loss": 0.0, "loss_ce": 0.0, **{f"loss_gen_{c}": 0.0 for c in range(len(classes))}}
        steps = 0
        real_loader.dataset.draw = epoch
        for batches in generated_batches.values():
            batches.dataset.draw = epoch
        generated_epoch = {c: batches.epoch(len(real_loader), epoch) for c, batches in generated_batches.items()}
        for images, labels, index in tqdm(epoch_batches(real_loader), total=len(real_loader),
                                          desc=f"retrain epoch {epoch}", mininterval=10, leave=False):
            if joint:
                with precision.autocast():
                    logits = model(precision.inputs(images, device))
                loss, loss_ce, terms = joint_batch_loss(logits.float(), labels.to(device),
                                                        (index >= len(train)).to(device), gammas)
            else:
                loss, loss_ce, terms = paired_batch_loss(model, precision, images, labels, generated_epoch,
                                                         gammas, device)
            require_finite(loss, what="retrain", when=f"epoch {epoch}", lr=retraining.lr, lr_key="retrain.lr")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            steps += 1
            sums["loss"] += loss.item()
            sums["loss_ce"] += loss_ce.item()
            for c, term in terms.items():
                sums[f"loss_gen_{c}"] += term.item()
        metrics, _ = evaluate_groups(model, val, eval_transform(size, recipe), retraining.batch_size, device,
                                     train_sizes, precision=precision)
        row = {"epoch": epoch, **{k: v / max(steps, 1) for k, v in sums.items()},
               "val_worst_group_accuracy": metrics["worst_group_accuracy"],
               "val_mean_accuracy": metrics["mean_accuracy"]}
        history.append(row)
        log.info("retrain epoch %d: loss %.4f (CE %.4f), val WGA %.3f, val mean %.3f", epoch, row["loss"],
                 row["loss_ce"], row["val_worst_group_accuracy"], row["val_mean_accuracy"])
        if metrics["worst_group_accuracy"] > best_wga:
            best_wga, best_state, best_epoch = metrics["worst_group_accuracy"], copy.deepcopy(model.state_dict()), epoch
        elif retraining.patience and epoch - best_epoch >= retraining.patience:
            log.info("retrain: no better validation WGA for %d epochs (patience): stopping after epoch %d of %d, "
                     "epoch %d kept", retraining.patience, epoch, retraining.epochs, best_epoch)
            stopped = True
        if resume is not None:
            resume.save({"epoch": epoch, **training_state(model, optimizer, scaler, real_loader, sampler),
                         "generated_served": {c: b.served for c, b in generated_batches.items()},
                         "history": history, "stopped": stopped, "best_wga": best_wga,
                         "best_epoch": best_epoch,
                         "best_state": None if best_epoch == epoch else {k: v.cpu() for k, v in best_state.items()}})
    history = pd.DataFrame(history)
    selected = int(history.loc[history["val_worst_group_accuracy"].idxmax(), "epoch"])
    history["selected"] = history["epoch"] == selected
    model.load_state_dict(best_state)
    return model.eval(), history
