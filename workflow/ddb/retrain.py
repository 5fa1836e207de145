"""Step ``retrain``: fine-tune f on real + kept generated data, ``L = L_CE + Σ_c γ_c · L_gen(c)``.

Per step: a batch B of real training samples and, for each class c, a batch B'_c of kept generated
samples labelled c (Algorithm 1, lines 13-18). A class with no kept generation contributes exactly 0
(the public code produced NaN). The head is re-initialised, the whole network trains with Adam, and
the epoch with the best validation worst-group accuracy is kept (the authors: up to 200 epochs; an
optional ``patience`` stops after that many epochs without a better one).
"""

from __future__ import annotations

import copy
import logging
from typing import Iterator

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .datasets.loading import ImageDataset, class_balanced_sampler
from .models.classifier import eval_transform, reset_head, train_transform
from .seeding import derive_seed
from .training import evaluate_groups, require_finite, seeded_loader, train_sizes_of

log = logging.getLogger("ddb")


def _endless(dataset: ImageDataset, batch_size: int, seed: int, num_workers: int) -> Iterator:
    """Batches of ``dataset`` forever, reshuffled (with a seed of its own) at each pass."""
    cycle = 0
    while True:
        yield from seeded_loader(dataset, min(batch_size, len(dataset)), derive_seed(seed, cycle),
                                 num_workers=num_workers)
        cycle += 1


def retrain(erm_model: nn.Module, manifest: pd.DataFrame, generated: dict[int, list], dataset_cfg: dict, *,
            seed: int, device) -> tuple[nn.Module, pd.DataFrame]:
    """``generated[c]`` lists image sources (shard, sample_id) of kept generations labelled c.

    Returns the selected model (best val WGA) and one history row per epoch.
    """
    cfg, classes = dataset_cfg["retrain"], dataset_cfg["classes"]
    size, recipe = dataset_cfg["classifier"]["image_size"], dataset_cfg["classifier"]["transform"]
    model = copy.deepcopy(erm_model).to(device)
    if cfg["reinit_head"]:
        reset_head(model, derive_seed(seed, "retrain", "head"))
    train = manifest[manifest["split"] == "train"]
    val = manifest[manifest["split"] == "val"]
    transform = train_transform(size, cfg["augment"], recipe)
    sampler = (class_balanced_sampler(train["y"].tolist(), derive_seed(seed, "retrain", "sampler"))
               if dataset_cfg["class_balance"] == "reweight" else None)
    real_loader = seeded_loader(ImageDataset.from_manifest(train, transform), cfg["batch_size"],
                                derive_seed(seed, "retrain", "order"), sampler, cfg["num_workers"])
    generated_batches = {}
    for c in range(len(classes)):
        sources = generated.get(c, [])
        if not sources:
            log.warning("no generated sample labelled %s survived pruning: its term L_gen adds 0 and "
                        "retraining continues with the real data", classes[c])
            continue
        generated_batches[c] = _endless(ImageDataset(sources, [c] * len(sources), transform),
                                        cfg["generated_batch_size"], derive_seed(seed, "retrain", "generated", c),
                                        cfg["num_workers"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    criterion = nn.CrossEntropyLoss()
    gammas = cfg["gammas"]
    train_sizes = train_sizes_of(manifest)
    history, best_state, best_wga, best_epoch = [], None, -1.0, 0
    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        sums = {"loss": 0.0, "loss_ce": 0.0, **{f"loss_gen_{c}": 0.0 for c in range(len(classes))}}
        steps = 0
        for images, labels, _ in tqdm(real_loader, desc=f"retrain epoch {epoch}", mininterval=10, leave=False):
            generated_batch = {c: next(batches)[:2] for c, batches in generated_batches.items()}
            # B and every B'_c in one forward pass: batch norm in train mode fails on a B'_c of one
            # image whose last feature map is 1x1 (one kept generation, small images)
            logits = model(torch.cat([images] + [g[0] for g in generated_batch.values()]).to(device))
            logits = logits.split([len(images)] + [len(g[0]) for g in generated_batch.values()])
            loss_ce = criterion(logits[0], labels.to(device))
            loss = loss_ce
            terms = {c: torch.zeros((), device=device) for c in range(len(classes))}
            for (c, (_, gen_labels)), gen_logits in zip(generated_batch.items(), logits[1:]):
                terms[c] = criterion(gen_logits, gen_labels.to(device))
                loss = loss + gammas[c] * terms[c]
            require_finite(loss, what="retrain", when=f"epoch {epoch}", lr=cfg["lr"], lr_key="retrain.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            sums["loss"] += loss.item()
            sums["loss_ce"] += loss_ce.item()
            for c, term in terms.items():
                sums[f"loss_gen_{c}"] += term.item()
        metrics, _ = evaluate_groups(model, val, eval_transform(size, recipe), cfg["batch_size"], device, train_sizes)
        row = {"epoch": epoch, **{k: v / max(steps, 1) for k, v in sums.items()},
               "val_worst_group_accuracy": metrics["worst_group_accuracy"],
               "val_mean_accuracy": metrics["mean_accuracy"]}
        history.append(row)
        log.info("retrain epoch %d: loss %.4f (CE %.4f), val WGA %.3f, val mean %.3f", epoch, row["loss"],
                 row["loss_ce"], row["val_worst_group_accuracy"], row["val_mean_accuracy"])
        if metrics["worst_group_accuracy"] > best_wga:
            best_wga, best_state, best_epoch = metrics["worst_group_accuracy"], copy.deepcopy(model.state_dict()), epoch
        elif cfg["patience"] and epoch - best_epoch >= cfg["patience"]:
            log.info("retrain: no better validation WGA for %d epochs (patience): stopping after epoch %d of %d, "
                     "epoch %d kept", cfg["patience"], epoch, cfg["epochs"], best_epoch)
            break
    history = pd.DataFrame(history)
    selected = int(history.loc[history["val_worst_group_accuracy"].idxmax(), "epoch"])
    history["selected"] = history["epoch"] == selected
    model.load_state_dict(best_state)
    return model.eval(), history
