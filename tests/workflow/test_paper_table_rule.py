"""The paper_table rule: planned only with several targets, written from their reports and printed at the end
of the run."""

import json

from helpers import planned_jobs, run_snakemake, small_config, write_config
from test_paper_table import DEMO


def test_rule_writes_the_table_from_the_targets_reports_and_the_run_prints_it(tmp_path):
    """Through Snakemake's CLI: two target datasets plan the table in `rule all`; the rule reads each target's
    eval.json (here hand-made, the other rules left out) and the run ends by printing the table."""
    config = small_config()
    config["datasets"]["other"] = dict(config["datasets"]["demo"])
    config["targets"] = ["demo", "other"]
    write_config(tmp_path, config)
    assert planned_jobs(tmp_path).get("paper_table") == 1
    for name in ("demo", "other"):
        report = tmp_path / "results" / name / "eval.json"
        report.parent.mkdir(parents=True)
        report.write_text(json.dumps({**DEMO, "dataset": name}))
    result = run_snakemake(tmp_path, "--cores", "1", "--allowed-rules", "paper_table", "--", "paper_table")
    table = (tmp_path / "results" / "paper_table.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[4:6]] == ["demo", "other"]
    assert table in (result.stdout + result.stderr).replace("\r", "")
    assert (tmp_path / "results" / "paper_table.csv").read_text().splitlines()[1].startswith("demo,synthetic,0,false,0.0,")


def test_the_demo_alone_does_not_plan_the_table(tmp_path):
    write_config(tmp_path, small_config())
    assert "paper_table" not in planned_jobs(tmp_path)
