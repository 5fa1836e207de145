"""Tuning P and γ on validation: the candidates of a dataset entry's ``tune`` section, and the choice.

The section lists candidate thresholds P (``tune.thresholds``, one value per class) and loss weights γ
(``tune.gammas``, one value per class); the candidates are their product, thresholds first, in the
order given (a list left out is the entry's own ``prune.thresholds`` / ``retrain.gammas``). Generation
runs once; ``tune_prune`` and ``tune_retrain`` run once per candidate (rules/tune.smk), each under
``tune/<candidate>/`` where the name is made of the candidate's values (``P0.2_0.2-g1_1``), so adding a
candidate reruns only that candidate. ``tune_select`` then reads each candidate's retraining history
(validation only: retrain keeps the epoch with the best validation WGA) and prune tables, and picks
the best validation WGA; ties go to the fewer kept generated images, then to the order given. The test
split is read only by ``evaluate``, for the selected candidate's model alone.

pandas only (no torch): ``ddb inspect``, the rules' input functions and the config check import it.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path

import pandas as pd

from .errors import DDBError
from .paths import wildcards_of
from .storage.reading import read_json

SELECTION_RULE = "best validation WGA; ties: fewer kept generated images, then the order given"
# the key of each candidate list in `tune`, and the entry's own value it replaces
TUNED_KEYS = {"thresholds": ("prune", "thresholds"), "gammas": ("retrain", "gammas")}
# a candidate's name: P<thresholds>-g<gammas>, values joined by `_` (ddb.tuning.candidate_name)
NAME_PATTERN = r"P[0-9a-z._]+-g[0-9a-z._]+"


# ---------------------------------------------------------------------------------------------------
# Candidates and their names
# ---------------------------------------------------------------------------------------------------

def format_value(value: float) -> str:
    """A number as it appears in a candidate's name: the shortest exact form (``0.2``, ``1``, ``1e-05``),
    ``m`` for a minus sign and no ``+``, so the name is path-safe and two values never share a name."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    return text.replace("-", "m").replace("+", "")


def candidate_name(thresholds: list[float], gammas: list[float]) -> str:
    """``P0.2_0.2-g1_1`` for thresholds (0.2, 0.2) and gammas (1, 1): made of the values, not a position."""
    return ("P" + "_".join(format_value(v) for v in thresholds) + "-g"
            + "_".join(format_value(v) for v in gammas))


def is_tuned(entry: dict) -> bool:
    """Whether the dataset entry has a ``tune`` section (absent or null: P and γ as configured)."""
    return entry.get("tune") is not None


def candidates(entry: dict) -> list[dict]:
    """The entry's candidates in the order given (thresholds outer, gammas inner): ``{"name", "order",
    "thresholds", "gammas"}``; empty without a ``tune`` section. With pruning disabled the thresholds
    change nothing (every generation is kept), so only the entry's own thresholds are used."""
    if not is_tuned(entry):
        return []
    tune = entry["tune"]
    threshold_list = tune.get("thresholds")
    if threshold_list is None or not entry["prune"].get("enabled", True):
        threshold_list = [entry["prune"]["thresholds"]]
    gamma_list = tune.get("gammas")
    if gamma_list is None:
        gamma_list = [entry["retrain"]["gammas"]]
    found = []
    for order, (thresholds, gammas) in enumerate(itertools.product(threshold_list, gamma_list)):
        thresholds, gammas = [float(v) for v in thresholds], [float(v) for v in gammas]
        found.append({"name": candidate_name(thresholds, gammas), "order": order, "thresholds": thresholds,
                      "gammas": gammas})
    return found


def candidate_names(entry: dict) -> list[str]:
    return [c["name"] for c in candidates(entry)]


def find_candidate(entry: dict, name: str, where: str = "tune") -> dict:
    for candidate in candidates(entry):
        if candidate["name"] == name:
            return candidate
    known = candidate_names(entry)
    raise DDBError(where, f"{name!r} is not a candidate of this dataset's `tune` section"
                   + (f" (its candidates: {', '.join(known)})" if known else " (it has no `tune` section)"),
                   "target one of its candidates, or add the values to `tune.thresholds` / `tune.gammas`")


