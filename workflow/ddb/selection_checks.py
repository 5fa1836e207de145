"""Choices made on validation that validation could not make: ties and small validation groups.

Three steps choose on the validation split: the epoch ERM and retraining keep (``erm.select_epoch``,
:mod:`ddb.retrain`), the tuned candidate (:mod:`ddb.tuning`) and DFR's C (:mod:`ddb.dfr`). Where every option
has the same validation worst-group accuracy, the tie-break alone chooses (the first epoch, the fewest kept
generations, the first C), and nothing in the figures says so. A validation split of one or two images per
group makes that the rule: every WGA is 0 or 1. The detectors below read the tables those steps write and
return one warning per choice that was no choice, and per validation split with a group smaller than
``validation.min_group_size``; evaluate prints them and writes them into eval.json (``warnings``, only
where there is one).

A warning is ``{"code", "step", "message"}``: ``code`` one of :data:`CODES`, ``step`` the rule whose choice
it is about, ``message`` one sentence saying what tied (or what is small) and what to do.
"""

from __future__ import annotations

import pandas as pd

from .errors import DDBError

WGA = "val_worst_group_accuracy"
MEAN = "val_mean_accuracy"
CODES = ("small_validation_group", "tied_epochs", "tied_candidates", "tied_dfr_c")
# Accuracies are ratios of small counts computed in other orders: equal ones are compared rounded, as
# ddb.tuning.select ranks them.
DIGITS = 12
MORE_DATA = "give the validation split more images of every group"


def warning(code: str, step: str, message: str) -> dict:
    return {"code": code, "step": step, "message": message}


def _all_tied(frame: pd.DataFrame, columns: list[str]) -> bool:
    """Whether ``frame`` has two rows or more and every one has the same values in ``columns``."""
    return len(frame) > 1 and all(frame[column].round(DIGITS).nunique() == 1 for column in columns)


def validation_group_sizes(manifest: pd.DataFrame) -> dict[str, int]:
    """Images per group in the validation split; a group of the training split that validation lacks
    counts 0 (validation WGA then never sees it)."""
    val = manifest[manifest["split"] == "val"]
    sizes = {str(g): int(n) for g, n in val.groupby("group").size().items()}
    for group in manifest.loc[manifest["split"] == "train", "group"].astype(str).unique():
        sizes.setdefault(group, 0)
    return dict(sorted(sizes.items()))


def small_validation_group(manifest: pd.DataFrame, dataset: str, min_group_size: int) -> list[dict]:
    """One warning when a validation group has fewer than ``min_group_size`` images, naming each such group."""
    small = {g: n for g, n in validation_group_sizes(manifest).items() if n < min_group_size}
    if not small:
        return []
    return [warning("small_validation_group", "prepare_dataset",
                    f"validation group{'s' if len(small) > 1 else ''} {_counted(small)} "
                    f"{'have' if len(small) > 1 else 'has'} fewer than datasets.{dataset}.validation.min_group_size "
                    f"= {min_group_size} images, so every choice made on validation (epochs, tune candidates, DFR's "
                    f"C) rests on a handful of images: {MORE_DATA}")]


def _counted(sizes: dict[str, int]) -> str:
    return ", ".join(f"{group} ({n} image{'' if n == 1 else 's'})" for group, n in sizes.items())


def check_validation_size(manifest: pd.DataFrame, dataset: str, settings: dict) -> list[dict]:
    """The small-group warning of ``manifest`` under the dataset's ``validation`` section; with
    ``too_small: stop``, a :class:`DDBError` naming the smallest group, its count, the minimum and the fix."""
    minimum = int(settings["min_group_size"])
    found = small_validation_group(manifest, dataset, minimum)
    if found and settings["too_small"] == "stop":
        sizes = {g: n for g, n in validation_group_sizes(manifest).items() if n < minimum}
        smallest = min(sizes, key=lambda g: (sizes[g], g))
        others = {g: n for g, n in sizes.items() if g != smallest}
        raise DDBError(f"dataset {dataset} (data/manifest.parquet, split val)",
                       f"validation group {smallest} has {sizes[smallest]} image{'' if sizes[smallest] == 1 else 's'}, "
                       f"fewer than datasets.{dataset}.validation.min_group_size = {minimum}"
                       + (f" (so do {_counted(others)})" if others else "")
                       + ", too few to choose epochs, tune candidates and DFR's C on (validation.too_small: stop)",
                       f"{MORE_DATA}; or lower datasets.{dataset}.validation.min_group_size, or set "
                       f"datasets.{dataset}.validation.too_small: warn to go on with a warning in eval.json")
    return found


