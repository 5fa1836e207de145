"""``prepare_dataset``: turn a dataset entry of the config into ``data/manifest.parquet``.

Each ``format`` is one module with a ``build_manifest(cfg, *, seed, workdir) -> DataFrame`` function;
the registry below imports it lazily so a missing optional dependency of one format never breaks another.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pandas as pd

from ..errors import DDBError
from .balancing import subsample_classes
from .manifest import (check_group_coverage, check_minority_groups, check_splits, fewer_than_k, group_split_table,
                       validate_manifest)

FORMATS = {
    "synthetic": "ddb.datasets.synthetic",
    "waterbirds": "ddb.datasets.waterbirds",
    "celeba": "ddb.datasets.celeba",
    "metashift": "ddb.datasets.metashift",
    "imagenet": "ddb.datasets.imagenet",
    "table": "ddb.datasets.table",
}
# The splits that must hold every training group (else it silently drops out of worst-group accuracy):
# val and test where the published splits share their groups; ImageNet's val is drawn from its training
# source (its test is another source, ImageNet-A); MetaShift's test contexts differ from training by design.
TRAINING_GROUPS_IN = {
    "synthetic": ("val", "test"),
    "waterbirds": ("val", "test"),
    "celeba": ("val", "test"),
    "metashift": (),
    "imagenet": ("val",),
    "table": ("val", "test"),
}
# How to give a split, a class or a group its images, by format.
SPLIT_FIXES = {
    "synthetic": "raise synthetic.n_train, n_val_per_group or n_test_per_group (or group_proportions) so every "
                 "group of every split gets images",
    "waterbirds": "check the `split`, `y` and `place` columns of metadata.csv (re-extract it from the dataset's "
                  "archive if you did not edit it)",
    "celeba": "check the partition (split) column and the two attributes of the CelebA files (re-extract them from "
              "the archive if you did not edit them), or choose other celeba attributes",
    "metashift": "put images of every class in train/ and test/ (<class>/<class>(<context>)/ folders; val is drawn "
                 "from test by metashift.val_fraction)",
    "imagenet": "put images in every class folder of both sources (val is drawn from the training source by "
                "imagenet.val_fraction; a group needs 2 images to be on both sides)",
    "table": "give every class and group images of each split in the sample sheet (its `split` column), or drop "
             "the column to have a stratified split drawn (table_split)",
}


def build_manifest(name: str, cfg: dict, *, seed: int, workdir: str | Path = ".") -> pd.DataFrame:
    """Read (or, for ``synthetic``, draw) dataset ``name`` and return its validated manifest."""
    fmt = cfg["format"]
    if fmt not in FORMATS:
        raise DDBError(f"config: datasets.{name}.format", f"unknown format {fmt!r}",
                       f"use one of {sorted(FORMATS)}")
    module = importlib.import_module(FORMATS[fmt])
    frame = module.build_manifest(cfg, seed=seed, workdir=Path(workdir))
    where = f"dataset {name!r} ({fmt} at {cfg.get('root')})"
    manifest = validate_manifest(frame, where, cfg.get("classes"))
    classes = cfg.get("classes") or list(manifest.drop_duplicates("y").sort_values("y")["class_name"])
    # Degenerate data stops here, before any model trains: an empty split or class, a lost group.
    check_splits(manifest, classes, where, SPLIT_FIXES[fmt])
    if cfg.get("minority_groups"):
        check_minority_groups(manifest, cfg["classes"], cfg["minority_groups"], f"config: datasets.{name}")
    if cfg.get("class_balance") == "subsample":
        manifest = subsample_classes(manifest, seed=seed)
    check_group_coverage(manifest, TRAINING_GROUPS_IN[fmt], where, SPLIT_FIXES[fmt])
    return manifest


def small_class_warnings(name: str, manifest: pd.DataFrame, classes: list[str], k: list[int] | int) -> list[str]:
    """One line per class with fewer training images than its K (low_loss.k): select_low_loss then keeps
    them all, so Ψ and, with generation.sources: low_loss, the redrawn sources are not the K lowest-loss."""
    k = list(k) if isinstance(k, (list, tuple)) else [k] * len(classes)
    small = fewer_than_k(manifest, classes, k)
    counts = {class_name: count for class_name, count, _ in small}
    suggestion = [counts.get(class_name, limit) for class_name, limit in zip(classes, k)]
    return [f"dataset {name!r}: class {class_name!r} has {count} training images, fewer than its K = {limit} "
            f"(low_loss.k): select_low_loss will keep all {count}\n  fix: set datasets.{name}.low_loss.k to "
            f"{suggestion} (one value per class) to say so in the config, or give the class more images"
            for class_name, count, limit in small]


def source_paths(cfg: dict, workdir: str | Path = ".") -> list[str]:
    """The files and folders the manifest of dataset entry ``cfg`` is built from (index files, image and mask
    folders), spelled as the config spells its root; found by a few stat calls and folder listings, none
    read. Empty for the drawn demo, and where they cannot be found (prepare_dataset then says why):
    the inputs of prepare_dataset, so editing or replacing one reruns it."""
    if cfg["format"] == "synthetic":  # drawn by prepare_dataset itself
        return []
    module = importlib.import_module(FORMATS[cfg["format"]])
    try:
        paths = module.source_paths(cfg, Path(workdir))
    except DDBError:
        return []
    return [str(path) for path in dict.fromkeys(paths) if path.exists()]


def source_stamps(paths: list[str]) -> dict[str, list[int]]:
    """{path: [size, modification time in ns]} of each source, a param of prepare_dataset: an input reruns a
    job only when it is *newer* than the outputs, and a file re-extracted from an archive gets the archive's
    older time back."""
    stamps = {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        stamps[str(path)] = [stat.st_size, stat.st_mtime_ns]
    return stamps


def format_group_table(manifest: pd.DataFrame, minority_groups: dict[str, str | None] | None = None) -> str:
    """The group x split counts as prepare_dataset prints them, each class's minority group marked."""
    table = group_split_table(manifest, minority_groups)
    counts = table.drop(columns="minority", errors="ignore")
    counts.loc["total"] = counts.sum()
    if "minority" in table:
        counts["minority"] = table["minority"].map({True: "<- minority", False: ""}).reindex(counts.index, fill_value="")
    return counts.to_string()
