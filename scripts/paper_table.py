"""Rule paper_table: one table across the target datasets, ERM / DFR / DDB beside the paper's figures."""
from ddb.storage.atomic import write_text
from ddb.paper_table import build_rows, format_csv, format_markdown
from ddb.scripting import run_step
from ddb.storage.reading import read_json


@run_step
def main(job):
    datasets = [{"name": name, "format": fmt, "report": read_json(path), "seeds": [job.params.seed]}
                for name, fmt, path in zip(job.params.datasets, job.params.formats, job.input.reports)]
    rows = build_rows(datasets)
    table = format_markdown(rows)
    print(table, flush=True)
    write_text(format_csv(rows), job.output.csv)
    write_text(table, job.output.table)


main(snakemake)
