"""The lines and tables of DDB's own model: prune, retrain, and with a `tune` section the candidates (tune).
With tuning, prune and retrain show the selected candidate's (``Results.ddb_candidate``)."""

from __future__ import annotations

from ..results.reader import Results, prune_counts, require
from ..results.schema import REASONS
from ..results.tables import fmt, tune_rows
from ..tuning import selected_epoch
from .registry import ARTIFACT, StepSummary, summary, table
from .text import history_rows, pct


@summary("prune")
def _summary_prune(results: Results) -> StepSummary:
    counts = prune_counts(results)
    if counts.empty:
        raise FileNotFoundError("prune")
    total, kept = int(counts["generated"].sum()), int(counts["kept"].sum())
    reasons = " · ".join(f"{r} {int(counts[r].sum())}" for r in REASONS[1:])
    pairs = ", ".join(f"{r['source']}→{r['target']} {r['kept']}/{r['generated']}" for r in counts.to_dict("records"))
    figure = f"kept {kept} of {total} ({pct(kept, total)}) · {reasons} · {pairs}"
    data = {"generated": total, "kept": kept,
            **{r: int(counts[r].sum()) for r in REASONS[1:]},
            "pairs": {r["pair"]: {k: r[k] for k in ("generated", "kept", *REASONS[1:])}
                      for r in counts.to_dict("records")}}
    figure = _mark_candidate(results, figure, data)
    return StepSummary("prune", results.rel(results.prune_table("{src}", "{dst}")), rows=total, figure=figure,
                       status="done", data=data)


def _mark_candidate(results: Results, figure: str, data: dict) -> str:
    """A tuned run's prune and retrain lines are the selected candidate's: say which (in ``data`` too)."""
    if results.ddb_candidate:
        data["candidate"] = results.ddb_candidate
        return f"{figure} · tuned candidate {results.ddb_candidate}"
    return figure


@summary("retrain")
def _summary_retrain(results: Results) -> StepSummary:
    history = results.table(require(results.retrain_history))
    chosen = selected_epoch(history)  # the epoch retrain kept, as tune_select reads it
    figure = (f"{len(history)} epochs · selected epoch {chosen['epoch']} · val WGA "
              f"{fmt(chosen['val_worst_group_accuracy'])} · val mean {fmt(chosen['val_mean_accuracy'])}")
    data = {"epochs": len(history), "selected_epoch": chosen["epoch"],
            "val_wga": chosen["val_worst_group_accuracy"]}
    figure = _mark_candidate(results, figure, data)
    return StepSummary("retrain", results.rel(results.retrain_history), rows=len(history), figure=figure,
                       status="done", data=data)


@summary("tune")
def _summary_tune(results: Results) -> StepSummary:
    if not results.tune_dir.is_dir():  # most runs: the entry has no `tune` section
        return StepSummary("tune", ARTIFACT["tune"], figure="no tune/ folder: P and γ as configured (no `tune` "
                           "section), or tuning has not started")
    table = results.table(require(results.tune_candidates))
    chosen = table[table["selected"].astype(bool)].iloc[0]
    parts = [f"{r['candidate']} kept {int(r['kept_total'])} val WGA {fmt(r['val_worst_group_accuracy'])}"
             for r in table.sort_values("order").to_dict("records")]
    figure = (f"{len(table)} candidates, selected {chosen['candidate']} (val WGA "
              f"{fmt(chosen['val_worst_group_accuracy'])}, val mean {fmt(chosen['val_mean_accuracy'])}) · "
              + ", ".join(parts))
    data = {"selected": str(chosen["candidate"]),
            "candidates": {str(r["candidate"]): {"thresholds": [float(v) for v in r["thresholds"]],
                                                 "gammas": [float(v) for v in r["gammas"]],
                                                 "kept_total": int(r["kept_total"]),
                                                 "val_wga": float(r["val_worst_group_accuracy"]),
                                                 "val_mean": float(r["val_mean_accuracy"])}
                           for r in table.to_dict("records")}}
    return StepSummary("tune", ARTIFACT["tune"], rows=len(table), figure=figure, status="done", data=data)


@table("prune")
def _table_prune(results):
    counts = prune_counts(results)
    if counts.empty:
        raise FileNotFoundError("prune")
    rows = [[f"{r['source']}→{r['target']}", r["generated"], r["kept"], f"{r['kept_percent']:.1f} %",
             *[r[reason] for reason in REASONS[1:]], r["psi_source"], r["threshold"]]
            for r in counts.to_dict("records")]
    total, kept = int(counts["generated"].sum()), int(counts["kept"].sum())
    rows.append(["total", total, kept, pct(kept, total), *[int(counts[r].sum()) for r in REASONS[1:]], "", ""])
    return (f"pruning verdicts per class pair and reason ({results.rel(results.prune_table('{src}', '{dst}'))})",
            ["pair", "generated", "kept", "kept %", *REASONS[1:], "Ψ_src", "P_dst"], rows)


@table("retrain")
def _table_retrain(results):
    history = results.table(require(results.retrain_history))
    columns, rows = history_rows(history)
    return (f"retraining per epoch ({results.rel(results.retrain_history)}; * = epoch selected by val WGA)",
            columns, rows)


@table("tune")
def _table_tune(results):
    table = results.table(require(results.tune_candidates))
    columns, rows = tune_rows(table, results.classes())
    return ("P and γ tuned on validation (tune/candidates.parquet; * = selected: best val WGA, ties: fewer kept "
            "generated images, then the order given; only it is evaluated on test)", columns, rows)
