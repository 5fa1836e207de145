"""A mistyped target on the `snakemake` command line, as a user types it, is named with what exists."""

from __future__ import annotations

from helpers import run_snakemake, small_config, write_config


def test_the_command_line_names_every_mistyped_target(tmp_path):
    write_config(tmp_path, small_config())
    result = run_snakemake(tmp_path, "-n", "results/waterbird/eval.json", "results/demo/evall.json", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "targets: no rule makes these targets:" in output
    assert "results/waterbird/eval.json: 'waterbird' is no dataset of the config; its datasets are demo" in output
    assert "results/demo/evall.json: no artifact 'evall.json' in results/demo/ (did you mean " \
           "results/demo/eval.json?)" in output
    assert "MissingRuleException" not in output
    # the right target after `--` plans as before
    planned = run_snakemake(tmp_path, "-n", "--", "results/demo/erm/model.pt")
    assert "train_erm" in planned.stdout + planned.stderr
