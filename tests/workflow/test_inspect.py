"""`ddb inspect` on the finished demo run: the numbers it prints are the numbers in the Parquet tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import REPO, run_paths
from ddb.storage.shards import ImageShard
from ddb.paths import RunPaths



def inspect(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    result = subprocess.run([sys.executable, "-m", "ddb", "inspect", *args], cwd=workdir, capture_output=True,
                            text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    return result


def line_of(output: str, step: str) -> str:
    lines = [line for line in output.splitlines() if line.split()[:1] == [step]]
    assert len(lines) == 1, f"no single line for {step!r} in:\n{output}"
    return lines[0]


def table_rows(output: str) -> list[list[str]]:
    """Rows of a printed table (below its dashed rule), split on runs of 2+ spaces."""
    import re

    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1:] if line.strip()]


@pytest.fixture(scope="module")
def paths(demo_run) -> RunPaths:
    return run_paths(demo_run)


@pytest.fixture(scope="module")
def overview(demo_run) -> str:
    return inspect(demo_run, "results/demo").stdout


def test_overview_has_one_line_per_step(overview):
    from ddb.presenters.overview import STEP_NAMES

    for step in STEP_NAMES:
        line_of(overview, step)
    # the demo fixture runs `all`, which does not include the grids
    assert "not run yet" in line_of(overview, "visualize")
    assert "not run yet" not in overview.replace(line_of(overview, "visualize"), "")


def test_overview_numbers_match_the_tables(overview, paths):
    manifest = pd.read_parquet(paths.path("manifest"))
    line = line_of(overview, "prepare_dataset")
    assert f" {len(manifest)} " in line
    train = manifest[manifest["split"] == "train"].groupby("group").size()
    for group, n in train.items():
        assert f"{group} {n}" in line
    for split in ("val", "test"):
        assert f"{split} {int((manifest['split'] == split).sum())}" in line

    psi = pd.read_parquet(paths.path("psi"))
    line = line_of(overview, "mean_softmax")
    for row in psi.to_dict("records"):
        assert f"{row['class_name']} K={row['k']} Ψ={row['psi']:.4f}" in line

    masks = pd.concat([pd.read_parquet(p) for p in paths.glob("mask_index")])
    line = line_of(overview, "mask")
    assert f"masks detected {int(masks['detected'].sum())} of {len(masks)}" in line

    generated = pd.concat([pd.read_parquet(p) for p in paths.glob("inpaint_index")])
    line = line_of(overview, "inpaint")
    assert f"generated {int(generated['has_image'].sum())} of {len(generated)}" in line
    n_png = sum(len(ImageShard(p)) for p in paths.glob("inpaint_tar"))
    assert line.split()[2:4] == [str(len(generated)), str(n_png)]  # rows, images columns

    prune = pd.concat([pd.read_parquet(p) for p in paths.glob("prune")])
    line = line_of(overview, "prune")
    kept = int(prune["keep"].sum())
    assert f"kept {kept} of {len(prune)} ({100 * kept / len(prune):.1f} %)" in line
    for reason in ("still_source", "low_ig", "no_mask"):
        assert f"{reason} {int((prune['reason'] == reason).sum())}" in line

    report = json.loads((paths.path("eval_json")).read_text())
    line = line_of(overview, "evaluate")
    assert (f"WGA ERM {report['erm']['worst_group_accuracy']:.3f} → DDB {report['ddb']['worst_group_accuracy']:.3f}"
            in line)
    assert f"mean {report['erm']['mean_accuracy']:.3f} → {report['ddb']['mean_accuracy']:.3f}" in line
    assert f"(DFR {report['dfr']['worst_group_accuracy']:.3f})" in line

    selection = pd.read_parquet(paths.path("dfr_selection"))
    assert f"C={selection.loc[selection['selected'], 'C'].iloc[0]:g} selected of {len(selection)}" in line_of(overview, "dfr")

    history = pd.read_parquet(paths.path("retrain_history"))
    selected = int(history.loc[history["selected"], "epoch"].iloc[0])
    assert f"selected epoch {selected}" in line_of(overview, "retrain")


def test_overview_json(demo_run, paths):
    payload = json.loads(inspect(demo_run, "results/demo", "--json").stdout)
    steps = {s["step"]: s for s in payload["steps"]}
    prune = pd.concat([pd.read_parquet(p) for p in paths.glob("prune")])
    assert steps["prune"]["data"]["kept"] == int(prune["keep"].sum())
    assert steps["prune"]["data"]["low_ig"] == int((prune["reason"] == "low_ig").sum())
    assert steps["visualize"]["status"] == "missing"
    assert payload["classes"] == ["landbird", "waterbird"]


def test_step_prune_table(demo_run, paths):
    out = inspect(demo_run, "results/demo", "--step", "prune").stdout
    rows = {r[0]: r for r in table_rows(out)}
    for pair, path in paths.find("prune"):
        table = pd.read_parquet(path)
        src, dst = pair["src"], pair["dst"]
        row = rows[f"{src}→{dst}"]
        counts = table["reason"].value_counts()
        assert row[1:4] == [str(len(table)), str(int(table["keep"].sum())),
                            f"{100 * table['keep'].mean():.1f} %"]
        assert row[4:7] == [str(int(counts.get(r, 0))) for r in ("still_source", "low_ig", "no_mask")]
    assert rows["total"][1] == str(sum(len(pd.read_parquet(p)) for p in paths.glob("prune")))


def test_step_aliases_and_every_step_prints(demo_run):
    assert inspect(demo_run, "results/demo", "--step", "psi").stdout == \
        inspect(demo_run, "results/demo", "--step", "mean_softmax").stdout
    for step in ("data", "erm", "ti", "low_loss", "masks", "inpaint", "ig", "retrain", "dfr", "eval"):
        out = inspect(demo_run, "results/demo", "--step", step).stdout
        assert "not run yet" not in out and "---" in out, out
    bad = inspect(demo_run, "results/demo", "--step", "nonsense", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("ddb: --step: unknown step")


def test_step_evaluate_matches_eval_json(demo_run, paths):
    report = json.loads((paths.path("eval_json")).read_text())
    out = inspect(demo_run, "results/demo", "--step", "evaluate").stdout
    header = next(line for line in out.splitlines() if line.startswith("group"))
    assert header.split()[3:6] == ["ERM", "DFR", "DDB"]  # DFR, the baseline, between ERM and DDB
    rows = {r[0]: r for r in table_rows(out)}
    for group, accuracy in report["erm"]["group_accuracy"].items():
        assert rows[group][3].split()[0] == f"{accuracy:.3f}"
        assert rows[group][4].split()[0] == f"{report['dfr']['group_accuracy'][group]:.3f}"
        assert rows[group][5].split()[0] == f"{report['ddb']['group_accuracy'][group]:.3f}"
    assert rows["WORST-GROUP ACCURACY"][1:4] == [f"{report[m]['worst_group_accuracy']:.3f}" for m in ("erm", "dfr", "ddb")]


def test_sample_trace_follows_a_generation(demo_run, paths):
    verdicts = pd.read_parquet(paths.path("prune", src="waterbird", dst="landbird"))
    for keep in (True, False):
        verdict = verdicts[verdicts["keep"] == keep].iloc[0]
        out = inspect(demo_run, "results/demo", "--sample", verdict["source_id"]).stdout
        mask = pd.concat([pd.read_parquet(p) for p in paths.glob("mask_index", src="waterbird")])
        mask_row = mask[mask["sample_id"] == verdict["source_id"]].iloc[0]
        assert f"area {100 * mask_row['area']:.1f} %" in line_of(out, "mask")
        assert f"{verdict['sample_id']}.png" in line_of(out, "inpaint")
        ig = pd.concat([pd.read_parquet(p) for p in paths.glob("ig_scores", src="waterbird", dst="landbird")])
        ig_row = ig[ig["sample_id"] == verdict["sample_id"]].iloc[0]
        assert f"ρ {ig_row['rho']:.4f}" in line_of(out, "ig_score")
        assert f"p(landbird) {ig_row['p_target']:.4f}" in line_of(out, "ig_score")
        prune_line = line_of(out, "prune")
        assert ("KEPT" in prune_line) if keep else (f"PRUNED ({verdict['reason']})" in prune_line)
        assert f"{verdict['p_source']:.4f}/{verdict['psi_source']:.4f}" in prune_line
        assert ("trained on" if keep else "not used") in line_of(out, "retrain")
    # a generated id resolves to its source and restricts the trace to its pair
    out = inspect(demo_run, "results/demo", "--sample", verdict["sample_id"]).stdout
    assert f"generated from {verdict['source_id']}" in out


def test_sample_trace_of_a_test_image_and_an_unknown_id(demo_run, paths):
    manifest = pd.read_parquet(paths.path("manifest"))
    row = manifest[manifest["split"] == "test"].iloc[0]
    out = inspect(demo_run, "results/demo", "--sample", row["sample_id"]).stdout
    assert "not a generation source" in line_of(out, "mask")
    report = json.loads((paths.path("eval_json")).read_text())
    assert f"ERM {report['erm']['group_accuracy'][row['group']]:.3f}" in line_of(out, "evaluate")
    bad = inspect(demo_run, "results/demo", "--sample", "nope123", check=False)
    assert bad.returncode == 1 and "nope123" in bad.stderr and "Traceback" not in bad.stderr


def test_missing_artifacts_are_not_run_yet(paths, tmp_path):
    partial = run_paths(tmp_path)
    shutil.copytree(paths.folder("manifest"), partial.folder("manifest"), ignore=shutil.ignore_patterns("synthetic"))
    for cls in ("landbird", "waterbird"):
        shutil.copytree(paths.folder("mask_tar", src=cls), partial.folder("mask_tar", src=cls))
    out = inspect(tmp_path, "results/demo").stdout
    for step in ("train_erm", "textual_inversion", "mean_softmax", "inpaint", "ig_score", "prune", "retrain",
                 "evaluate", "visualize"):
        assert "not run yet" in line_of(out, step)
    assert "not run yet" not in line_of(out, "mask")
    assert "not run yet" in inspect(tmp_path, "results/demo", "--step", "prune").stdout
    source = pd.read_parquet(paths.glob("mask_index", src="landbird")[0])["sample_id"].iloc[0]
    trace = inspect(tmp_path, "results/demo", "--sample", source).stdout
    assert "not run yet" in line_of(trace, "prune")


def test_missing_folder_and_parent_folder(demo_run, tmp_path):
    result = inspect(tmp_path, "results/nothing", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "results/nothing" in result.stderr
    parent = inspect(demo_run, "results", check=False)
    assert parent.returncode == 1 and "results/demo" in parent.stderr


def test_console_script(demo_run):
    script = shutil.which("ddb")
    if script is None:
        pytest.skip("the ddb console script is not installed (pip install -e .)")
    result = subprocess.run([script, "inspect", "results/demo", "--step", "psi"], cwd=demo_run,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO / "workflow")})
    assert result.returncode == 0, result.stderr
    assert "Ψ" in result.stdout
