"""Rule tune_select: every candidate's validation figures and kept counts; the best validation WGA wins."""
from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_json, write_parquet
from ddb.paths import wildcards_of
from ddb.scripting import run_step
from ddb.tuning import candidate_record, select, selection


@run_step
def main(job):
    classes = job.params.classes
    histories = {wildcards_of("tune_history", path)["cand"]: path for path in job.input.histories}
    prune_tables = {}
    for path in job.input.prune:
        prune_tables.setdefault(wildcards_of("tune_prune", path)["cand"], []).append(path)
    records = [candidate_record(candidate, [read_parquet(p) for p in prune_tables.get(candidate["name"], [])],
                                read_parquet(histories[candidate["name"]]), classes)
               for candidate in job.params.candidates]
    table = select(records)
    chosen = selection(table, job.wildcards.ds, classes)
    for row in table.to_dict("records"):
        print(f"{row['candidate']}: kept {row['kept_total']} · val WGA {row['val_worst_group_accuracy']:.3f} · "
              f"val mean {row['val_mean_accuracy']:.3f} (epoch {row['epoch']})" + ("  <- selected" if row["selected"] else ""))
    print(f"selected {chosen['selected']} ({chosen['rule']})")
    write_parquet(table, job.output.table)
    write_json(chosen, job.output.selected)


main(snakemake)
