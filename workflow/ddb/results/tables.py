"""The rows of the tables both ``ddb inspect`` and the report show (test accuracy per model, the tuning
candidates), and the number format of their cells. The terminal's layout of them is :mod:`ddb.presenters`'."""

from __future__ import annotations

import math

import pandas as pd

from .reader import eval_models
from .schema import ACCURACIES


def fmt(value, digits: int = 3) -> str:
    """Numbers as the tables print them: ints plain, floats with ``digits`` decimals, NaN as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return str(int(value))
    if isinstance(value, float) or hasattr(value, "dtype"):
        value = float(value)
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def tune_rows(table: pd.DataFrame, classes: list[str]) -> tuple[list[str], list[list]]:
    """The tuning table (tune/candidates.parquet): one row per candidate in the order given, with P, γ, the
    kept generated images per class (of those generated), validation WGA and mean at the kept epoch, and
    the selected one marked with *."""
    values = lambda vs: ", ".join(f"{float(v):g}" for v in vs)
    classes = [c for c in classes if f"kept_{c}" in table] or [
        c.removeprefix("kept_") for c in table.columns if c.startswith("kept_") and c != "kept_total"]
    columns = ["candidate", "P", "γ", *[f"kept {c}" for c in classes], "kept", "epoch", "val WGA", "val mean",
               "rank", "selected"]
    rows = []
    for r in table.sort_values("order").to_dict("records"):
        kept = [f"{int(r[f'kept_{c}'])}/{int(r[f'generated_{c}'])}" if f"generated_{c}" in r
                else int(r[f"kept_{c}"]) for c in classes]
        rows.append([str(r["candidate"]), values(r["thresholds"]), values(r["gammas"]), *kept, int(r["kept_total"]),
                     int(r["epoch"]), float(r["val_worst_group_accuracy"]), float(r["val_mean_accuracy"]),
                     int(r["rank"]), "*" if r["selected"] else ""])
    return columns, rows


def eval_rows(report: dict, table: pd.DataFrame | None = None) -> tuple[list[str], list[list]]:
    """The ERM / DFR / DDB table: one row per group, then WGA, mean and train-weighted mean; Δ = DDB − ERM."""
    models = eval_models(report)
    delta = (lambda values: fmt(values[models.index("ddb")] - values[models.index("erm")])  # noqa: E731
             if {"erm", "ddb"} <= set(models) else "-")
    groups = sorted(report[models[0]]["group_accuracy"])
    sizes = {}
    if table is not None and len(table):
        sizes = table.groupby("group")[["n_train", "n_test"]].first().to_dict("index")
    rows = []
    for g in groups:
        values = [report[m]["group_accuracy"][g] for m in models]
        worst = [report[m]["group_accuracy"][g] == report[m]["worst_group_accuracy"] for m in models]
        rows.append([g, sizes.get(g, {}).get("n_train", "-"), sizes.get(g, {}).get("n_test", "-"),
                     *[fmt(v) + (" (worst)" if w else "") for v, w in zip(values, worst)], delta(values)])
    labels = ("WORST-GROUP ACCURACY", "mean accuracy", "train-weighted mean accuracy")
    for key, label in zip(ACCURACIES, labels):
        values = [report[m][key] for m in models]
        rows.append([label, "", "", *[fmt(v) for v in values], delta(values)])
    return ["group", "n_train", "n_test", *[m.upper() for m in models], "Δ"], rows


def eval_title(report: dict) -> str:
    """"ERM vs DDB", or "ERM, DFR and DDB" where eval.json has the DFR baseline."""
    names = [m.upper() for m in eval_models(report)]
    return " vs ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"
