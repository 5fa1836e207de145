"""Rule train_erm: the ERM classifier f (trained, or imported from erm.checkpoint)."""
from ddb.erm import train_erm
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_parquet
from ddb.models.classifier import save_classifier
from ddb.resume import TrainingCheckpoint, resume_path, runtime_note
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings


@run_step
def main(job):
    cfg = job.params.cfg
    settings = dataset_settings(cfg, job.wildcards.ds)
    manifest = read_parquet(job.input.manifest)
    # every epoch's checkpoint: a job killed mid-way (time limit) goes on from it when it runs again
    resume = TrainingCheckpoint(resume_path(job.output.model), "train_erm",
                                settings=[cfg, job.params.seed], fingerprint=job.fingerprint,
                                note=runtime_note(job))
    model, history = train_erm(manifest, settings, seed=job.params.seed, device=device(),
                               name=job.wildcards.ds, resume=resume)
    write_parquet(history, job.output.history)
    classifier = settings.classifier
    save_classifier(model, job.output.model, arch=classifier.arch, classes=settings.classes,
                    image_size=classifier.image_size, transform=classifier.transform)
    resume.remove()


main(snakemake)
