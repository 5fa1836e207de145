"""A sample sheet (format: table) through Snakemake: missing images found before planning, and the whole DAG
with tiny models (the sheet's own tests: tests/unit/test_datasets_table.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from helpers import REPO, run_paths, run_snakemake
from ddb.datasets import build_manifest
from ddb.datasets.roots import check_root
from ddb.errors import DDBError
from ddb.storage.reading import read_parquet

from test_datasets_table import RESOURCES, TINY, draw_collection, entry, write


def test_missing_images_are_counted_and_the_first_named_before_planning_and_nothing_is_written(tmp_path):
    root = tmp_path / "pets"
    table = draw_collection(root)
    write(table, root / "samples.csv")
    for number in (2, 3, 4, 5, 6, 7, 20):
        (root / table.loc[number, "image"]).unlink()
    cfg = entry(root, "samples.csv")
    expected = (r"column 'image': 7 image\(s\) listed do not exist .* the first at line 4: 'cat/indoor/img002.png', "
                r"'cat/indoor/img003.png', 'cat/indoor/img004.png', 'cat/indoor/img005.png', 'cat/outdoor/img006.png' "
                r"and 2 more")
    with pytest.raises(DDBError, match=expected):
        check_root("pets", cfg)
    with pytest.raises(DDBError, match=expected):
        build_manifest("pets", cfg, seed=0)
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = {"datasets": {"pets": {"format": "table", "root": str(root), "table": "samples.csv", "object": "pet"}},
              "targets": ["pets"]}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "-n", "--configfile", str(workdir / "config.yaml"), check=False)
    assert result.returncode != 0
    assert "7 image(s) listed do not exist" in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_the_whole_dag_runs_on_a_sheet_described_collection(tmp_path):
    root = tmp_path / "pets"
    table = draw_collection(root, masks=True)
    write(table, root / "samples.tsv")
    config = {"seed": 0, "targets": ["pets"], "resources": {"rules": RESOURCES},
              "datasets": {"pets": {"format": "table", "root": str(root), "table": "samples.tsv",
                                    "object": "animal", **TINY}}}  # one token of the tiny tokenizer
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    results = run_paths(workdir, "pets")
    run_snakemake(workdir, "--cores", "2", "--configfile", str(workdir / "config.yaml"), "--",
                  str(results.path("eval_json").relative_to(workdir)))
    manifest = read_parquet(results.path("manifest"))
    assert len(manifest) == len(table) and manifest["mask_path"].notna().all()
    for cls, group in (("cat", "cat_outdoor"), ("dog", "dog_indoor")):  # each class's smallest training group
        assert set(read_parquet(results.path("ti_samples", cls=cls))["group"]) == {group}
    masks = pd.concat([read_parquet(p) for p in results.glob("mask_index", src="cat")])
    assert masks["detected"].all()  # the sheet's mask files were read
    report = json.loads(results.path("eval_json").read_text())
    assert set(report["ddb"]["group_accuracy"]) == {"cat_indoor", "cat_outdoor", "dog_indoor", "dog_outdoor"}
    groups = read_parquet(results.path("groups")).set_index("group")
    assert groups.loc["cat_outdoor", "minority"] and not groups.loc["cat_indoor", "minority"]
    inspected = subprocess.run([sys.executable, "-m", "ddb", "inspect", "results/pets", "--json"], cwd=workdir,
                               capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "workflow")})
    assert inspected.returncode == 0, inspected.stderr
    payload = json.loads(inspected.stdout)
    steps = {step["step"]: step["status"] for step in payload["steps"]}
    assert payload["classes"] == ["cat", "dog"]
    assert [name for name, status in steps.items() if status != "done"] == ["tune", "visualize"]
