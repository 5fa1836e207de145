"""ddb.results.reader opens a run folder without torch, and names a folder that is no run's in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO, run_paths
from ddb.errors import DDBError
from ddb.results.reader import NotAResultsFolder, Results, open_results, prune_counts, prune_counts_of
from ddb.storage.atomic import write_parquet


def test_the_reader_and_the_presenters_import_no_torch():
    code = ("import sys; import ddb.results.reader, ddb.results.tables, ddb.presenters.overview, "
            "ddb.presenters.trace; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO / "workflow")})
    assert result.stdout.strip() == "False", result.stderr


def test_a_missing_folder_a_file_and_a_parent_folder_are_one_line_errors(tmp_path):
    with pytest.raises(NotAResultsFolder, match="no such results folder") as missing:
        open_results(tmp_path / "nothing")
    assert isinstance(missing.value, DDBError) and missing.value.where == str(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotAResultsFolder, match="not a folder"):
        open_results(tmp_path / "file")
    run = run_paths(tmp_path)
    run.path("manifest").parent.mkdir(parents=True)
    with pytest.raises(NotAResultsFolder, match=r"holds the results of 1 dataset\(s\): pass one of .*results/demo"):
        open_results(tmp_path / "results")
    assert open_results(run.root).name == "demo"


def test_prune_counts_of_a_folder_are_those_of_its_tables_in_class_order(tmp_path):
    import pandas as pd

    paths = run_paths(tmp_path)
    table = pd.DataFrame({"sample_id": ["a", "b", "c"], "keep": [True, False, False],
                          "reason": ["kept", "low_ig", "no_mask"], "psi_source": 0.9, "threshold": 0.1})
    write_parquet(table.assign(y=1), paths.path("prune", src="waterbird", dst="landbird"))
    write_parquet(table.iloc[:2], paths.path("prune", src="landbird", dst="waterbird"))
    write_parquet(pd.DataFrame({"y": [0, 1], "class_name": ["landbird", "waterbird"], "sample_id": ["x", "y"]}),
                  paths.path("manifest"))
    counts = prune_counts(Results(paths.root))
    assert counts["pair"].tolist() == ["landbird_to_waterbird", "waterbird_to_landbird"]
    assert counts[["generated", "kept", "low_ig", "no_mask"]].values.tolist() == [[2, 1, 1, 0], [3, 1, 1, 1]]
    assert counts["kept_percent"].round(1).tolist() == [50.0, 33.3]
    assert counts.equals(prune_counts_of([("landbird", "waterbird", table.iloc[:2]),
                                          ("waterbird", "landbird", table.assign(y=1))]))