def candidate_sections(entry: dict, name: str, keys: tuple[str, ...]) -> dict:
    """``{key: entry[key]}`` for ``keys`` (a rule's params.cfg), with candidate ``name``'s thresholds and
    gammas in place of the entry's own: what ``prune`` / ``retrain`` get for that candidate."""
    candidate = find_candidate(entry, name)
    sections = {key: copy.deepcopy(entry[key]) for key in keys}
    for tuned, (section, key) in TUNED_KEYS.items():
        if section in sections:
            sections[section][key] = list(candidate[tuned])
    return sections


# ---------------------------------------------------------------------------------------------------
# The config check (ddb.config calls these)
# ---------------------------------------------------------------------------------------------------

EXAMPLE = "e.g. tune: {thresholds: [[0.0, 0.0], [0.5, 0.5]], gammas: [[1.0, 1.0]]}"


def check_tune_shape(name: str, dataset: dict, source: str) -> None:
    """Before the schema: a flat list (``thresholds: [0.0, 0.5]``) is the common mistake; say so plainly."""
    tune = dataset.get("tune")
    if not isinstance(tune, dict):
        return
    for key in TUNED_KEYS:
        values = tune.get(key)
        if isinstance(values, list) and values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in values):
            raise DDBError(f"{source}: datasets.{name}.tune.{key}",
                           f"is a flat list {values}, but it lists candidates, each one value per class",
                           f"make each candidate a list, e.g. {key}: [{values}] for one candidate, or "
                           f"{key}: [[0.0, 0.0], [0.5, 0.5]] for two ({EXAMPLE})")


