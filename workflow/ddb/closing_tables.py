"""The tables a successful run prints at its end (the Snakefile's onsuccess): each target's comparison of ERM,
DFR and DDB with the warnings of its choices, each dataset's summary over its seeds, the table across datasets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from .paths import artifact_path, results_artifact_path


def print_closing_tables(results: str | Path, targets: Iterable[str], datasets: Iterable[str], seeds: bool,
                         started: float, write: Callable[[str], None] = print) -> None:
    """Print (``write``) eval.json's comparison of each of the ``targets`` that has one; with ``seeds`` (the
    config's `seeds` set), the summary over the seeds of each of the ``datasets``; and the table across
    datasets. A summary or table is printed only where it was written at or after ``started`` (the workflow's
    start, a time.time() value): the table of one made by an earlier run would mislead."""
    from .evaluate import format_comparison
    from .selection_checks import format_warnings
    from .summary import format_summary
    from .tuning import describe_selection

    for ds in targets:
        target = artifact_path(results, ds, "eval_json")
        if target.exists():
            summary = json.loads(target.read_text())
            tuned_line = describe_selection(summary)  # which tuned candidate DDB is (rules/tune.smk)
            # choices validation could not make (ddb.selection_checks): beside the figures they concern
            extra = [line for line in [tuned_line, *format_warnings(summary.get("warnings", []))] if line]
            write(f"\n{format_comparison(summary)}" + "".join(f"\n{line}" for line in extra) + "\n")
    for ds in datasets:
        summary_path = artifact_path(results, ds, "seed_summary")
        if seeds and summary_path.exists() and summary_path.stat().st_mtime >= started:
            write(f"\n{format_summary(json.loads(summary_path.read_text()))}\n")
    table = results_artifact_path(results, "paper_table")
    if table.exists() and table.stat().st_mtime >= started:
        write(f"\n{table}:\n{table.read_text()}")

