"""Rule evaluate: ERM, DFR and DDB on the test split."""
from ddb.dfr import dfr_precision
from ddb.evaluate import evaluate_models, format_comparison
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_json, write_parquet
from ddb.models.classifier import load_classifier
from ddb.precision import classifier_precision
from ddb.scripting import device, run_step
from ddb.tuning import describe_selection, selected_model


@run_step
def main(snakemake):
    cfg = snakemake.params.cfg
    manifest = read_parquet(snakemake.input.manifest)
    models = {"erm": load_classifier(snakemake.input.erm, device())[0]}
    dfr = snakemake.input.get("dfr")  # the DFR baseline, where the dataset's `dfr` section is enabled
    if dfr:
        models["dfr"] = load_classifier(dfr if isinstance(dfr, str) else dfr[0], device())[0]
    # DDB's model: retrain's, or with a `tune` section the selected candidate's alone (ddb.tuning)
    ddb_path, tuned = selected_model(snakemake.input.get("tune"), snakemake.input.ddb)
    models["ddb"] = load_classifier(ddb_path, device())[0]
    # the `random:` models of the dataset entry (rules/retrain.smk); a rehearsal is marked in eval.json
    random_models = dict(getattr(snakemake.params, "random_models", None) or {})
    # DFR's model computes in float32 (ddb.dfr.dfr_precision), as its features did; the others as configured
    precision = {name: classifier_precision(cfg["classifier"], device()) for name in models}
    if "dfr" in models:
        precision["dfr"] = dfr_precision(cfg["classifier"], device())
    report, table = evaluate_models(models, manifest, cfg["classifier"]["image_size"], cfg["retrain"]["batch_size"],
                                    device(), snakemake.wildcards.ds, cfg["classifier"]["transform"],
                                    random_models=random_models, precision=precision)
    if tuned:
        report["tune"] = tuned  # which candidate DDB is, chosen on validation
    print(format_comparison(report))
    if tuned:
        print(describe_selection(report))
    write_parquet(table, snakemake.output.table)
    write_json(report, snakemake.output.json)


main(snakemake)
