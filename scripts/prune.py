"""Rule prune: keep/drop verdicts with reasons for one class pair."""
import pandas as pd

from ddb.io import read_parquet, write_parquet
from ddb.pruning import prune, reason_counts
from ddb.scripting import run_step


@run_step
def main(snakemake):
    cfg = snakemake.params.cfg["prune"]
    scores = pd.concat([read_parquet(path) for path in snakemake.input.scores], ignore_index=True)
    table = prune(scores, read_parquet(snakemake.input.psi), cfg["thresholds"], cfg["enabled"])
    print(f"kept {int(table['keep'].sum())} of {len(table)}: {reason_counts(table)}"
          + ("" if cfg["enabled"] else " (pruning disabled: every generated image kept)"))
    write_parquet(table, snakemake.output[0])


main(snakemake)
