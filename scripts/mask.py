"""Rule mask: masks of one shard of one source class."""
from ddb.storage.reading import read_parquet
from ddb.job_stats import report_setup
from ddb.masking import make_masker, mask_shard, shard_rows, step_sources
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings
from ddb.sharding import check_shard_size


@run_step
def main(job):
    cfg, seed = job.params.cfg, job.params.seed
    settings = dataset_settings(cfg, job.wildcards.ds)
    manifest = read_parquet(job.input.manifest)
    sources = step_sources(manifest, settings, job.wildcards.src, seed=seed,
                           low_loss_path=(job.input.low_loss or [None])[0])
    rows = shard_rows(sources, int(job.wildcards.n), job.params.shards)
    check_shard_size(len(rows), len(sources), cfg["generation"], job.output.tar)
    masker = make_masker(settings.masking, seed=seed, device=device())
    report_setup(len(rows))
    index = mask_shard(rows, masker, settings.masking, job.output.tar, job.output.index, fingerprint=job.fingerprint)
    print(f"{len(index)} source images, {int(index['detected'].sum())} masks detected")


main(snakemake)
