"""The workflow profile (profiles/default/config.yaml), which Snakemake 9 loads for every run of this
Snakefile: `snakemake TARGET` runs as the README writes it, without --cores."""

from __future__ import annotations

import sys

import pytest

from helpers import REPO, run_snakemake, small_config, target, write_config


def test_a_target_builds_without_cores_on_the_command_line(tmp_path):
    write_config(tmp_path, small_config())
    result = run_snakemake(tmp_path, target("manifest"))  # no --cores: the profile's `cores: all`
    assert "1 of 1 steps (100%) done" in result.stdout + result.stderr
    assert (tmp_path / target("manifest")).is_file()


@pytest.mark.parametrize("argv, expected", [
    (["snakemake", "results/demo/eval.json"], {"rerun-incomplete": True, "cores": "all"}),
    # a cluster run's jobs keep their own threads: `cores` would cap them at this machine's CPU count
    (["snakemake", "--profile", "slurm", "results/demo/eval.json"], {"rerun-incomplete": True}),
    (["snakemake", "--executor=slurm"], {"rerun-incomplete": True}),
    (["snakemake", "-e", "slurm"], {"rerun-incomplete": True}),
])
def test_the_profile_keeps_rerun_incomplete_and_sets_cores_for_local_runs(monkeypatch, argv, expected):
    import yte

    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    profile = yte.process_yaml((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile == expected
