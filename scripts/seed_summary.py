"""Rule seed_summary: mean ± std over the seeds of a dataset, per method."""
from ddb.storage.atomic import write_json, write_parquet
from ddb.scripting import run_step
from ddb.storage.reading import read_json
from ddb.summary import format_summary, summarize


@run_step
def main(snakemake):
    reports = {seed: read_json(path) for seed, path in zip(snakemake.params.seeds, snakemake.input.evals)}
    summary, table = summarize(snakemake.wildcards.ds, reports)
    print(format_summary(summary), flush=True)
    write_parquet(table, snakemake.output.table)
    write_json(summary, snakemake.output.json)


main(snakemake)
