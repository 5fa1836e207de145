"""Rule fetch_model: one hub model in the cache, and its record (ddb.models.fetching)."""
from ddb.storage.atomic import write_json
from ddb.models.fetching import fetch_model
from ddb.scripting import run_step


@run_step
def main(job):
    record = fetch_model(job.params.spec, log=lambda line: print(line, flush=True))
    print(f"{record['model']}: {record['requested_revision']} is {record['resolved_revision']}, "
          f"{len(record['files'])} files, {record['bytes'] / 1e9:.2f} GB in {record['cache_dir']}")
    write_json(record, job.output[0])


main(snakemake)
