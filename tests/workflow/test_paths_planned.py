"""Every file a rule writes is one of ddb.paths' ARTIFACTS (or a log, a benchmark or a report file)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from ddb.paths import ARTIFACTS, RESULTS_ARTIFACTS


REPO = Path(__file__).resolve().parents[2]

RUN = r"(demo/seed-\d+|demo)"


def pattern(template: str) -> re.Pattern:
    regex = re.escape(template)
    for name in ("cls", "src", "dst", "cand", "n", "pair"):
        regex = regex.replace(re.escape("{" + name + "}"), r"[^/]+")
    return re.compile(regex)


def test_every_planned_output_is_a_named_artifact(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["seeds"] = [0, 1]  # the demo tunes P and runs DFR: every kind of artifact is planned
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", "config.yaml",
               "--cores", "1", "-n", "--", "results/demo/summary.json", "visualize_all", "paper_table"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    outputs = {path.strip() for line in re.findall(r"^\s+output: (.+)$", result.stdout + result.stderr, re.M)
               for path in line.split(",")}
    assert len(outputs) > 50
    # the directory() outputs: the report's grid folders
    folders = {str(Path(ARTIFACTS[name]).parent) for name in ("report_pairs", "report_kept_vs_pruned")}
    templates = [pattern(template) for template in [*ARTIFACTS.values(), *folders]]
    unnamed = []
    for path in outputs:
        match = re.fullmatch(rf"results/{RUN}/(.+)", path)
        if not match and path in {f"results/{name}" for name in RESULTS_ARTIFACTS.values()}:
            continue  # a file of the results folder itself (the table across datasets)
        relative = match.group(2) if match else path
        if not any(t.fullmatch(relative) for t in templates):
            unnamed.append(path)
    assert not unnamed, unnamed
