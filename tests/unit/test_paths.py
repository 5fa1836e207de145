"""ddb.paths is the one home of artifact paths, and `ddb inspect` finds a run's files through the same names."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddb.results.reader import Results
from ddb.paths import ARTIFACTS, RunPaths, artifact_path, report_file, report_folder, run_folder_of, wildcards_of


def test_inspect_reads_the_same_paths(tmp_path):
    results = Results(tmp_path / "demo")
    assert results.manifest == artifact_path(tmp_path, "demo", "manifest")
    assert results.low_loss("waterbird") == tmp_path / "demo" / "low_loss" / "waterbird.parquet"
    assert results.eval_json == RunPaths(tmp_path / "demo").path("eval_json")
    assert results.prune_table("landbird", "waterbird") == tmp_path / "demo" / "prune" / "landbird_to_waterbird.parquet"


def touch(root: Path, *relative: str) -> None:
    for name in relative:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_find_reads_the_wildcards_back_from_the_files(tmp_path):
    touch(tmp_path, "masks/non_blond/shard-10.tar", "masks/non_blond/shard-2.tar", "masks/blond/shard-0.tar",
          "masks/blond/shard-0.parquet", "inpaint/non_blond_to_blond/shard-1.tar", "prune/non_blond_to_blond.parquet",
          "tune/P1_1-g1_1/prune/blond_to_non_blond.parquet", "masks/blond/notes.txt", "tune/selected.json")
    paths = RunPaths(tmp_path)
    # shard numbers sort as numbers; a class name may hold underscores; other files are not the artifact
    assert paths.find("mask_tar") == [({"src": "blond", "n": "0"}, tmp_path / "masks/blond/shard-0.tar"),
                                      ({"src": "non_blond", "n": "2"}, tmp_path / "masks/non_blond/shard-2.tar"),
                                      ({"src": "non_blond", "n": "10"}, tmp_path / "masks/non_blond/shard-10.tar")]
    assert paths.glob("mask_tar", src="blond") == [tmp_path / "masks/blond/shard-0.tar"]
    assert paths.find("inpaint_tar") == [({"src": "non_blond", "dst": "blond", "n": "1"},
                                          tmp_path / "inpaint/non_blond_to_blond/shard-1.tar")]
    assert paths.find("prune") == [({"src": "non_blond", "dst": "blond"}, tmp_path / "prune/non_blond_to_blond.parquet")]
    assert paths.find("ig_scores") == []
    # a folder artifact finds folders only: tune/selected.json is no candidate
    assert paths.find("tune_candidate_dir") == [({"cand": "P1_1-g1_1"}, tmp_path / "tune/P1_1-g1_1")]
    with pytest.raises(KeyError, match="no wildcard sr"):
        paths.find("mask_tar", sr="blond")  # a misspelt wildcard is an error, not "every shard"
    # read back from a single path
    shard = tmp_path / "masks/non_blond/shard-10.tar"
    assert paths.match("mask_tar", shard) == {"src": "non_blond", "n": "10"}
    assert paths.match("mask_index", shard) is None and paths.match("psi", tmp_path / "psi.parquet") == {}
    seed_run = Path("results/demo/seed-1/tune/P1_1-g1_1/retrain/model.pt")
    assert wildcards_of("tune_model", seed_run) == {"cand": "P1_1-g1_1"}
    assert run_folder_of("tune_model", seed_run) == Path("results/demo/seed-1")
    assert wildcards_of("tune_model", "results/demo/retrain/model.pt") is None
    # DDB's own prune tables: the run's, or those of the selected candidate (the given wildcards are not repeated)
    assert paths.ddb_find("prune", "P1_1-g1_1") == [({"src": "blond", "dst": "non_blond"},
                                                    tmp_path / "tune/P1_1-g1_1/prune/blond_to_non_blond.parquet")]
    assert paths.ddb_path("retrain_model", None) == tmp_path / "retrain/model.pt"
    assert paths.ddb_path("retrain_model", "P0_0") == tmp_path / "tune/P0_0/retrain/model.pt"


def test_find_takes_names_literally(tmp_path):
    touch(tmp_path, "masks/a[1]?/shard-0.tar", "masks/a1x/shard-0.tar", "prune/pro_to_con_to_anti.parquet")
    paths = RunPaths(tmp_path)
    # glob characters in a given name match themselves only
    assert paths.glob("mask_tar", src="a[1]?") == [tmp_path / "masks/a[1]?/shard-0.tar"]
    assert len(paths.glob("mask_tar")) == 2
    # a name may hold "_to_" when the other end is given (src alone stops at the first "_to_")
    assert paths.find("prune", dst="anti") == [({"src": "pro_to_con"}, tmp_path / "prune/pro_to_con_to_anti.parquet")]


def test_folders_and_report_files(tmp_path):
    paths = RunPaths(tmp_path)
    assert paths.folder("mask_tar", src="blond") == tmp_path / "masks/blond"
    assert paths.folder("inpaint_index", src="a", dst="b") == tmp_path / "inpaint/a_to_b"
    assert paths.folder("psi") == tmp_path
    report = paths.path("report_dir")
    assert report_file(report, "report_pairs", pair="a_to_b") == paths.path("report_pairs", pair="a_to_b")
    assert report_file(tmp_path / "elsewhere", "report_eval_html") == tmp_path / "elsewhere/eval.html"
    assert report_folder(report, "report_kept_vs_pruned") == tmp_path / "report/kept_vs_pruned"
    # every report file lies in the report folder
    for name, template in ARTIFACTS.items():
        assert name.startswith("report") == template.startswith(ARTIFACTS["report_dir"]), name
