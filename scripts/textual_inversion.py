"""Rule textual_inversion: the learned token of one class."""
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_parquet
from ddb.job_stats import report_setup
from ddb.models.diffusion import load_text_to_image_components
from ddb.resume import TrainingCheckpoint, resume_path, runtime_note
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings
from ddb.textual_inversion import choose_images, learn_token, save_embeddings


@run_step
def main(job):
    cfg, name, cls, seed = job.params.cfg, job.wildcards.ds, job.wildcards.cls, job.params.seed
    settings = dataset_settings(cfg, name)
    ti = settings.textual_inversion
    manifest = read_parquet(job.input.manifest)
    y = settings.classes.index(cls)
    images = choose_images(manifest, y, ti, seed=seed, name=name, minority_group=settings.minority_group(y))
    components = load_text_to_image_components(ti.model, seed=seed, device=device(),
                                               config_key=f"datasets.{name}.textual_inversion.model")
    report_setup(ti.steps, "steps")
    # a checkpoint every textual_inversion.checkpoint_every steps: a killed job goes on from it
    resume = TrainingCheckpoint(resume_path(job.output.embeds), f"textual_inversion ({cls})",
                                settings=[cfg, seed, cls], fingerprint=job.fingerprint, note=runtime_note(job))
    learned, losses = learn_token(components, images, cls, ti, seed=seed, device=device(), name=name, resume=resume)
    write_parquet(images, job.output.samples)
    write_parquet(losses, job.output.loss)
    save_embeddings(learned, job.output.embeds)
    resume.remove()


main(snakemake)
