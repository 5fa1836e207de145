"""ddb.closing_tables: what a successful run prints at its end. Each target's comparison with the tuned
candidate and the warnings beside it; a summary over seeds and the table across datasets only where this
run wrote them."""

from __future__ import annotations

import json
import os

from test_summary import report

from ddb.closing_tables import print_closing_tables
from ddb.evaluate import format_comparison
from ddb.paths import artifact_path, results_artifact_path
from ddb.summary import format_summary, summarize

STARTED = 1_000_000.0


def write(path, text: str, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def printed(results, targets=("demo",), datasets=("demo", "celeba"), seeds=True) -> list[str]:
    lines = []
    print_closing_tables(results, list(targets), list(datasets), seeds, STARTED, write=lines.append)
    return lines


def test_a_targets_comparison_with_its_tuned_candidate_and_warnings(tmp_path):
    evaluated = {**report(0.5, 0.7, 0.8), "warnings": [{"step": "dfr", "message": "one C only"}],
                 "tune": {"selected": "P1_1-g1_1", "candidates": ["P0_0-g1_1", "P1_1-g1_1"], "thresholds": [1, 1],
                          "gammas": [1, 1], "rule": "best val WGA", "val_worst_group_accuracy": 0.75}}
    # eval.json is printed whenever it exists: a run with nothing to do still shows the figures
    write(artifact_path(tmp_path, "demo", "eval_json"), json.dumps(evaluated), STARTED - 10)
    assert printed(tmp_path, targets=["demo", "celeba"], seeds=False) == [
        f"\n{format_comparison(evaluated)}\nDDB is tuned candidate P1_1-g1_1 of 2: P (1, 1), γ (1, 1), chosen by "
        f"best val WGA (val WGA 0.750)\nWARNING (dfr): one C only\n"]


def test_summaries_and_the_table_only_where_this_run_wrote_them(tmp_path):
    summary, _ = summarize("demo", {0: report(0.1, 0.5, 0.9), 1: report(0.3, 0.6, 0.8)})
    write(artifact_path(tmp_path, "demo", "seed_summary"), json.dumps(summary), STARTED + 1)
    write(artifact_path(tmp_path, "celeba", "seed_summary"), json.dumps(summary), STARTED - 1)  # an earlier run's
    write(results_artifact_path(tmp_path, "paper_table"), "| table |\n", STARTED + 1)
    table = results_artifact_path(tmp_path, "paper_table")
    assert printed(tmp_path) == [f"\n{format_summary(summary)}\n", f"\n{table}:\n| table |\n"]
    assert printed(tmp_path, seeds=False) == [f"\n{table}:\n| table |\n"]  # without `seeds`, no summary
    os.utime(table, (STARTED - 1, STARTED - 1))
    assert printed(tmp_path, seeds=False) == []
