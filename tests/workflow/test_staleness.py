"""Only stale steps rerun: what `snakemake -n` plans after each kind of edit of a finished demo run.

Each rerun trigger of Snakemake is shown on its own (`--rerun-triggers mtime|params|code`): an edited
input file, an edited rule parameter (a config section), an edited rule script, an edited module of
one step (its hash is a param of the rule: rules/common.smk, code_version). Every edit reruns that step
and its descendants only; editing documentation reruns nothing.
"""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import SMALL_DEMO, planned_jobs, run_paths, run_snakemake, small_config, target, write_config

from _reliability import (artifacts, assert_same_artifact, changed_files, copy_workflow, planned, snakemake,
                          snapshot)

DOWNSTREAM_OF_PRUNE = {"prune": 2, "retrain": 1, "evaluate": 1, "all": 1}
DOWNSTREAM_OF_IG = {"ig_score": 4, **DOWNSTREAM_OF_PRUNE}
DOWNSTREAM_OF_INPAINT = {"inpaint": 4, **DOWNSTREAM_OF_IG}


def test_finished_run_plans_nothing(demo_copy):
    assert planned_jobs(demo_copy) == {}


@pytest.mark.parametrize("section, change, expected", [
    ("prune", {"thresholds": [0.5, 0.5]}, DOWNSTREAM_OF_PRUNE),
    ("ig", {"n_steps": 6}, DOWNSTREAM_OF_IG),
    ("inpainting", {"steps": 3}, DOWNSTREAM_OF_INPAINT),
    ("textual_inversion", {"steps": 4}, {"textual_inversion": 2, **DOWNSTREAM_OF_INPAINT}),
    ("low_loss", {"k": 5}, {"select_low_loss": 2, "mean_softmax": 1, **DOWNSTREAM_OF_PRUNE}),
    ("retrain", {"epochs": 3}, {"retrain": 1, "evaluate": 1, "all": 1}),
], ids=lambda value: value if isinstance(value, str) else None)
def test_edited_parameter_reruns_its_step_and_descendants(demo_copy, section, change, expected):
    write_config(demo_copy, small_config(**{section: {**SMALL_DEMO[section], **change}}))
    assert planned_jobs(demo_copy, "--rerun-triggers", "params") == expected
    assert planned_jobs(demo_copy) == expected  # the default (every trigger) plans the same


def test_edited_input_file_reruns_its_readers_and_descendants(demo_copy):
    psi = run_paths(demo_copy).path("psi")
    psi.touch()  # a newer file with the same bytes: Snakemake compares checksums, nothing to do
    assert planned_jobs(demo_copy, "--rerun-triggers", "mtime") == {}
    table = pd.read_parquet(psi)
    table["psi"] = table["psi"] * 0.5
    table.to_parquet(psi, index=False)
    assert planned_jobs(demo_copy, "--rerun-triggers", "mtime") == DOWNSTREAM_OF_PRUNE


@pytest.fixture
def workflow_copy(tmp_path):
    return copy_workflow(tmp_path / "workflow_copy")


def test_edited_code_reruns_only_that_step_and_descendants(demo_copy, workflow_copy):
    root = workflow_copy.parent
    dry_run = ("-n", "--quiet", "rules")
    assert planned(snakemake(workflow_copy, demo_copy, *dry_run)) == {}  # the copy itself changes nothing

    (root / "README.md").write_text("# ddb-workflow\n\nedited documentation\n")
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "notes.md").write_text("more documentation\n")
    assert planned(snakemake(workflow_copy, demo_copy, *dry_run)) == {}

    script = root / "scripts" / "prune.py"
    script.write_text(script.read_text() + "\n# edited\n")
    assert planned(snakemake(workflow_copy, demo_copy, *dry_run, "--rerun-triggers", "code")) == DOWNSTREAM_OF_PRUNE
    assert planned(snakemake(workflow_copy, demo_copy, *dry_run, "--rerun-triggers", "params")) == {}

    module = root / "workflow" / "ddb" / "inpainting.py"
    module.write_text(module.read_text() + "\n# edited\n")
    assert planned(snakemake(workflow_copy, demo_copy, *dry_run, "--rerun-triggers", "params")) == DOWNSTREAM_OF_INPAINT
    assert planned(snakemake(workflow_copy, demo_copy, *dry_run)) == DOWNSTREAM_OF_INPAINT


def test_deleted_shard_reruns_alone_and_comes_back_identical(demo_run, demo_copy):
    """Also the concurrency check: the demo ran with --cores 2; this shard and everything after it are
    recomputed with --cores 1 and must come back the same (Parquet tables equal, other files byte for byte)."""
    pair = {"src": "landbird", "dst": "waterbird"}
    shard = [target(name, **pair, n=1) for name in ("inpaint_index", "inpaint_tar")]
    for path in shard:
        (demo_copy / path).unlink()
    assert planned_jobs(demo_copy) == {"inpaint": 1, "ig_score": 1, "prune": 1, "retrain": 1, "evaluate": 1,
                                       "all": 1}
    before = snapshot(demo_copy)
    run_snakemake(demo_copy, "--cores", "1")
    changes = changed_files(before, snapshot(demo_copy))
    assert changes["removed"] == []
    assert changes["added"] == sorted(shard)
    rerun = {target("ig_scores", **pair, n=1), target("prune", **pair), target("retrain_model"),
             target("retrain_history"), target("eval_json"), target("eval_table")}
    assert set(changes["modified"]) <= rerun  # bytes may differ only where Parquet metadata is rewritten
    for name in artifacts(demo_copy):
        assert_same_artifact(demo_copy / "results" / name, demo_run / "results" / name)
