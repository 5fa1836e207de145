"""A config refused at load time stops the snakemake CLI with one line (the checks: tests/unit/test_config_checks.py)."""

from __future__ import annotations

from helpers import run_snakemake, small_config, write_config


def test_a_bad_seed_stops_snakemake_with_one_clean_message(tmp_path):
    write_config(tmp_path, small_config())
    (tmp_path / "seeds.yaml").write_text("seeds: [1, 2]\n")
    result = run_snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "seeds.yaml"), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert ("config.yaml: seed: 0 is not one of seeds [1, 2]: the run of `seed` lies in results/<dataset>/ and "
            "prepares the data every other seed reads\n  fix: add it to seeds or choose one of them (e.g. seed: 1)"
            in output)
    assert "Traceback" not in output and "KeyError" not in output
