"""Step ``seed_summary``: mean ± std over the seeds of a dataset, per method (ERM, DFR, DDB).

Each seed of the config's ``seeds`` is a whole run of the DAG (ddb.paths.run_name); this reads their
eval.json files and reports, for every method present in all of them, the worst-group accuracy, the mean
accuracy and the weighted mean accuracy as mean ± sample standard deviation (ddof 1, the convention of
the papers' tables; 0 for a single seed), plus each seed's own values so nothing is hidden by the mean.
"""

from __future__ import annotations

import math

import pandas as pd

METHODS = ("erm", "dfr", "ddb")
METRICS = ("worst_group_accuracy", "mean_accuracy", "weighted_mean_accuracy")
LABELS = {"worst_group_accuracy": "worst-group acc.", "mean_accuracy": "mean acc.",
          "weighted_mean_accuracy": "weighted mean acc."}


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(dataset: str, reports: dict[int, dict]) -> tuple[dict, pd.DataFrame]:
    """The summary.json object and its long table (one row per seed, method and metric) for ``reports``
    ({seed: eval.json object})."""
    seeds = sorted(reports)
    methods = [m for m in METHODS if all(m in reports[s] for s in seeds)]
    rows = [{"seed": seed, "method": method, "metric": metric, "value": float(reports[seed][method][metric])}
            for seed in seeds for method in methods for metric in METRICS]
    summary = {"dataset": dataset, "seeds": seeds, "methods": {}}
    for method in methods:
        entry = {}
        for metric in METRICS:
            values = [float(reports[s][method][metric]) for s in seeds]
            mean, std = _mean_std(values)
            entry[metric] = {"mean": mean, "std": std, "per_seed": dict(zip(map(str, seeds), values))}
        summary["methods"][method] = entry
    if any(reports[s].get("rehearsal") for s in seeds):
        summary["rehearsal"] = True
    return summary, pd.DataFrame(rows, columns=["seed", "method", "metric", "value"])


def format_summary(summary: dict) -> str:
    """The table a run prints at its end: one row per metric, one column per method, mean ± std."""
    methods = list(summary["methods"])
    seeds = summary["seeds"]
    width = max(len(label) for label in LABELS.values()) + 2
    lines = [f"{summary['dataset']}: test accuracy over {len(seeds)} seed(s) {seeds}, mean ± std".ljust(width),
             "".ljust(width) + "".join(m.upper().rjust(16) for m in methods)]
    for metric in METRICS:
        cells = "".join(f"{summary['methods'][m][metric]['mean']:.3f} ± {summary['methods'][m][metric]['std']:.3f}"
                        .rjust(16) for m in methods)
        lines.append(LABELS[metric].ljust(width) + cells)
    if summary.get("rehearsal"):
        lines.insert(0, "REHEARSAL (random weights): these accuracies mean nothing")
    return "\n".join(lines)
