"""A mistyped target names what exists (ddb.targets): the config's datasets for an unknown dataset, the
artifacts of a run for an unknown file."""

from __future__ import annotations

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
