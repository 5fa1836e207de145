"""Rule ``paper_table``: one table across the target datasets, as a paper prints it.

One row per dataset, from its ``eval.json`` (one seed) or, with the config's ``seeds``, its ``summary.json``
(mean ± sample std over the seeds, :mod:`ddb.summary`); columns are ERM, DFR and DDB test worst-group and
mean accuracy in percent, and beside them the test worst-group accuracy the DDB paper reports for the
dataset's format (``—`` where it reports none: the demo, your own data). The Markdown file is what a person
reads; the CSV holds the same figures (and the weighted mean) for a spreadsheet or a plotting script.
"""

from __future__ import annotations

import csv
import io
import math

METHODS = ("erm", "dfr", "ddb")
# the table's two figures per method; the CSV adds the train-weighted mean
TABLE_METRICS = {"worst_group_accuracy": "WGA", "mean_accuracy": "mean"}
CSV_METRICS = {"worst_group_accuracy": "wga", "mean_accuracy": "mean", "weighted_mean_accuracy": "weighted_mean"}
MISSING = "—"

# Test worst-group accuracy (%) of the DDB paper (ICCV 2025, arXiv 2503.17226), by dataset format: DDB's
# own figure and the ERM and DFR figures its comparison table reports.
PUBLISHED_WGA = {
    "waterbirds": {"erm": 74.6, "dfr": 92.9, "ddb": 93.0},
    "celeba": {"erm": 42.2, "dfr": 88.3, "ddb": 85.8},
    "metashift": {"erm": 67.0, "dfr": 72.8, "ddb": 81.2},
}

NOTE = ("Test accuracy in %: worst-group (WGA) and mean over groups; mean ± sample std over the seeds where a "
        "dataset ran several. `paper`: the test WGA the DDB paper (arXiv 2503.17226) reports; — where it "
        "reports none.")
REHEARSAL_NOTE = "(rehearsal): a run with `random:` models (random weights); its accuracies mean nothing."


def dataset_figures(report: dict) -> tuple[list[int] | None, dict[str, dict[str, tuple[float, float | None]]]]:
    """(seeds, {method: {metric: (mean, std)}}) of an eval.json object (seeds None, std None) or a
    summary.json object (its seeds; std None for a single seed). Methods a run left out are absent."""
    if "methods" in report:
        seeds = list(report["seeds"])
        figures = {method: {metric: (float(entry[metric]["mean"]),
                                     float(entry[metric]["std"]) if len(seeds) > 1 else None)
                            for metric in CSV_METRICS if metric in entry}
                   for method, entry in report["methods"].items() if method in METHODS}
        return seeds, figures
    figures = {method: {metric: (float(report[method][metric]), None) for metric in CSV_METRICS
                        if metric in report[method]}
               for method in METHODS if method in report}
    return None, figures


def build_rows(datasets: list[dict]) -> list[dict]:
    """One row per dataset. Each item of ``datasets``: ``name``, ``format``, ``report`` (the eval.json or
    summary.json object) and ``seeds`` (the seeds behind an eval.json: the config's seed)."""
    rows = []
    for item in datasets:
        seeds, figures = dataset_figures(item["report"])
        rows.append({"dataset": item["name"], "format": item["format"],
                     "seeds": seeds if seeds is not None else list(item.get("seeds") or []),
                     "rehearsal": bool(item["report"].get("rehearsal")), "figures": figures,
                     "published": PUBLISHED_WGA.get(item["format"], {})})
    return rows


def _percent(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(100 * value, 4)


def _cell(figure: tuple[float, float | None] | None) -> str:
    if figure is None:
        return MISSING
    mean, std = figure
    return f"{100 * mean:.1f}" if std is None else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _published(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def format_markdown(rows: list[dict]) -> str:
    """The Markdown table (columns padded, so it reads as well on a terminal as rendered)."""
    header = ["dataset", "seeds"]
    header += [f"{method.upper()} {label}" for method in METHODS for label in TABLE_METRICS.values()]
    header += [f"paper {method.upper()} WGA" for method in METHODS]
    body = []
    for row in rows:
        name = row["dataset"] + (" (rehearsal)" if row["rehearsal"] else "")
        cells = [name, ", ".join(map(str, row["seeds"])) or MISSING]
        cells += [_cell(row["figures"].get(method, {}).get(metric)) for method in METHODS for metric in TABLE_METRICS]
        cells += [_published(row["published"].get(method)) for method in METHODS]
        body.append(cells)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # text columns flush left, figures flush right
        padded = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1)) + ("-" if i < 2 else ":") for i, w in enumerate(widths)) + "|"
    lines = [NOTE, "", line(header), rule, *map(line, body)]
    if any(row["rehearsal"] for row in rows):
        lines += ["", REHEARSAL_NOTE]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (["dataset", "format", "seeds", "rehearsal"]
               + [f"{method}_{name}_{kind}" for method in METHODS for name in CSV_METRICS.values()
                  for kind in ("pct", "std_pct")]
               + [f"paper_{method}_wga_pct" for method in METHODS])


def format_csv(rows: list[dict]) -> str:
    """The CSV: one row per dataset, percentages; an empty cell where a figure does not exist (a method
    that did not run, the std of a single seed, a figure the paper does not report)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = {"dataset": row["dataset"], "format": row["format"], "seeds": " ".join(map(str, row["seeds"])),
                  "rehearsal": str(row["rehearsal"]).lower()}
        for method in METHODS:
            for metric, name in CSV_METRICS.items():
                mean, std = row["figures"].get(method, {}).get(metric, (None, None))
                record[f"{method}_{name}_pct"] = _percent(mean)
                record[f"{method}_{name}_std_pct"] = _percent(std)
            record[f"paper_{method}_wga_pct"] = row["published"].get(method)
        writer.writerow({key: "" if value is None else value for key, value in record.items()})
    return out.getvalue()
