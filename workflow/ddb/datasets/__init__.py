"""``prepare_dataset``: turn a dataset entry of the config into ``data/manifest.parquet``.

Each ``format`` is one module with a ``build_manifest(cfg, *, seed, workdir) -> DataFrame`` function;
the registry below imports it lazily so a missing optional dependency of one format never breaks another.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from ..errors import DDBError
from .balancing import subsample_classes
from .manifest import check_minority_groups, group_split_table, validate_manifest

FORMATS = {
    "synthetic": "ddb.datasets.synthetic",
    "waterbirds": "ddb.datasets.waterbirds",
    "celeba": "ddb.datasets.celeba",
    "metashift": "ddb.datasets.metashift",
    "imagenet": "ddb.datasets.imagenet",
}


def build_manifest(name: str, cfg: dict, *, seed: int, workdir: str | Path = ".") -> pd.DataFrame:
    """Read (or, for ``synthetic``, draw) dataset ``name`` and return its validated manifest."""
    fmt = cfg["format"]
    if fmt not in FORMATS:
        raise DDBError(f"config: datasets.{name}.format", f"unknown format {fmt!r}",
                       f"use one of {sorted(FORMATS)}")
    module = importlib.import_module(FORMATS[fmt])
    frame = module.build_manifest(cfg, seed=seed, workdir=Path(workdir))
    manifest = validate_manifest(frame, f"dataset {name!r} ({fmt} at {cfg.get('root')})", cfg.get("classes"))
    if cfg.get("minority_groups"):
        check_minority_groups(manifest, cfg["classes"], cfg["minority_groups"], f"config: datasets.{name}")
    if cfg.get("class_balance") == "subsample":
        manifest = subsample_classes(manifest, seed=seed)
    return manifest


def format_group_table(manifest: pd.DataFrame, minority_groups: dict[str, str | None] | None = None) -> str:
    """The group x split counts as prepare_dataset prints them, each class's minority group marked."""
    table = group_split_table(manifest, minority_groups)
    counts = table.drop(columns="minority", errors="ignore")
    counts.loc["total"] = counts.sum()
    if "minority" in table:
        counts["minority"] = table["minority"].map({True: "<- minority", False: ""}).reindex(counts.index, fill_value="")
    return counts.to_string()
