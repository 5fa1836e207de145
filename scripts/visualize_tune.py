"""Rule visualize_tune: the tuning candidates side by side (report/tune.html, report/tune.csv)."""
from ddb.scripting import run_step
from ddb.visualize import write_tune_tables


@run_step
def main(job):
    write_tune_tables(job.input.table, job.input.selected, job.output.html, job.output.csv)


main(snakemake)
