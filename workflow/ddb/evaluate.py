"""Step ``evaluate``: ERM, DFR (the baseline, ``ddb.dfr``) and DDB on the test split, per group, WGA and
the two means."""

from __future__ import annotations

import pandas as pd

from .models.classifier import eval_transform
from .results.schema import MODELS
from .training import evaluate_groups, train_sizes_of


def evaluate_models(models: dict, manifest: pd.DataFrame, image_size: int, batch_size: int, device,
                    dataset_name: str, transform: str = "stretch",
                    random_models: dict | None = None, precision=None) -> tuple[dict, pd.DataFrame]:
    """Return the eval.json object and the per-group table (one row per model and group).

    ``random_models`` ({config key: ``random:`` ref}, :func:`ddb.models.loading.random_models_of`) marks a
    rehearsal: eval.json then says ``"rehearsal": true`` and lists them, so nobody takes its numbers for DDB's.
    ``precision`` (:mod:`ddb.precision`) is one setting for every model, or {model name: setting} (DFR's
    model runs in float32: :func:`ddb.dfr.dfr_precision`).
    """
    test = manifest[manifest["split"] == "test"]
    train_sizes = train_sizes_of(manifest)
    report, rows = {"dataset": dataset_name}, []
    if random_models:
        report.update(rehearsal=True, random_models=dict(sorted(random_models.items())), note=REHEARSAL_NOTE)
    for name, model in models.items():
        setting = precision.get(name) if isinstance(precision, dict) else precision
        metrics, per_group = evaluate_groups(model, test, eval_transform(image_size, transform), batch_size, device, train_sizes,
                                             precision=setting)
        report[name] = metrics
        for record in per_group.to_dict("records"):
            rows.append({"model": name, "group": record["group"], "accuracy": float(record["accuracy"]),
                         "n_test": int(record["n"]), "n_train": int(train_sizes.get(record["group"], 0)),
                         "worst_group": record["accuracy"] == metrics["worst_group_accuracy"]})
    return report, pd.DataFrame(rows)


REHEARSAL_NOTE = "a rehearsal with random weights: it measures time and memory; its accuracies mean nothing"


def rehearsal_banner(report: dict) -> str | None:
    """``REHEARSAL (random weights: ...): ...`` for a rehearsal's eval.json, None for a real run."""
    if not report.get("rehearsal"):
        return None
    refs = ", ".join(f"{key} {ref}" for key, ref in report.get("random_models", {}).items())
    return f"REHEARSAL ({refs}): {REHEARSAL_NOTE}"


def models_of(report: dict) -> list[str]:
    """The models of an eval.json in table order: erm, dfr (where present), ddb."""
    return [m for m in MODELS if m in report]


def format_comparison(report: dict) -> str:
    """A small table of the ERM, DFR and DDB figures, for the log and the end of a run."""
    models = models_of(report)
    groups = sorted(report[models[0]]["group_accuracy"])
    width = max(len(g) for g in groups + ["weighted mean accuracy"]) + 2
    lines = [f"{report['dataset']}: test accuracy".ljust(width) + "".join(m.upper().rjust(8) for m in models)]
    for g in groups:
        lines.append(g.ljust(width) + "".join(f"{report[m]['group_accuracy'][g]:8.3f}" for m in models))
    for key, label in (("worst_group_accuracy", "WORST-GROUP ACCURACY"), ("mean_accuracy", "mean accuracy"),
                       ("weighted_mean_accuracy", "weighted mean accuracy")):
        lines.append(label.ljust(width) + "".join(f"{report[m][key]:8.3f}" for m in models))
    banner = rehearsal_banner(report)
    return "\n".join([banner, *lines] if banner else lines)
