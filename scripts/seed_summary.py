"""Rule seed_summary: mean ± std over the seeds of a dataset, per method."""
from ddb.storage.atomic import write_json, write_parquet
from ddb.scripting import run_step
from ddb.storage.reading import read_json
from ddb.summary import format_summary, summarize


@run_step
def main(job):
    reports = {seed: read_json(path) for seed, path in zip(job.params.seeds, job.input.evals)}
    summary, table = summarize(job.wildcards.ds, reports)
    print(format_summary(summary), flush=True)
    write_parquet(table, job.output.table)
    write_json(summary, job.output.json)


main(snakemake)
