"""How generation is split into shards, counted from the config before any job runs.

Shard ``n`` of source class ``src`` is one ``mask`` job (a contiguous slice of the class's sources), one
``inpaint`` job per target class (``generation.per_source`` images of each of those sources) and one
``ig_score`` job per target class. The rules plan the jobs with :func:`shard_count`; the mask and inpaint
scripts cut their slice with :func:`ddb.masking.shard_rows` and check it with :func:`check_shard_size`.

A source's draws stay in one shard (its inpaint shard needs its mask shard), so a shard holds at most
``images_per_shard // per_source`` sources and the count is ``ceil(sources / that)``: with per_source 1,
or any per_source that divides images_per_shard, this is ``ceil(sources * per_source / images_per_shard)``.

The most sources a class can have comes from the config: with ``generation.sources: low_loss`` (D_i,
the default) it is K of the class (``low_loss.k``; a class smaller than K has fewer); with ``all`` or
``majority`` of the drawn demo it is the class's training images (``synthetic.n_train`` in its group
proportions), of a sample sheet (``format: table``) the training images the sheet lists;
``max_sources_per_class`` caps both, and bounds a real dataset's ``all`` or ``majority``.
Without that cap, a real dataset's count depends on the dataset itself, which only prepare_dataset reads:
then the config names the shard count (``generation.shards``), and a job whose shard would exceed
images_per_shard stops before doing any work, saying how many shards are needed. Fewer sources than
planned only make the shards smaller.
"""

from __future__ import annotations

import math

from .errors import DDBError


def planned_sources(dataset_cfg: dict, source_class: str) -> int | None:
    """Most sources class ``source_class`` can have for generation, from the config alone; None when only
    the dataset knows (a real dataset's ``sources: all`` or ``majority`` without ``max_sources_per_class``)."""
    generation = dataset_cfg["generation"]
    cap = generation["max_sources_per_class"]
    y = dataset_cfg["classes"].index(source_class)
    if generation["sources"] == "low_loss":
        k = dataset_cfg["low_loss"]["k"]
        sources = k[y] if isinstance(k, list) else k  # one K per class, in class-index order
    elif dataset_cfg["format"] == "synthetic":  # drawn from the config: its class sizes are known
        from .datasets.synthetic import train_group_sizes

        minority = (dataset_cfg["minority_groups"] or {}).get(source_class)
        sources = sum(count for (group_y, spurious), count in train_group_sizes(dataset_cfg["synthetic"]).items()
                      if group_y == y and not (generation["sources"] == "majority" and spurious == minority))
    elif dataset_cfg["format"] == "table":  # the sample sheet, read when the config loads, counts them
        from .datasets.table import training_sources

        minority = (dataset_cfg["minority_groups"] or {}).get(source_class)
        sources = training_sources(dataset_cfg, source_class,
                                   leave_out=minority if generation["sources"] == "majority" else None)
    else:
        return cap
    return sources if cap is None else min(sources, cap)


def sources_per_shard(generation_cfg: dict) -> int:
    """Most sources one shard holds: all ``per_source`` images of a source go into the same shard."""
    return max(1, generation_cfg["images_per_shard"] // generation_cfg["per_source"])


def shard_count(dataset_cfg: dict, source_class: str) -> int:
    """Shards of ``source_class``: enough that none holds more than ``generation.images_per_shard``
    generated images, or ``generation.shards`` where the config cannot count the sources."""
    generation = dataset_cfg["generation"]
    sources = planned_sources(dataset_cfg, source_class)
    if sources is None:
        return generation["shards"]
    return max(1, math.ceil(sources / sources_per_shard(generation)))


def shard_counts(dataset_cfg: dict) -> dict[str, int]:
    """``shard_count`` of every class (each class is the source of its pairs)."""
    return {name: shard_count(dataset_cfg, name) for name in dataset_cfg["classes"]}


def check_generation_config(dataset_cfg: dict, where: str) -> None:
    """Refuse, before any job runs, a generation section that cannot be sharded as asked (``where``: the
    dataset entry's key path, e.g. ``config.yaml: datasets.celeba``)."""
    generation = dataset_cfg["generation"]
    per_source, per_shard = generation["per_source"], generation["images_per_shard"]
    if per_source > per_shard:
        raise DDBError(f"{where}.generation.images_per_shard",
                       f"is {per_shard}, fewer than the {per_source} images of one source (generation.per_source), "
                       "which always go into the same shard",
                       f"set images_per_shard to at least {per_source}")
    counted = planned_sources(dataset_cfg, dataset_cfg["classes"][0]) is not None
    if counted and generation["shards"] is not None:
        basis = ("K of each class (low_loss.k)" if generation["sources"] == "low_loss"
                 else "the drawn demo's training images (synthetic.n_train)"
                 if dataset_cfg["format"] == "synthetic" and generation["max_sources_per_class"] is None
                 else "the sample sheet's training images"
                 if dataset_cfg["format"] == "table" and generation["max_sources_per_class"] is None
                 else "generation.max_sources_per_class")
        raise DDBError(f"{where}.generation.shards",
                       f"is no longer used here: shards are counted from {basis}, "
                       f"ceil(sources / (images_per_shard // per_source)) per source class",
                       f"remove generation.shards; to change the size of a shard, set generation.images_per_shard "
                       f"(now {per_shard} images)")
    if not counted and generation["shards"] is None:
        raise DDBError(f"{where}.generation",
                       f"generation.sources is {generation['sources']!r} and max_sources_per_class is null, so the "
                       "number of sources, and of shards, is known only once prepare_dataset has read the dataset",
                       "set generation.max_sources_per_class (shards are then counted from it and "
                       "images_per_shard), or generation.shards: the shards per source class (a job whose shard "
                       "would hold more than images_per_shard images stops and names the count needed)")


def check_shard_size(sources_in_shard: int, total_sources: int, generation_cfg: dict, where: str) -> None:
    """Stop a job whose shard holds more than ``images_per_shard`` generated images, before it does any work.

    Only possible where the config gives ``generation.shards`` (``sources: all`` or ``majority`` without a
    cap): the message names the count this dataset needs."""
    per_source, per_shard = generation_cfg["per_source"], generation_cfg["images_per_shard"]
    if sources_in_shard * per_source <= per_shard:
        return
    needed = max(1, math.ceil(total_sources / sources_per_shard(generation_cfg)))
    raise DDBError(where, f"this shard holds {sources_in_shard} sources x {per_source} = "
                          f"{sources_in_shard * per_source} images, more than generation.images_per_shard "
                          f"({per_shard}): generation.shards ({generation_cfg['shards']}) is too small for the "
                          f"{total_sources} sources of this class",
                   f"set generation.shards to at least {needed} (or generation.max_sources_per_class, from which "
                   f"the shards are counted), and rerun")