def check_tune(name: str, dataset: dict, source: str) -> None:
    """One value per class in every candidate, at least one list given, no candidate twice."""
    if not is_tuned(dataset):
        return
    tune, classes = dataset["tune"], dataset["classes"]
    where = f"{source}: datasets.{name}.tune"
    if tune.get("thresholds") is None and tune.get("gammas") is None:
        raise DDBError(where, "lists no candidates (neither `thresholds` nor `gammas`)",
                       f"list candidate values ({EXAMPLE}), or remove the section to use prune.thresholds "
                       "and retrain.gammas as they are")
    for key in TUNED_KEYS:
        for i, values in enumerate(tune.get(key) or []):
            if len(values) != len(classes):
                raise DDBError(f"{where}.{key}.{i}", f"{values} has {len(values)} values but the dataset has "
                               f"{len(classes)} classes {classes}",
                               f"give one value per class, in class-index order ({EXAMPLE})")
    names = [c["name"] for c in candidates(dataset)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DDBError(where, f"lists the candidate(s) {', '.join(repeated)} more than once",
                       "list each threshold and gamma vector once")


# ---------------------------------------------------------------------------------------------------
# The selection (rule tune_select)
# ---------------------------------------------------------------------------------------------------

def selected_epoch(history: pd.DataFrame) -> dict:
    """The epoch retrain kept (its ``selected`` row, else the best validation WGA): epoch, val WGA, mean."""
    if "selected" in history and history["selected"].astype(bool).any():
        row = history[history["selected"].astype(bool)].iloc[0]
    else:
        row = history.loc[history["val_worst_group_accuracy"].idxmax()]
    return {"epoch": int(row["epoch"]), "val_worst_group_accuracy": float(row["val_worst_group_accuracy"]),
            "val_mean_accuracy": float(row["val_mean_accuracy"])}


def candidate_record(candidate: dict, prune_tables: list[pd.DataFrame], history: pd.DataFrame,
                     classes: list[str]) -> dict:
    """One row of candidates.parquet: the candidate's values, its kept/generated counts per class (by the
    label y of the generated image) and its retraining's validation figures."""
    verdicts = pd.concat(prune_tables, ignore_index=True) if prune_tables else pd.DataFrame(columns=["y", "keep"])
    labels = verdicts["y"].astype(int)
    kept = verdicts["keep"].astype(bool)
    record = {"candidate": candidate["name"], "order": int(candidate["order"]),
              "thresholds": list(candidate["thresholds"]), "gammas": list(candidate["gammas"])}
    for y, cls in enumerate(classes):
        record[f"kept_{cls}"] = int((kept & (labels == y)).sum())
    for y, cls in enumerate(classes):
        record[f"generated_{cls}"] = int((labels == y).sum())
    record["kept_total"] = int(kept.sum())
    record.update(selected_epoch(history))
    return record


def select(records: list[dict]) -> pd.DataFrame:
    """candidates.parquet: the records in the order given, ``rank`` by the selection rule and ``selected``
    on the winner (best validation WGA; ties: fewer kept generated images, then the order given)."""
    if not records:
        raise DDBError("tune", "no candidate to select from", "list candidates in the dataset's `tune` section")
    table = pd.DataFrame(records).sort_values("order", kind="stable").reset_index(drop=True)
    # rounded so that two equal accuracies computed in other orders compare equal
    key = pd.DataFrame({"wga": -table["val_worst_group_accuracy"].round(12), "kept": table["kept_total"],
                        "order": table["order"]})
    ranked = key.sort_values(["wga", "kept", "order"], kind="stable").index
    table["rank"] = 0
    table.loc[ranked, "rank"] = range(1, len(table) + 1)
    table["selected"] = table["rank"] == 1
    return table


def selection(table: pd.DataFrame, dataset: str, classes: list[str]) -> dict:
    """selected.json: the winner's name, values, counts and validation figures, and every candidate."""
    row = table[table["selected"]].iloc[0]
    return {"dataset": dataset, "selected": str(row["candidate"]),
            "thresholds": [float(v) for v in row["thresholds"]], "gammas": [float(v) for v in row["gammas"]],
            "kept": {cls: int(row[f"kept_{cls}"]) for cls in classes}, "kept_total": int(row["kept_total"]),
            "epoch": int(row["epoch"]), "val_worst_group_accuracy": float(row["val_worst_group_accuracy"]),
            "val_mean_accuracy": float(row["val_mean_accuracy"]), "rule": SELECTION_RULE,
            "candidates": [str(c) for c in table["candidate"]]}


def read_selection(path: str | Path) -> dict:
    return read_json(path, "the selection")


# ---------------------------------------------------------------------------------------------------
# What evaluate reads and records
# ---------------------------------------------------------------------------------------------------

def selected_model(selection_paths, model_paths) -> tuple[str, dict | None]:
    """The DDB model to evaluate: the one retrained model without tuning; with tuning (one selection file)
    the selected candidate's among ``model_paths`` (tune/<candidate>/retrain/model.pt), and its record for
    eval.json. Only that model is ever evaluated on test."""
    selection_paths = [selection_paths] if isinstance(selection_paths, (str, Path)) else list(selection_paths or [])
    models = [model_paths] if isinstance(model_paths, (str, Path)) else list(model_paths)
    if not selection_paths:
        if len(models) != 1:
            raise DDBError("evaluate", f"{len(models)} DDB models and no tuning selection", "report this as a bug")
        return str(models[0]), None
    chosen = read_selection(selection_paths[0])
    matches = [str(p) for p in models if (wildcards_of("tune_model", p) or {}).get("cand") == chosen["selected"]]
    if len(matches) != 1:
        raise DDBError(selection_paths[0], f"selects {chosen['selected']!r}, which is not among the candidate "
                       f"models {[str(p) for p in models]}", "delete it and rerun snakemake: tune_select remakes it")
    record = {key: chosen[key] for key in ("selected", "thresholds", "gammas", "kept", "kept_total", "epoch",
                                           "val_worst_group_accuracy", "val_mean_accuracy", "rule", "candidates")
              if key in chosen}
    return matches[0], record


def selected_history(candidate: str, history_paths) -> str:
    """The retraining history of tuned ``candidate`` among every candidate's (tune/<candidate>/retrain/...)."""
    histories = [history_paths] if isinstance(history_paths, (str, Path)) else list(history_paths)
    matches = [str(p) for p in histories if (wildcards_of("tune_history", p) or {}).get("cand") == candidate]
    if len(matches) != 1:
        raise DDBError("evaluate", f"the selected candidate {candidate!r} has no retraining history among "
                       f"{[str(p) for p in histories]}", "rerun snakemake: rule tune_retrain remakes it")
    return matches[0]


def describe_selection(report: dict) -> str | None:
    """One line for the end of a run: which tuned candidate DDB is (None without tuning)."""
    tune = report.get("tune")
    if not tune:
        return None
    values = lambda vs: "(" + ", ".join(f"{v:g}" for v in vs) + ")"
    return (f"DDB is tuned candidate {tune['selected']} of {len(tune.get('candidates', []))}: "
            f"P {values(tune['thresholds'])}, γ {values(tune['gammas'])}, chosen by {tune.get('rule', SELECTION_RULE)} "
            f"(val WGA {tune['val_worst_group_accuracy']:.3f})")
