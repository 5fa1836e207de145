"""Rule inpaint: one shard of class src redrawn as class dst."""
from ddb.inpainting import inpaint_shard, prompt_for, torch_dtype
from ddb.storage.shards import ImageShard
from ddb.storage.reading import read_parquet, safetensors_keys
from ddb.job_stats import report_setup
from ddb.masking import shard_rows, step_sources
from ddb.models.diffusion import load_inpaint_pipeline
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings
from ddb.sharding import check_shard_size


@run_step
def main(job):
    cfg, seed, wc = job.params.cfg, job.params.seed, job.wildcards
    settings = dataset_settings(cfg, wc.ds)
    inpainting = settings.inpainting
    src, dst = settings.classes.index(wc.src), settings.classes.index(wc.dst)
    manifest = read_parquet(job.input.manifest)
    sources = step_sources(manifest, settings, wc.src, seed=seed, low_loss_path=(job.input.low_loss or [None])[0])
    rows = shard_rows(sources, int(wc.n), job.params.shards)
    check_shard_size(len(rows), len(sources), cfg["generation"], job.output.tar)
    pipeline = load_inpaint_pipeline(inpainting.model, seed=seed, device=device(),
                                     dtype=torch_dtype(inpainting.dtype, device()), scheduler=inpainting.scheduler,
                                     config_key=f"datasets.{wc.ds}.inpainting.model")
    use_token = job.params.textual_inversion
    if use_token:
        token = str(job.input.token[0])  # diffusers takes a file as a string (a Path reads as a hub id)
        safetensors_keys(token)  # a truncated token is named here, not deep in diffusers
        pipeline.load_textual_inversion(token)
    prompt = prompt_for(wc.dst, inpainting, use_token)
    print(f"prompt: {prompt!r}", flush=True)
    report_setup(len(rows) * settings.generation.per_source)
    index = inpaint_shard(pipeline, rows, ImageShard(job.input.masks), read_parquet(job.input.mask_index),
                          source_y=src, target_y=dst, target_class=wc.dst, prompt=prompt,
                          inpainting=inpainting, seed=seed, tar_path=job.output.tar,
                          index_path=job.output.index, per_source=settings.generation.per_source,
                          fingerprint=job.fingerprint)
    print(f"{int(index['has_image'].sum())} of {len(index)} images generated")


main(snakemake)
