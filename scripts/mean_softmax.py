"""Rule mean_softmax: Ψ per class from the low-loss tables."""
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_parquet
from ddb.low_loss import mean_softmax
from ddb.scripting import run_step


@run_step
def main(job):
    classes = job.params.cfg["classes"]
    tables = {y: read_parquet(path, ["sample_id", "y", "softmax"]) for y, path in enumerate(job.input)}
    psi = mean_softmax(tables, classes)
    print(psi.to_string(index=False))
    write_parquet(psi, job.output[0])


main(snakemake)
