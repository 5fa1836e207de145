"""ddb.paths is the one home of artifact paths: every file a rule writes is one of its ARTIFACTS (or a log,
a benchmark or a report file), and `ddb inspect` finds a run's files through the same names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from ddb.inspect import Results
from ddb.paths import ARTIFACTS, RunPaths, artifact_path

REPO = Path(__file__).resolve().parents[1]
RUN = r"(demo/seed-\d+|demo)"


def pattern(template: str) -> re.Pattern:
    regex = re.escape(template)
    for name in ("cls", "src", "dst", "cand", "n"):
        regex = regex.replace(re.escape("{" + name + "}"), r"[^/]+")
    return re.compile(regex)


def test_every_planned_output_is_a_named_artifact(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["seeds"] = [0, 1]  # the demo tunes P and runs DFR: every kind of artifact is planned
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", "config.yaml",
               "--cores", "1", "-n", "--", "results/demo/summary.json", "visualize_all"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    outputs = {path.strip() for line in re.findall(r"^\s+output: (.+)$", result.stdout + result.stderr, re.M)
               for path in line.split(",")}
    assert len(outputs) > 50
    templates = [pattern(template) for template in ARTIFACTS.values()]
    unnamed = []
    for path in outputs:
        match = re.fullmatch(rf"results/{RUN}/(.+)", path)
        relative = match.group(2) if match else path
        if relative.startswith("report/"):  # the report's own files, under the named report_dir
            continue
        if not any(t.fullmatch(relative) for t in templates):
            unnamed.append(path)
    assert not unnamed, unnamed


def test_inspect_reads_the_same_paths(tmp_path):
    results = Results(tmp_path / "demo")
    assert results.manifest == artifact_path(tmp_path, "demo", "manifest")
    assert results.low_loss("waterbird") == tmp_path / "demo" / "low_loss" / "waterbird.parquet"
    assert results.eval_json == RunPaths(tmp_path / "demo").path("eval_json")
    assert results.prune_table("landbird", "waterbird") == tmp_path / "demo" / "prune" / "landbird_to_waterbird.parquet"
