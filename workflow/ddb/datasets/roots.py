"""Is each dataset's data where its entry says, before anything is planned?

A wrong ``root`` would otherwise surface only when ``prepare_dataset`` runs: after the whole DAG was
planned, and on a cluster inside the first SLURM job. ``rules/common.smk`` therefore checks, while it reads
the config, the datasets that the requested targets need (:func:`check_requested_roots`): each adapter's
``check_root`` looks for its layout's key files (a few stat calls, nothing read) and names what is missing,
where to download it and the docs section (docs/datasets.md) that says how to unpack it. It also refuses to
mix, under one results folder, results made from two different roots of one dataset
(:func:`check_recorded_roots`).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import DDBError
from ..paths import artifact_path

DOCS = "docs/datasets.md"
def missing_data(path: Path, problem: str, *, dataset: str, source: str, unpack: str, section: str) -> DDBError:
    """The error of a missing dataset file or folder: where to get the data and how to unpack it."""
    return DDBError(path, problem, f"download {dataset} ({source}) and {unpack}, or set the dataset's `root` to "
                                   f"where it lies; see {DOCS}, \"{section}\"")


def missing_root(root: Path, **hints) -> DDBError:
    """:func:`missing_data` for a root that is no folder."""
    return missing_data(root, f"the dataset root {'is not a folder' if root.exists() else 'does not exist'}", **hints)


def check_root(name: str, cfg: dict, workdir: str | Path = ".") -> None:
    """Raise a DDBError naming the missing file or folder if dataset ``name``'s root lacks its layout's key
    files (the format's ``check_root``); nothing to check for the drawn ``synthetic`` format."""
    from . import FORMATS

    if cfg["format"] == "synthetic":
        return
    module = importlib.import_module(FORMATS[cfg["format"]])
    try:
        module.check_root(cfg, Path(workdir))
    except DDBError as error:
        key = f"datasets.{name}.root" + ("" if Path(error.where) == Path(workdir) / cfg["root"] else f": {cfg['root']}")
        raise DDBError(error.where, f"{error.problem} ({key})", error.fix) from None


def same_root(recorded: str, configured: str, workdir: str | os.PathLike = ".") -> bool:
    """Whether the root a manifest was drawn from (``data/root.txt``) and the config's ``root`` name one folder:
    spelled alike, or resolving to the same path (relative ones against ``workdir``, links followed), so an
    absolute and a relative spelling of one folder are the same root."""
    if recorded == configured:
        return True
    return os.path.realpath(Path(workdir) / recorded) == os.path.realpath(Path(workdir) / configured)


def dataset_of_target(target: str, results: str, datasets: Iterable[str]) -> str | None:
    """The dataset a file target belongs to: every artifact of a run lies in ``<results>/<dataset>/``
    (``<results>/<dataset>/seed-<s>/`` for another seed, ddb.paths.run_name); None for anything else (a rule
    name, a log, a file outside the results folder)."""
    try:
        relative = Path(os.path.abspath(target)).relative_to(os.path.abspath(results))
    except ValueError:
        return None
    first = relative.parts[0] if relative.parts else None
    return first if first in set(datasets) else None


def requested_datasets(targets: Iterable[str], *, results: str, datasets: Iterable[str],
                       default: Iterable[str]) -> list[str]:
    """The datasets the requested ``targets`` need: each file target's own dataset; for no target (the
    default `all` rule), a rule name or a file of no dataset, the ``default`` ones (the config's `targets`,
    which the aggregating rules build)."""
    datasets, default = list(datasets), list(default)
    targets = list(targets)
    if not targets:
        return default
    found = []
    for target in targets:
        dataset = dataset_of_target(target, results, datasets)
        found += [dataset] if dataset else default
    return list(dict.fromkeys(found))


def check_recorded_roots(results: str, datasets: Mapping[str, dict], allow_change: bool = False) -> None:
    """Raise a DDBError where a run of ``datasets`` (run -> entry) has results made from another root than its
    entry's (the root its manifest was drawn from, ``data/root.txt``; one folder spelled two ways is one root:
    :func:`same_root`), unless ``allow_change`` (the config's `allow_root_change`)."""
    for name, entry in datasets.items():
        recorded = artifact_path(results, name, "dataset_root")
        if recorded.exists() and not allow_change:
            previous = recorded.read_text().strip()
            if not same_root(previous, entry["root"]):
                raise DDBError(recorded, f"results of dataset {name!r} were made from root {previous!r}, but the "
                                         f"config now says {entry['root']!r}",
                               "use another results folder (config key `results`), or rerun with --config "
                               "allow_root_change=True (capital T: Snakemake reads `true` as text) to rebuild them "
                               "from the new root")


def check_requested_roots(targets: Iterable[str], *, results: str, datasets: Mapping[str, dict],
                          default: Iterable[str]) -> None:
    """Raise a DDBError (:func:`check_root`) if a dataset that the requested ``targets`` need
    (:func:`requested_datasets`; ``datasets``: the config's entries by name) lacks its data: a missing root,
    or one without its layout's key files."""
    for name in requested_datasets(targets, results=results, datasets=datasets, default=default):
        check_root(name, datasets[name])
