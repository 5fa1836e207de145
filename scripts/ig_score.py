"""Rule ig_score: ρ and softmax for one shard of generated images."""
from dataclasses import asdict

from ddb.ig_scoring import score_shard
from ddb.storage.shards import ImageShard
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_parquet
from ddb.job_stats import report_setup
from ddb.models.classifier import load_classifier
from ddb.precision import classifier_precision
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings


@run_step
def main(job):
    settings = dataset_settings(job.params.cfg, job.wildcards.ds)
    classifier = settings.classifier
    manifest = read_parquet(job.input.manifest)
    model, _ = load_classifier(job.input.model, device())
    index = read_parquet(job.input.index)
    report_setup(int(index["has_image"].sum()))
    scores = score_shard(model, index, ImageShard(job.input.generated),
                         ImageShard(job.input.masks), dict(zip(manifest["sample_id"], manifest["path"])),
                         image_size=classifier.image_size, ig=settings.ig, device=device(),
                         transform=classifier.transform, precision=classifier_precision(asdict(classifier), device()))
    write_parquet(scores, job.output[0])


main(snakemake)
