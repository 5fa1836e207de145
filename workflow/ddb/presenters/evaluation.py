"""The lines and tables of the comparison and the report: dfr (the baseline), evaluate, visualize."""

from __future__ import annotations

from ..results.reader import Results, dfr_selected, dfr_subsamples, eval_models, require
from ..results.schema import ACCURACIES
from ..results.tables import eval_rows, eval_title, fmt
from ..selection_checks import format_warnings  # pandas only
from ..storage.reading import read_png
from .registry import ARTIFACT, StepSummary, summary, table


@summary("dfr")
def _summary_dfr(results: Results) -> StepSummary:
    selection = results.table(require(results.dfr_selection))
    chosen = dfr_selected(selection)
    parts = [f"C={chosen['C']:g} selected of {len(selection)} (select-half WGA {fmt(chosen['val_worst_group_accuracy'])}, "
             f"mean {fmt(chosen['val_mean_accuracy'])})"]
    data = {"selected_c": float(chosen["C"]), "val_wga": float(chosen["val_worst_group_accuracy"]),
            "val_mean_accuracy": float(chosen["val_mean_accuracy"]), "grid": [float(c) for c in selection["C"]]}
    if results.dfr_halves.exists():
        halves = results.table(results.dfr_halves)
        parts.append(f"halves fit {int(halves['n_fit'].sum())} (balanced {int(halves['n_fit_balanced'].sum())}) / "
                     f"select {int(halves['n_select'].sum())}")
        data["halves"] = {str(r["group"]): {k: int(r[k]) for k in ("n_val", "n_fit", "n_select", "n_fit_balanced")}
                          for r in halves.to_dict("records")}
    subsamples = dfr_subsamples(results)
    if subsamples is not None:
        parts.append(f"{subsamples} balanced subsamples averaged")
        data["subsamples"] = subsamples
    return StepSummary("dfr", ARTIFACT["dfr"], rows=len(selection), figure=" · ".join(parts), status="done",
                       data=data)


@summary("evaluate")
def _summary_evaluate(results: Results) -> StepSummary:
    report = results.eval_report()
    models = [m for m in eval_models(report) if m != "dfr"]  # ERM → DDB, the baseline DFR beside them
    rows = len(results.table(results.eval_table)) if results.eval_table.exists() else None
    parts = []
    for key, label in zip(ACCURACIES, ("WGA", "mean", "weighted mean")):
        values = [report[m][key] for m in models]
        parts.append(f"{label} " + " → ".join(f"{m.upper()} {fmt(v)}" for m, v in zip(models, values))
                     if label == "WGA" else f"{label} " + " → ".join(fmt(v) for v in values))
        if "dfr" in report:
            parts[-1] += f" (DFR {fmt(report['dfr'][key])})"
    models = eval_models(report)
    data = {m: {k: report[m][k] for k in ACCURACIES}
            for m in models}
    if report.get("rehearsal"):
        parts.insert(0, "REHEARSAL (random weights)")
        data["rehearsal"] = True
    if report.get("warnings"):  # choices validation could not make (ddb.selection_checks)
        parts.insert(0, f"{len(report['warnings'])} WARNING{'S' if len(report['warnings']) > 1 else ''} (below)")
        data["warnings"] = report["warnings"]
    return StepSummary("evaluate", ARTIFACT["evaluate"], rows=rows, figure=" · ".join(parts), status="done", data=data)


@summary("visualize")
def _summary_visualize(results: Results) -> StepSummary:
    folder = require(results.report_dir)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(folder)
    pngs = [p for p in files if p.suffix == ".png"]
    tables = [p for p in files if p.suffix in (".html", ".csv")]
    names = ", ".join(p.relative_to(folder).as_posix() for p in pngs)
    figure = f"{len(pngs)} PNG ({names}) · {len(tables)} tables"
    return StepSummary("visualize", ARTIFACT["visualize"], rows=None, images=len(pngs), figure=figure, status="done",
                       data={"files": [results.rel(p) for p in files]})


@table("dfr")
def _table_dfr(results):
    selection = results.table(require(results.dfr_selection))
    groups = [c.removeprefix("accuracy_") for c in selection.columns if c.startswith("accuracy_")]
    rows = [[("*" if r["selected"] else ""), float(r["C"]), float(r["val_worst_group_accuracy"]),
             float(r["val_mean_accuracy"]), int(r["nonzero_coefficients"]), *[float(r[f"accuracy_{g}"]) for g in groups]]
            for r in selection.to_dict("records")]
    title = ("DFR: C chosen by worst-group accuracy on the select half of validation, fit on a group-balanced "
             "subsample of the fit half (dfr/selection.parquet; * = selected)")
    if results.dfr_halves.exists():
        halves = results.table(results.dfr_halves)
        title += "\nhalves per group (dfr/halves.parquet): " + ", ".join(
            f"{r['group']} {int(r['n_fit'])} fit ({int(r['n_fit_balanced'])} balanced) / {int(r['n_select'])} select"
            for r in halves.to_dict("records"))
        title += f"; the final model: {int(halves['n_final_balanced'].iloc[0])} per group"
    subsamples = dfr_subsamples(results)
    if subsamples is not None:
        title += f", {subsamples} balanced subsamples of the whole split averaged (dfr/coefficients.parquet)"
    return title, ["", "C", "val WGA", "val mean", "nonzero coef", *groups], rows


@table("evaluate")
def _table_evaluate(results):
    report = results.eval_report() if results.eval_json.exists() else None
    if report is None:
        raise FileNotFoundError(ARTIFACT["evaluate"])
    table = results.table(results.eval_table) if results.eval_table.exists() else None
    columns, rows = eval_rows(report, table)
    title = (f"test accuracy, {eval_title(report)} ({report.get('dataset', results.name)}; eval.json, eval.parquet; "
             "Δ = DDB − ERM)")
    title = "\n".join([title, *format_warnings(report.get("warnings", []))])
    return (f"{results.rehearsal()}\n{title}" if report.get("rehearsal") else title), columns, rows


@table("visualize")
def _table_visualize(results):
    folder = require(results.report_dir)
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = "-"
        if path.suffix == ".png":
            image = read_png(path)
            size = f"{image.width}x{image.height}"
        rows.append([results.rel(path), path.stat().st_size, size])
    if not rows:
        raise FileNotFoundError(folder)
    return (f"files written by visualize ({ARTIFACT['visualize']})", ["file", "bytes", "pixels"], rows)
