"""Rule retrain: f fine-tuned on real + kept generated images."""

from ddb.storage.shards import ImageShard
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_parquet
from ddb.models.classifier import load_classifier, save_classifier
from ddb.resume import TrainingCheckpoint, resume_path, runtime_note
from ddb.retrain import retrain
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings


@run_step
def main(job):
    cfg = job.params.cfg
    settings = dataset_settings(cfg, job.wildcards.ds)
    manifest = read_parquet(job.input.manifest)
    erm_model, _ = load_classifier(job.input.model, device())
    shards = [ImageShard(path) for path in job.input.generated]
    where = {sample_id: shard for shard in shards for sample_id in shard.ids()}
    generated = {}
    for path in job.input.prune:
        kept = read_parquet(path)
        kept = kept[kept["keep"]]
        for sample_id, y in zip(kept["sample_id"], kept["y"]):
            generated.setdefault(int(y), []).append((where[sample_id], sample_id))
    print("kept generated images per label: " + ", ".join(
        f"{c}={len(generated.get(y, []))}" for y, c in enumerate(settings.classes)), flush=True)
    # every epoch's checkpoint: a job killed mid-way (time limit) goes on from it when it runs again
    resume = TrainingCheckpoint(resume_path(job.output.model), "retrain",
                                settings=[cfg, job.params.seed], fingerprint=job.fingerprint,
                                note=runtime_note(job))
    model, history = retrain(erm_model, manifest, generated, settings, seed=job.params.seed, device=device(),
                             resume=resume)
    write_parquet(history, job.output.history)
    classifier = settings.classifier
    save_classifier(model, job.output.model, arch=classifier.arch, classes=settings.classes,
                    image_size=classifier.image_size, transform=classifier.transform)
    resume.remove()


main(snakemake)
