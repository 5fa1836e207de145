"""Rule prune: keep/drop verdicts with reasons for one class pair."""
import logging

import pandas as pd

from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_parquet
from ddb.pruning import prune, reason_counts
from ddb.scripting import run_step
from ddb.settings import dataset_settings


@run_step
def main(job):
    settings = dataset_settings(job.params.cfg, job.wildcards.ds).prune
    scores = pd.concat([read_parquet(path) for path in job.input.scores], ignore_index=True)
    table = prune(scores, read_parquet(job.input.psi), settings)
    counts = reason_counts(table)
    if counts["non_finite"]:
        logging.getLogger("ddb").warning("%d generated image(s) have a non-finite ρ or softmax (a diverged "
                                         "classifier?): dropped as non_finite", counts["non_finite"])
    print(f"kept {int(table['keep'].sum())} of {len(table)}: {counts}"
          + ("" if settings.enabled else " (pruning disabled: every generated image kept)"))
    write_parquet(table, job.output[0])


main(snakemake)
