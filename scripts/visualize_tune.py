"""Rule visualize_tune: the tuning candidates side by side (report/tune.html, report/tune.csv)."""
from ddb.scripting import run_step
from ddb.visualize import write_tune_tables


@run_step
def main(snakemake):
    write_tune_tables(snakemake.input.table, snakemake.input.selected, snakemake.output.html, snakemake.output.csv)


main(snakemake)
