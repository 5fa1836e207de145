"""The `visualize` rule on the finished demo run: grids with the expected number of tiles (size
arithmetic), captions' figures equal to the Parquet tables, recomputed IG equal to the stored ρ."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import SMALL_DEMO, run_paths, run_snakemake, settings_of, target
from ddb.paths import ARTIFACTS, RunPaths, report_file
from ddb.visualize import grid_name


# The grid geometry, restated here so a change of layout is a deliberate change of this test too.
TILE, PAD, TITLE_H, HEADER_H, CAPTION_W, CAPTION_H, GALLERY_COLS, GAP = 128, 6, 30, 20, 250, 34, 4, 24
ROWS_PER_PAIR, GALLERY_PER_SIDE = 8, 8
PAIRS = ["landbird_to_waterbird", "waterbird_to_landbird"]


@pytest.fixture(scope="module")
def visualized(demo_run, tmp_path_factory) -> tuple[Path, float]:
    """A copy of the demo run with `visualize` done; returns (workdir, seconds the snakemake call took)."""
    workdir = tmp_path_factory.mktemp("visualized") / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)
    start = time.perf_counter()
    run_snakemake(workdir, "--cores", "2", target("report_eval_html"))
    return workdir, time.perf_counter() - start


@pytest.fixture(scope="module")
def report_dir(visualized) -> Path:
    return run_paths(visualized[0]).path("report_dir")


@pytest.fixture(scope="module")
def shown(report_dir) -> pd.DataFrame:
    return pd.read_csv(report_file(report_dir, "report_grid_samples"))


def verdicts(workdir: Path, pair: str) -> pd.DataFrame:
    src, dst = pair.split("_to_")
    return pd.read_parquet(run_paths(workdir).path("prune", src=src, dst=dst))


def test_visualize_ran_cleanly(visualized):
    workdir, seconds = visualized
    log = (workdir / "results" / "logs" / "visualize" / "demo.log").read_text()
    assert "pairs:" in log and "Traceback" not in log
    # a figure, not a pass/fail: speed goals live in benchmarks/
    print(f"snakemake visualize on the demo: {seconds:.1f} s")


def test_expected_files(report_dir):
    # every report file ddb.paths names (tune.html only with a `tune` section), a grid per pair
    names = [name for name in ARTIFACTS if name.startswith("report_") and name != "report_dir" and "tune" not in name]
    expected = {grid_name(name, pair) for name in names for pair in PAIRS}
    assert len(expected) == 9 + 2 * len(PAIRS)
    found = {p.relative_to(report_dir).as_posix() for p in report_dir.rglob("*")
             if p.is_file() and not p.name.startswith(".")}  # Snakemake marks directory outputs with a dotfile
    assert found == expected


def test_pair_grids_have_one_row_of_four_tiles_per_shown_sample(visualized, report_dir, shown):
    workdir, _ = visualized
    for pair in PAIRS:
        table = verdicts(workdir, pair)
        with_image = table[table["reason"] != "no_mask"]
        n_kept, n_pruned = int(with_image["keep"].sum()), int((~with_image["keep"]).sum())
        expect_pruned = min(n_pruned, ROWS_PER_PAIR // 2)
        expect_kept = min(n_kept, ROWS_PER_PAIR - expect_pruned)
        expect_pruned = min(n_pruned, ROWS_PER_PAIR - expect_kept)
        rows = shown[shown["grid"] == grid_name("report_pairs", pair)].sort_values("row")
        assert len(rows) == expect_kept + expect_pruned
        assert rows["keep"].tolist() == [True] * expect_kept + [False] * expect_pruned  # kept first
        with Image.open(report_file(report_dir, "report_pairs", pair=pair)) as image:
            width, height = image.size
        # 4 tile columns + the caption column; title, headings, then one row of tiles per sample
        assert width == PAD + 4 * (TILE + PAD) + CAPTION_W
        assert (height - TITLE_H - HEADER_H - PAD) % (TILE + PAD) == 0
        assert (height - TITLE_H - HEADER_H - PAD) // (TILE + PAD) == len(rows)


def test_galleries_show_kept_beside_pruned(visualized, report_dir, shown):
    workdir, _ = visualized
    for pair in PAIRS:
        table = verdicts(workdir, pair)
        with_image = table[table["reason"] != "no_mask"]
        n_kept = min(int(with_image["keep"].sum()), GALLERY_PER_SIDE)
        n_pruned = min(int((~with_image["keep"]).sum()), GALLERY_PER_SIDE)
        tiles = shown[shown["grid"] == grid_name("report_kept_vs_pruned", pair)]
        assert int(tiles["keep"].sum()) == n_kept and int((~tiles["keep"]).sum()) == n_pruned
        assert (tiles.loc[tiles["keep"], "col"] < GALLERY_COLS).all()       # kept: left half
        assert (tiles.loc[~tiles["keep"], "col"] >= GALLERY_COLS).all()     # pruned: right half
        rows = -(-max(n_kept, n_pruned, 1) // GALLERY_COLS)
        with Image.open(report_file(report_dir, "report_kept_vs_pruned", pair=pair)) as image:
            assert image.size == (PAD + 2 * GALLERY_COLS * (TILE + PAD) + GAP,
                                  TITLE_H + HEADER_H + rows * (TILE + CAPTION_H + PAD) + PAD)
        # each reason that occurs gets at least one tile on the pruned side
        reasons = set(with_image.loc[~with_image["keep"], "reason"])
        assert set(tiles.loc[~tiles["keep"], "reason"]) == reasons


def test_captions_figures_are_the_prune_tables(visualized, shown):
    workdir, _ = visualized
    for pair in PAIRS:
        table = verdicts(workdir, pair).set_index("sample_id")
        for row in shown[shown["grid"].str.endswith(f"/{pair}.png")].to_dict("records"):
            verdict = table.loc[row["sample_id"]]
            assert row["keep"] == bool(verdict["keep"]) and row["reason"] == verdict["reason"]
            assert row["rho"] == pytest.approx(verdict["rho"], rel=1e-5)
            assert row["ratio"] == pytest.approx(verdict["p_source"] / verdict["psi_source"], rel=1e-5)


def test_recomputed_attributions_reproduce_rho(shown):
    rows = shown[shown["grid"].isin([grid_name("report_pairs", pair) for pair in PAIRS])]
    assert len(rows) and rows["rho_recomputed"].notna().all()
    np.testing.assert_allclose(rows["rho_recomputed"], rows["rho"], rtol=1e-3, atol=1e-4)


def test_tables_match_the_artifacts(visualized, report_dir):
    paths = run_paths(visualized[0])
    report = json.loads(paths.path("eval_json").read_text())
    table = pd.read_csv(report_file(report_dir, "report_eval_csv")).set_index("group")
    for group, accuracy in report["erm"]["group_accuracy"].items():
        assert table.loc[group, "erm"] == pytest.approx(accuracy)
        assert table.loc[group, "ddb"] == pytest.approx(report["ddb"]["group_accuracy"][group])
    assert table.loc["worst_group_accuracy", "ddb"] == pytest.approx(report["ddb"]["worst_group_accuracy"])
    html = report_file(report_dir, "report_eval_html").read_text()
    assert f"{report['ddb']['worst_group_accuracy']:.3f}" in html and "(worst)" in html

    counts = pd.read_csv(report_file(report_dir, "report_prune_csv")).set_index("pair")
    for pair in PAIRS:
        verdict = verdicts(visualized[0], pair)
        assert counts.loc[pair, "generated"] == len(verdict)
        assert counts.loc[pair, "kept"] == int(verdict["keep"].sum())
        for reason in ("still_source", "low_ig", "no_mask"):
            assert counts.loc[pair, reason] == int((verdict["reason"] == reason).sum())

    psi = pd.read_parquet(paths.path("psi"))
    np.testing.assert_allclose(pd.read_csv(report_file(report_dir, "report_psi_csv"))["psi"], psi["psi"], rtol=1e-5)


def test_curves_are_pngs(report_dir):
    for name, size in (("report_retrain_curves", (1100, 400)), ("report_ti_curve", (700, 400))):
        with Image.open(report_file(report_dir, name)) as image:
            assert image.format == "PNG" and image.size == size


def test_grids_are_deterministic(visualized, report_dir, tmp_path):
    """Drawing again (same seed) picks the same samples and writes the same pixels."""
    import torch

    from ddb.visualize import visualize_dataset

    workdir, _ = visualized
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the rule ran with threads=1
    try:
        import os

        cwd = os.getcwd()
        os.chdir(workdir)  # manifest paths are relative to the workdir
        try:
            run = RunPaths("results/demo")
            inputs = {"manifest": run.path("manifest"), "erm": run.path("erm_model"),
                      "erm_history": run.path("erm_history"), "ti_loss": run.glob("ti_loss"), "psi": run.path("psi"),
                      "masks": run.glob("mask_tar"), "generated": run.glob("inpaint_tar"),
                      "generated_index": run.glob("inpaint_index"), "scores": run.glob("ig_scores"),
                      "prune": run.glob("prune"), "retrain_history": run.path("retrain_history"),
                      "eval_json": run.path("eval_json"), "eval_table": run.path("eval_table")}
            visualize_dataset(inputs, tmp_path, classes=["landbird", "waterbird"],
                              pairs=[("landbird", "waterbird"), ("waterbird", "landbird")],
                              image_size=SMALL_DEMO["classifier"]["image_size"],
                              resolution=SMALL_DEMO["inpainting"]["resolution"],
                              ig=settings_of("ig", **SMALL_DEMO["ig"]), seed=0)
        finally:
            os.chdir(cwd)
    finally:
        torch.set_num_threads(previous)
    again = pd.read_csv(report_file(tmp_path, "report_grid_samples"))
    first = pd.read_csv(report_file(report_dir, "report_grid_samples"))
    assert again[["grid", "row", "col", "sample_id"]].equals(first[["grid", "row", "col", "sample_id"]])
    for pair in PAIRS:
        for kind in ("report_pairs", "report_kept_vs_pruned"):
            a = np.asarray(Image.open(report_file(report_dir, kind, pair=pair)))
            b = np.asarray(Image.open(report_file(tmp_path, kind, pair=pair)))
            assert a.shape == b.shape
            assert (a != b).any(axis=-1).mean() < 0.001, f"{grid_name(kind, pair)} differs"


def test_inspect_lists_the_grids_and_the_tile_of_a_sample(visualized, shown):
    from test_inspect import inspect, line_of

    workdir, _ = visualized
    out = inspect(workdir, "results/demo").stdout
    assert "6 PNG" in line_of(out, "visualize")
    row = shown[shown["grid"] == grid_name("report_pairs", PAIRS[0])].iloc[0]
    trace = inspect(workdir, "results/demo", "--sample", row["sample_id"]).stdout
    assert ARTIFACTS["report_pairs"].format(pair=PAIRS[0]) in trace and f"row {int(row['row']) + 1}" in trace
