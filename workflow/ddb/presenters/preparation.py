"""The lines and tables of the steps before generation: prepare_dataset, train_erm, textual_inversion,
select_low_loss, mean_softmax."""

from __future__ import annotations

import pandas as pd

from ..results.reader import Results, require
from ..results.tables import fmt
from .registry import ARTIFACT, NOT_RUN, StepSummary, summary, table
from .text import history_rows


@summary("prepare_dataset")
def _summary_prepare_dataset(results: Results) -> StepSummary:
    manifest = results.table(require(results.manifest))
    counts = manifest.groupby(["split", "group"]).size()
    splits = [s for s in ("train", "val", "test") if s in counts.index.get_level_values(0)]
    parts = []
    for split in splits:
        groups = counts[split]
        inner = ", ".join(f"{g} {int(n)}" for g, n in groups.items())
        parts.append(f"{split} {int(groups.sum())} ({inner})" if split == "train" else f"{split} {int(groups.sum())}")
    data = {split: {g: int(n) for g, n in counts[split].items()} for split in splits}
    return StepSummary("prepare_dataset", ARTIFACT["prepare_dataset"], rows=len(manifest), figure=" · ".join(parts),
                       status="done", data={"groups": data})


@summary("train_erm")
def _summary_train_erm(results: Results) -> StepSummary:
    history = results.table(require(results.erm_history))
    best = history.loc[history["val_worst_group_accuracy"].idxmax()]
    figure = (f"{len(history)} epochs · final loss {fmt(history['loss'].iloc[-1])} · best val WGA "
              f"{fmt(best['val_worst_group_accuracy'])} (epoch {int(best['epoch'])})")
    return StepSummary("train_erm", ARTIFACT["train_erm"], rows=len(history), figure=figure, status="done",
                       data={"epochs": len(history), "best_val_wga": float(best["val_worst_group_accuracy"]),
                             "best_epoch": int(best["epoch"])})


@summary("textual_inversion")
def _summary_textual_inversion(results: Results) -> StepSummary:
    parts, rows, data, missing = [], 0, {}, []
    for cls in results.classes():
        loss_path = results.paths.path("ti_loss", cls=cls)
        if not loss_path.exists():
            missing.append(cls)
            continue
        loss = results.table(loss_path)
        samples_path = results.paths.path("ti_samples", cls=cls)
        images = len(results.table(samples_path)) if samples_path.exists() else None
        rows += len(loss)
        data[cls] = {"images": images, "steps": len(loss), "first_loss": float(loss["loss"].iloc[0]),
                     "last_loss": float(loss["loss"].iloc[-1])}
        parts.append(f"{cls}: {fmt(images)} images, {len(loss)} steps, loss {fmt(loss['loss'].iloc[0])}"
                     f"→{fmt(loss['loss'].iloc[-1])}")
    if not data:
        raise FileNotFoundError("textual_inversion")
    if missing:
        parts.append(f"{', '.join(missing)}: {NOT_RUN}")
    return StepSummary("textual_inversion", ARTIFACT["textual_inversion"], rows=rows, figure=" · ".join(parts),
                       status="partial" if missing else "done", data=data)


@summary("select_low_loss")
def _summary_select_low_loss(results: Results) -> StepSummary:
    parts, rows, data, missing = [], 0, {}, []
    for cls in results.classes():
        if not results.low_loss(cls).exists():
            missing.append(cls)
            continue
        table = results.table(results.low_loss(cls))
        rows += len(table)
        data[cls] = {"k": len(table), "max_loss": float(table["loss"].max())}
        parts.append(f"{cls} K={len(table)} (loss ≤ {table['loss'].max():.3g})")
    if not data:
        raise FileNotFoundError("low_loss")
    if missing:
        parts.append(f"{', '.join(missing)}: {NOT_RUN}")
    return StepSummary("select_low_loss", ARTIFACT["select_low_loss"], rows=rows, figure=" · ".join(parts),
                       status="partial" if missing else "done", data=data)


@summary("mean_softmax")
def _summary_mean_softmax(results: Results) -> StepSummary:
    psi = results.table(require(results.psi))
    parts = [f"{r['class_name']} K={int(r['k'])} Ψ={r['psi']:.4f}" for r in psi.to_dict("records")]
    data = {str(r["class_name"]): {"k": int(r["k"]), "psi": float(r["psi"])} for r in psi.to_dict("records")}
    return StepSummary("mean_softmax", ARTIFACT["mean_softmax"], rows=len(psi), figure=" · ".join(parts), status="done",
                       data=data)


@table("prepare_dataset")
def _table_prepare_dataset(results):
    manifest = results.table(require(results.manifest))
    counts = manifest.groupby(["group", "split"]).size().unstack(fill_value=0)
    splits = [s for s in ("train", "val", "test") if s in counts.columns]
    labels = manifest.groupby("group")[["y", "class_name", "spurious"]].first() if "spurious" in manifest else None
    rows = []
    for group, row in counts.iterrows():
        meta = labels.loc[group] if labels is not None else {}
        rows.append([group, int(meta["y"]) if len(meta) else "-", str(meta.get("spurious", "-")),
                     *[int(row[s]) for s in splits], int(row[splits].sum())])
    rows.append(["total", "", "", *[int(counts[s].sum()) for s in splits], int(counts[splits].values.sum())])
    return ("group counts per split (data/manifest.parquet)", ["group", "y", "spurious", *splits, "all"], rows)


@table("train_erm")
def _table_train_erm(results):
    history = results.table(require(results.erm_history))
    columns, rows = history_rows(history)
    return ("ERM training per epoch (erm/history.parquet)", columns, rows)


@table("textual_inversion")
def _table_textual_inversion(results):
    rows = []
    for cls in results.classes():
        loss_path = results.paths.path("ti_loss", cls=cls)
        if not loss_path.exists():
            rows.append([cls, NOT_RUN, "", "", "", "", ""])
            continue
        loss = results.table(loss_path)
        samples_path = results.paths.path("ti_samples", cls=cls)
        samples = results.table(samples_path) if samples_path.exists() else pd.DataFrame()
        groups = ", ".join(sorted(samples["group"].unique())) if "group" in samples else "-"
        rows.append([cls, len(samples), groups, len(loss), float(loss["loss"].iloc[0]), float(loss["loss"].iloc[-1]),
                     float(loss["loss"].min())])
    if all(r[1] == NOT_RUN for r in rows):
        raise FileNotFoundError("textual_inversion")
    return ("textual inversion per class (textual_inversion/{cls}/)",
            ["class", "images", "groups", "steps", "first loss", "last loss", "min loss"], rows)


@table("select_low_loss")
def _table_select_low_loss(results):
    rows = []
    for cls in results.classes():
        if not results.low_loss(cls).exists():
            rows.append([cls, NOT_RUN, "", "", ""])
            continue
        table = results.table(results.low_loss(cls))
        rows.append([cls, len(table), float(table["loss"].max()), float(table["softmax"].mean()),
                     float(table["softmax"].min())])
    if all(r[1] == NOT_RUN for r in rows):
        raise FileNotFoundError("low_loss")
    return ("K lowest per-sample losses per class (low_loss/{cls}.parquet)",
            ["class", "K", "max loss", "mean softmax", "min softmax"], rows)


@table("mean_softmax")
def _table_mean_softmax(results):
    psi = results.table(require(results.psi))
    rows = [[int(r["class"]), r["class_name"], int(r["k"]), float(r["psi"])] for r in psi.to_dict("records")]
    return ("Ψ: mean softmax of the K low-loss samples (psi.parquet)", ["class", "name", "K", "psi"], rows)
