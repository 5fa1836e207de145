"""Rule evaluate: ERM, DFR and DDB on the test split, and the choices validation could not make."""
import logging
from dataclasses import asdict
from pathlib import Path

from ddb.dfr import dfr_precision
from ddb.evaluate import evaluate_models, format_comparison
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_json, write_parquet
from ddb.models.classifier import load_classifier
from ddb.precision import classifier_precision
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings
from ddb.selection_checks import format_warnings, selection_warnings
from ddb.tuning import describe_selection, selected_history, selected_model


@run_step
def main(job):
    manifest = read_parquet(job.input.manifest)
    models = {"erm": load_classifier(job.input.erm, device())[0]}
    dfr = job.input.get("dfr")  # the DFR baseline, where the dataset's `dfr` section is enabled
    if dfr:
        models["dfr"] = load_classifier(one_path(dfr), device())[0]
    # DDB's model: retrain's, or with a `tune` section the selected candidate's alone (ddb.tuning)
    ddb_path, tuned = selected_model(job.input.get("tune"), job.input.ddb)
    models["ddb"] = load_classifier(ddb_path, device())[0]
    # the `random:` models of the dataset entry (rules/retrain.smk); a rehearsal is marked in eval.json
    random_models = dict(getattr(job.params, "random_models", None) or {})
    settings = dataset_settings(job.params.cfg, job.wildcards.ds)
    classifier = settings.classifier
    # DFR's model computes in float32 (ddb.dfr.dfr_precision), as its features did; the others as configured
    precision = {name: classifier_precision(asdict(classifier), device()) for name in models}
    if "dfr" in models:
        precision["dfr"] = dfr_precision(classifier, device())
    report, table = evaluate_models(models, manifest, classifier.image_size, settings.retrain.batch_size,
                                    device(), job.wildcards.ds, classifier.transform,
                                    random_models=random_models, precision=precision)
    if tuned:
        report["tune"] = tuned  # which candidate DDB is, chosen on validation
    warnings = run_warnings(job, manifest, tuned)
    if warnings:  # only then: a run whose choices were all made on validation keeps the eval.json it had
        report["warnings"] = warnings
    print(format_comparison(report))
    if tuned:
        print(describe_selection(report))
    for line in format_warnings(warnings):  # to the log and the terminal
        logging.getLogger("ddb.selection_checks").warning(line)
    write_parquet(table, job.output.table)
    write_json(report, job.output.json)


def one_path(value):
    """A named input of one file: the rule gives it as a file or as a list of one (an input function)."""
    return value if isinstance(value, Path) else value[0]


def run_warnings(job, manifest, tuned):
    """The choices made on validation that validation could not make (ddb.selection_checks)."""
    inputs = job.input
    history_path, step = one_path(inputs.ddb_history), "retrain"
    if tuned:
        history_path = selected_history(tuned["selected"], inputs.ddb_history)
        step = f"tune_retrain {tuned['selected']}"
    optional = lambda name: read_parquet(one_path(inputs.get(name))) if inputs.get(name) else None
    return selection_warnings(manifest=manifest, dataset=job.wildcards.ds, validation=job.params.validation,
                              erm_history=read_parquet(one_path(inputs.erm_history)),
                              erm_rule=job.params.erm_select_epoch, retrain_history=read_parquet(history_path),
                              retrain_step=step, candidates=optional("tune_candidates"),
                              dfr_selection=optional("dfr_selection"))


main(snakemake)
