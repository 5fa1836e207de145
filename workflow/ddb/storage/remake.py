"""The rule that remakes an artifact, for the fix of an error about it."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from ..paths import ARTIFACTS, run_folder_of, run_of_folder, split_run, wildcards_of
from ..steps import writers


@lru_cache(maxsize=1)
def _by_specificity() -> list[str]:
    """The artifacts, the most specific template first: tune/{cand}/prune/... before prune/...,
    tune/candidates.parquet before tune/{cand}."""
    def literal(template: str) -> int:
        return len(template) - sum(len(part) + 2 for part in re.findall(r"\{(\w+)\}", template))

    return sorted(ARTIFACTS, key=lambda name: (-len(Path(ARTIFACTS[name]).parts), -literal(ARTIFACTS[name])))


def rule_of(path: str | os.PathLike) -> str | None:
    """The rule that writes the artifact at ``path`` (None if the path is not one of the workflow's), from
    ddb.steps and ddb.paths: the last part of the path names the artifact, its run folder the kind of run."""
    path = Path(path)
    for name in _by_specificity():
        if wildcards_of(name, path) is None:
            continue
        candidates = writers(name)
        if not candidates:
            return None
        seed_run = split_run(run_of_folder(run_folder_of(name, path)))[1] is not None
        fitting = [rule for rule in candidates if rule.runs == "every" or (rule.runs == "seed") == seed_run]
        return (fitting or candidates)[0].name
    return None


def remake_hint(path: str | os.PathLike) -> str:
    """The fix for a damaged artifact: delete it, and Snakemake's next run remakes it."""
    rule = rule_of(path)
    return ("delete it and rerun snakemake" + (f": rule {rule} remakes it" if rule else ", which remakes it")
            + " (and what depends on it)")
