"""The rule that remakes an artifact, for the fix of an error about it."""

from __future__ import annotations

import os
import re
from pathlib import Path


# the rule that writes an artifact, from where it lies under results/{ds}/ (see rules/*.smk)
_SHARD_RULES = {"masks": "mask", "inpaint": "inpaint", "ig": "ig_score"}  # {folder}/{name}/shard-{n}.*
_FOLDER_RULES = {"data": "prepare_dataset", "erm": "train_erm", "low_loss": "select_low_loss", "prune": "prune",
                 "retrain": "retrain", "dfr": "dfr", "report": "visualize"}  # {folder}/{file}
_FILE_RULES = {"psi.parquet": "mean_softmax", "eval.parquet": "evaluate", "eval.json": "evaluate"}


def rule_of(path: str | os.PathLike) -> str | None:
    """The rule that writes the artifact at ``path`` (None if the path is not one of the workflow's)."""
    path = Path(path)
    if re.fullmatch(r"shard-\d+\.(tar|parquet)", path.name) and path.parent.parent.name in _SHARD_RULES:
        return _SHARD_RULES[path.parent.parent.name]
    if path.parent.parent.name == "textual_inversion":
        return "textual_inversion"
    return _FOLDER_RULES.get(path.parent.name) or _FILE_RULES.get(path.name)


def remake_hint(path: str | os.PathLike) -> str:
    """The fix for a damaged artifact: delete it, and Snakemake's next run remakes it."""
    rule = rule_of(path)
    return ("delete it and rerun snakemake" + (f": rule {rule} remakes it" if rule else ", which remakes it")
            + " (and what depends on it)")

