"""Rule evaluate: ERM vs DDB on the test split."""
from ddb.evaluate import evaluate_models, format_comparison
from ddb.io import read_parquet, write_json, write_parquet
from ddb.models.classifier import load_classifier
from ddb.scripting import device, run_step


@run_step
def main(snakemake):
    cfg = snakemake.params.cfg
    manifest = read_parquet(snakemake.input.manifest)
    models = {"erm": load_classifier(snakemake.input.erm, device())[0],
              "ddb": load_classifier(snakemake.input.ddb, device())[0]}
    # the `random:` models of the dataset entry (rules/retrain.smk); a rehearsal is marked in eval.json
    random_models = dict(getattr(snakemake.params, "random_models", None) or {})
    report, table = evaluate_models(models, manifest, cfg["classifier"]["image_size"], cfg["retrain"]["batch_size"],
                                    device(), snakemake.wildcards.ds, cfg["classifier"]["transform"],
                                    random_models=random_models)
    print(format_comparison(report))
    write_parquet(table, snakemake.output.table)
    write_json(report, snakemake.output.json)


main(snakemake)
