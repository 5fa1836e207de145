"""The rules' retries as Snakemake reads them from the sizing estimates (its API; a dry run does not print them)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import yaml

from helpers import REPO
from ddb import sizing
from ddb.config import load_config


RULE_RETRIES = """
import sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path(sys.argv[1]), workdir=Path.cwd(),
                            config_settings=ConfigSettings(configfiles=[Path("config.yaml").absolute()]))
    for rule in workflow._workflow.rules:
        print(rule.name, rule._restart_times)
"""


def test_a_capped_celeba_retraining_gets_an_attempt_per_allocation_and_one_more(tmp_path):
    """The rules' `retries` as Snakemake reads them (its API; a dry run does not print them)."""
    config = {"seed": 0, "targets": ["celeba"],
              "datasets": {"celeba": {"format": "celeba", "root": str(tmp_path / "celeba"),
                                      "resources": {"max": {"runtime": 30}}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-c", RULE_RETRIES, str(REPO / "Snakefile")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO / "workflow")})
    assert result.returncode == 0, result.stderr[-3000:]
    retries = dict(line.split() for line in result.stdout.splitlines() if line.count(" ") == 1)
    loaded = load_config(tmp_path / "config.yaml")
    total = sizing.rule_estimate("retrain", loaded["datasets"]["celeba"], loaded["resources"])["minutes"]
    assert total > 60  # 200 epochs of CelebA: several 30-minute allocations
    assert retries["retrain"] == retries["tune_retrain"] == str(math.ceil(total / 30))  # ceil(total/cap) + 1 attempts
    # ERM's 100 epochs need allocations of their own; generation is never retried for time
    erm = sizing.rule_estimate("train_erm", loaded["datasets"]["celeba"], loaded["resources"])["minutes"]
    assert erm > 30 and retries["train_erm"] == str(math.ceil(erm / 30))
    assert retries["inpaint"] == "None"
