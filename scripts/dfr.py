"""Rule dfr: Deep Feature Reweighting on the ERM model's features, the baseline beside DDB."""
from ddb.dfr import deep_feature_reweighting, dfr_precision
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_parquet
from ddb.models.classifier import load_classifier, save_classifier
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings


@run_step
def main(job):
    settings, output = dataset_settings(job.params.cfg, job.wildcards.ds), job.output
    manifest = read_parquet(job.input.manifest)
    model, meta = load_classifier(job.input.model, device())
    result = deep_feature_reweighting(model, manifest, settings, seed=job.params.seed, dataset=job.wildcards.ds,
                                      device=device(), precision=dfr_precision(settings.classifier, device()))
    print(f"selected C={result.fit.selected_c:g}, {result.fit.subsamples} balanced subsamples averaged", flush=True)
    print(result.fit.selection.to_string(index=False), flush=True)
    print(result.fit.halves_table.to_string(index=False), flush=True)
    write_parquet(result.fit.selection, output.selection)
    write_parquet(result.fit.halves_table, output.halves)
    write_parquet(result.coefficients, output.coefficients)
    write_parquet(result.features, output.features)
    save_classifier(result.model, output.model, arch=meta["arch"], classes=meta["classes"],
                    image_size=meta["image_size"], transform=meta.get("transform", settings.classifier.transform))


main(snakemake)
