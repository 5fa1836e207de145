"""Rule mask: masks of one shard of one source class."""
from ddb.storage.reading import read_parquet
from ddb.job_stats import report_setup
from ddb.masking import make_masker, mask_shard, shard_rows, step_sources
from ddb.scripting import device, run_step
from ddb.sharding import check_shard_size


@run_step
def main(snakemake):
    cfg, seed = snakemake.params.cfg, snakemake.params.seed
    manifest = read_parquet(snakemake.input.manifest)
    sources = step_sources(manifest, cfg, snakemake.wildcards.src, seed=seed,
                           low_loss_path=(snakemake.input.low_loss or [None])[0])
    rows = shard_rows(sources, int(snakemake.wildcards.n), snakemake.params.shards)
    check_shard_size(len(rows), len(sources), cfg["generation"], snakemake.output.tar)
    masker = make_masker(cfg["masking"], seed=seed, device=device())
    report_setup(len(rows))
    index = mask_shard(rows, masker, cfg["masking"], snakemake.output.tar, snakemake.output.index)
    print(f"{len(index)} source images, {int(index['detected'].sum())} masks detected")


main(snakemake)