def tied_epochs(history: pd.DataFrame, step: str, rule: str) -> list[dict]:
    """One warning when every epoch of ``history`` (erm/history.parquet, retrain/history.parquet) ties on
    what ``rule`` selects by: ``best_val_wga`` the validation WGA, ``best_val_wga_mean`` WGA and mean
    accuracy; ``last`` (ERM's default) does not choose on validation, and one epoch is no choice."""
    columns = {"best_val_wga": [WGA], "best_val_wga_mean": [WGA, MEAN]}.get(rule)
    if columns is None or not _all_tied(history, columns):
        return []
    kept = (history.loc[history["selected"].astype(bool), "epoch"] if "selected" in history
            else history["epoch"].head(1))
    kept_epoch = int(kept.iloc[0]) if len(kept) else int(history["epoch"].iloc[0])
    what = "validation WGA" + (" and mean accuracy" if MEAN in columns else "")
    values = " and ".join(f"{history[c].iloc[0]:.3f}" for c in columns)
    return [warning("tied_epochs", step,
                    f"all {len(history)} epochs of {step} have the same {what} ({values}), so epoch {kept_epoch} was "
                    f"kept by order, not by validation: {MORE_DATA}")]


def tied_candidates(table: pd.DataFrame) -> list[dict]:
    """One warning when every tune candidate (tune/candidates.parquet) has the same validation WGA."""
    if not _all_tied(table, [WGA]):
        return []
    chosen = table.loc[table["selected"].astype(bool), "candidate"]
    chosen = str(chosen.iloc[0]) if len(chosen) else "the first"
    return [warning("tied_candidates", "tune_select",
                    f"all {len(table)} tune candidates have validation WGA {table[WGA].iloc[0]:.3f}, so {chosen} was "
                    "chosen by the tie-break (fewer kept generated images, then the order given), not by validation: "
                    f"{MORE_DATA}, or set P and γ in the entry instead of tuning them")]


def tied_dfr_c(selection: pd.DataFrame) -> list[dict]:
    """One warning when every C of ``dfr.c_grid`` (dfr/selection.parquet) has the same select-half WGA."""
    if not _all_tied(selection, [WGA]):
        return []
    chosen = selection.loc[selection["selected"].astype(bool), "C"]
    chosen = float(chosen.iloc[0]) if len(chosen) else float(selection["C"].iloc[0])
    return [warning("tied_dfr_c", "dfr",
                    f"all {len(selection)} values of dfr.c_grid have the same validation WGA "
                    f"({selection[WGA].iloc[0]:.3f} on the select half), so C={chosen:g} was chosen as the first in "
                    f"the grid, not by validation: {MORE_DATA}")]


def selection_warnings(*, manifest: pd.DataFrame, dataset: str, validation: dict, erm_history: pd.DataFrame | None,
                       erm_rule: str, retrain_history: pd.DataFrame | None, retrain_step: str = "retrain",
                       candidates: pd.DataFrame | None = None, dfr_selection: pd.DataFrame | None = None) -> list[dict]:
    """Every warning of a run, in the order of its steps (what evaluate writes into eval.json). Retraining
    selects by validation WGA alone (its first best epoch), so its rule is ``best_val_wga``."""
    found = check_validation_size(manifest, dataset, validation)
    if erm_history is not None:
        found += tied_epochs(erm_history, "train_erm", erm_rule)
    if retrain_history is not None:
        found += tied_epochs(retrain_history, retrain_step, "best_val_wga")
    if candidates is not None:
        found += tied_candidates(candidates)
    if dfr_selection is not None:
        found += tied_dfr_c(dfr_selection)
    return found


def format_warnings(warnings: list[dict]) -> list[str]:
    """One line per warning, for a terminal, a log or a report: ``WARNING (step): message``."""
    return [f"WARNING ({w['step']}): {w['message']}" for w in warnings]
