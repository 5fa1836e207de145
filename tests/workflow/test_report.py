"""`snakemake --report` on the demo: one self-contained HTML file with the eval table, the pruning
counts, Ψ, the curves and the image grids, each under its step's category with its caption."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from helpers import run_paths, run_snakemake, target



def embedded(uri: str) -> bytes:
    return base64.b64decode(uri.split("base64,", 1)[1])


def js_object(html: str, name: str):
    """The JSON literal assigned to ``var <name> = ...`` in the report's scripts."""
    match = re.search(rf"var {name} = (?=[{{\[\"])", html)
    assert match, f"no `var {name}` in the report"
    value, _ = json.JSONDecoder().raw_decode(html, match.end())
    return value


@pytest.fixture(scope="module")
def report(demo_run, tmp_path_factory) -> tuple[Path, str]:
    """Visualize and report in one call, as the docs say: returns (workdir, the report's HTML)."""
    workdir = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(demo_run, workdir, symlinks=True)
    run_snakemake(workdir, "--cores", "2", "visualize_all", "--report", "results/report.html", "--report-after-run")
    path = workdir / "results" / "report.html"
    assert path.exists()
    return workdir, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def results(report) -> dict:
    return js_object(report[1], "results")


def test_categories_by_step(report):
    categories = js_object(report[1], "categories")
    assert sorted(categories) == ["1. evaluate", "2. retrain", "3. prune", "4. mask, inpaint, ig_score",
                                  "5. select_low_loss, mean_softmax", "6. textual_inversion"]
    assert all(list(sub) == ["demo"] for sub in categories.values())  # subcategory: the dataset
    assert sorted(categories["4. mask, inpaint, ig_score"]["demo"]) == [
        target("report_pairs", pair="landbird_to_waterbird"), target("report_pairs", pair="waterbird_to_landbird")]
    assert target("report_prune_html") in categories["3. prune"]["demo"]
    assert target("eval_json") in categories["1. evaluate"]["demo"]


def test_report_contains_the_eval_table(report, results):
    workdir, _ = report
    entry = results[target("report_eval_html")]
    assert entry["mime_type"] == "text/html" and "worst-group accuracy" in entry["caption"]
    table = embedded(entry["data_uri"]).decode()
    evaluation = json.loads(run_paths(workdir).path("eval_json").read_text())
    assert "<table>" in table
    for model in ("erm", "ddb"):
        for key in ("worst_group_accuracy", "mean_accuracy", "weighted_mean_accuracy"):
            assert f"{evaluation[model][key]:.3f}" in table
        for group, accuracy in evaluation[model]["group_accuracy"].items():
            assert group in table and f"{accuracy:.3f}" in table


def test_report_contains_prune_counts_and_psi(report, results):
    import pandas as pd

    workdir, _ = report
    prune = embedded(results[target("report_prune_html")]["data_uri"]).decode()
    found = run_paths(workdir).find("prune")
    assert len(found) == 2
    for pair, path in found:
        table = pd.read_parquet(path)
        src, dst = pair["src"], pair["dst"]
        row = re.search(rf"<tr><td>{src} → {dst}</td>(.*?)</tr>", prune).group(1)
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert cells[:2] == [str(len(table)), str(int(table["keep"].sum()))]
        assert cells[3:6] == [str(int((table["reason"] == r).sum())) for r in ("still_source", "low_ig", "no_mask")]
    psi = embedded(results[target("report_psi_html")]["data_uri"]).decode()
    for row in pd.read_parquet(run_paths(workdir).path("psi")).to_dict("records"):
        assert f"{row['psi']:.6f}" in psi


def test_report_contains_the_image_grids_and_curves(report, results):
    workdir, _ = report
    pngs = [path for path, entry in results.items() if entry["mime_type"] == "image/png"]
    assert len(pngs) == 6
    for path in pngs:
        data = embedded(results[path]["data_uri"])
        assert data == (workdir / path).read_bytes()  # the very file, embedded
        assert Image.open(io.BytesIO(data)).format == "PNG"
    grid = results[target("report_pairs", pair="landbird_to_waterbird")]
    assert grid["labels"] == {"pair": "landbird_to_waterbird", "figure": "source | mask | generated | IG"}
    assert "IG heat map" in grid["caption"] and "landbird_to_waterbird" in grid["caption"]
    assert "validation" in results[target("report_retrain_curves")]["caption"]


def test_report_is_self_contained_and_described(report):
    workdir, html = report
    description = js_object(html, "workflow_desc")
    assert "Diffusion Driven Balancing" in description and "ddb inspect" in description
    assert "demo" in description  # the config's targets, through the Jinja of report/workflow.rst
    # no reference to a file next to the report: every result is a data URI
    assert not re.search(r'src="(?!data:|https?:)[^"]+\.png"', html)


def test_plain_report_without_targets(report):
    """`snakemake --report` with the default target (rule all) works too and holds eval.json."""
    workdir, _ = report
    run_snakemake(workdir, "--report", "results/all.html")
    results = js_object((workdir / "results/all.html").read_text(encoding="utf-8"), "results")
    assert list(results) == [target("eval_json")]
