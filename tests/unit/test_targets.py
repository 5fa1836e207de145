"""A mistyped target names what exists (ddb.targets): the config's datasets for an unknown dataset, the
artifacts of a run for an unknown file, through the `snakemake` command as a user types it."""

from __future__ import annotations

from conftest import run_snakemake, small_config, write_config
from ddb.targets import describe_unknown_target

RUNS = ["demo", "waterbirds", "waterbirds/seed-1"]
CLASSES = {"demo": ["landbird", "waterbird"], "waterbirds": ["landbird", "waterbird"]}


def test_an_unknown_dataset_lists_the_datasets_of_the_config():
    line = describe_unknown_target("results/waterbird/eval.json", "results", RUNS, CLASSES)
    assert line == ("results/waterbird/eval.json: 'waterbird' is no dataset of the config (did you mean "
                    "results/waterbirds/eval.json?); its datasets are demo, waterbirds (config key `datasets`; "
                    "each is a folder results/<dataset>/)")


def test_an_unknown_file_lists_the_artifacts_of_a_run():
    line = describe_unknown_target("./results/waterbirds/seed-1/evall.json", "results/", RUNS, CLASSES)
    assert line.startswith("./results/waterbirds/seed-1/evall.json: no artifact 'evall.json' in "
                           "results/waterbirds/seed-1/ (did you mean results/waterbirds/seed-1/eval.json?); "
                           "the artifacts of a run are data/manifest.parquet, ")
    assert "masks/{src}/shard-{n}.tar" in line and "retrain/model.pt" in line
    wrong_value = describe_unknown_target("results/demo/low_loss/cat.parquet", "results", RUNS, CLASSES)
    assert "has the form of low_loss/{cls}.parquet" in wrong_value
    assert "classes of demo are landbird, waterbird" in wrong_value
    outside = describe_unknown_target("output/demo/eval.json", "results", RUNS, CLASSES)
    assert outside.endswith("every file DDB makes lies under results/ (config key `results`)")


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
