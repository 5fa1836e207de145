"""Rule paper_table: one table across the target datasets, ERM / DFR / DDB beside the paper's figures."""
from ddb.storage.atomic import write_text
from ddb.paper_table import build_rows, format_csv, format_markdown
from ddb.scripting import run_step
from ddb.storage.reading import read_json


@run_step
def main(snakemake):
    datasets = [{"name": name, "format": fmt, "report": read_json(path), "seeds": [snakemake.params.seed]}
                for name, fmt, path in zip(snakemake.params.datasets, snakemake.params.formats, snakemake.input.reports)]
    rows = build_rows(datasets)
    table = format_markdown(rows)
    print(table, flush=True)
    write_text(format_csv(rows), snakemake.output.csv)
    write_text(table, snakemake.output.table)


main(snakemake)
