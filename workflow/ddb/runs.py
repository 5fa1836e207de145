"""The runs of a config: one dataset at one seed each, and the values the rules' wildcards take.

A run's name is its folder below the results folder and the rules' ``ds`` wildcard (:func:`ddb.paths.run_name`):
the dataset itself for the config's ``seed``, ``<dataset>/seed-<s>`` for each other seed of ``seeds``, all with
the dataset's own entry. So every rule runs per seed unchanged. :class:`Runs` is built from the validated
config (ddb.config.validate_config, which gives each entry its ``classes``); ``rules/common.smk`` reads its
mappings and patterns while Snakemake parses the workflow.
"""

from __future__ import annotations

import re

from .config import class_pairs
from .paths import run_name

# A regular expression that matches nothing: the `ds` constraint of a rule no run needs
NO_RUN = "(?!)"


def alternatives(names) -> str:
    """A regular expression matching exactly one of ``names`` (an empty one for none)."""
    return "|".join(re.escape(name) for name in names)


class Runs:
    """The runs of ``config`` (validated): each run's seed, dataset and entry, in the order of the config's
    datasets, then of its seeds."""

    def __init__(self, config: dict):
        self.base_seed = config["seed"]
        self.seeds = config["seeds"] or [config["seed"]]
        datasets = config["datasets"]
        self.datasets = list(datasets)
        runs = [(run_name(ds, seed, self.base_seed), ds, seed) for ds in datasets for seed in self.seeds]
        self.seed_of = {run: seed for run, _, seed in runs}
        self.dataset_of = {run: ds for run, ds, _ in runs}
        self.entries = {run: datasets[ds] for run, ds, _ in runs}
        self.classes = sorted({c for entry in self.entries.values() for c in entry["classes"]})

    def runs_of(self, ds: str) -> list[str]:
        """The runs of dataset ``ds``, one per seed, in the order of `seeds`."""
        return [run for run, dataset in self.dataset_of.items() if dataset == ds]

    @property
    def base_pattern(self) -> str:
        """The `ds` of the datasets' own runs (prepare_dataset draws their data; a run of another seed copies
        its manifest)."""
        return alternatives(self.datasets)

    @property
    def seed_pattern(self) -> str:
        """The `ds` of the runs of another seed than the config's; one that matches nothing without them."""
        return alternatives(run for run in self.dataset_of if run not in self.datasets) or NO_RUN

    def wildcard_constraints(self) -> dict[str, str]:
        """Every rule's wildcard constraints: the runs (longest first, so `demo/seed-1` is never read as
        `demo`), the classes of every dataset, shard numbers."""
        classes = "|".join(self.classes)
        return {"ds": alternatives(sorted(self.entries, key=len, reverse=True)),
                "cls": classes, "src": classes, "dst": classes, "n": r"\d+"}


def classes_of(entry: dict) -> list[str]:
    """A dataset entry's class names, in class-index order."""
    return entry["classes"]


def pairs_of(entry: dict) -> list[tuple[str, str]]:
    """Every (source, target) pair of distinct classes by name: the generation directions."""
    names = classes_of(entry)
    return [(names[i], names[j]) for i, j in class_pairs(names)]


def source_classes(entry: dict) -> list[str]:
    """The classes that are a source of some pair, in class-index order."""
    names = classes_of(entry)
    return sorted({src for src, _ in pairs_of(entry)}, key=names.index)


def shards_of(entry: dict, src: str) -> range:
    """Shard numbers of source class ``src``: counted from the config (ddb.sharding), so the whole DAG is
    planned before any job runs; its inpaint and ig_score shards of every target class follow its mask shards."""
    from .sharding import shard_count

    return range(shard_count(entry, src))
