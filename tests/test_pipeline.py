"""End to end: the reduced demo DAG through Snakemake's CLI, as a user runs it."""

import json

import numpy as np
import pandas as pd
import yaml

from conftest import REPO, planned_jobs, run_snakemake, small_config, write_config
from ddb.io import ImageShard

RULES = ["prepare_dataset", "train_erm", "textual_inversion", "select_low_loss", "mean_softmax", "mask",
         "inpaint", "ig_score", "prune", "retrain", "dfr", "evaluate"]


def test_dry_run_lists_every_rule_of_the_method(tmp_path):
    write_config(tmp_path, small_config())
    jobs = planned_jobs(tmp_path)
    assert {rule: jobs.get(rule) for rule in RULES} == {
        "prepare_dataset": 1, "train_erm": 1, "textual_inversion": 2, "select_low_loss": 2, "mean_softmax": 1,
        "mask": 4, "inpaint": 4, "ig_score": 4, "prune": 2, "retrain": 1, "dfr": 1, "evaluate": 1}


def test_repo_default_target_is_the_demo_eval():
    result = run_snakemake(REPO, "-n", "--quiet", "rules", "--directory", str(REPO))
    assert "evaluate" in result.stdout and "prepare_dataset" in result.stdout or "Nothing to be done" in result.stdout


def test_demo_run_writes_every_artifact(demo_run):
    results = demo_run / "results" / "demo"
    expected = ["data/manifest.parquet", "data/groups.parquet", "erm/model.pt", "erm/history.parquet", "psi.parquet",
                "retrain/model.pt", "retrain/history.parquet", "eval.json", "eval.parquet"]
    for cls in ("landbird", "waterbird"):
        expected += [f"textual_inversion/{cls}/learned_embeds.safetensors", f"textual_inversion/{cls}/samples.parquet",
                     f"textual_inversion/{cls}/loss.parquet", f"low_loss/{cls}.parquet"]
        expected += [f"masks/{cls}/shard-{n}.{ext}" for n in (0, 1) for ext in ("tar", "parquet")]
    for pair in ("landbird_to_waterbird", "waterbird_to_landbird"):
        expected += [f"inpaint/{pair}/shard-{n}.{ext}" for n in (0, 1) for ext in ("tar", "parquet")]
        expected += [f"ig/{pair}/shard-{n}.parquet" for n in (0, 1)] + [f"prune/{pair}.parquet"]
    missing = [path for path in expected if not (results / path).is_file()]
    assert not missing
    assert not list(results.rglob("*.partial")) and not list(results.rglob(".*.tmp"))


def test_eval_json_has_the_promised_shape_and_real_numbers(demo_run):
    report = json.loads((demo_run / "results/demo/eval.json").read_text())
    table = pd.read_parquet(demo_run / "results/demo/eval.parquet")
    manifest = pd.read_parquet(demo_run / "results/demo/data/manifest.parquet")
    test_sizes = manifest[manifest["split"] == "test"].groupby("group").size().to_dict()
    train_sizes = manifest[manifest["split"] == "train"].groupby("group").size().to_dict()
    assert report["dataset"] == "demo" and set(report) == {"dataset", "erm", "dfr", "ddb"}
    for model in ("erm", "dfr", "ddb"):
        metrics = report[model]
        assert set(metrics) == {"worst_group_accuracy", "mean_accuracy", "weighted_mean_accuracy",
                                "group_accuracy", "group_size"}
        accuracy = metrics["group_accuracy"]
        assert metrics["group_size"] == test_sizes
        assert all(0 <= value <= 1 for value in accuracy.values())
        assert metrics["worst_group_accuracy"] == min(accuracy.values())
        assert np.isclose(metrics["mean_accuracy"],
                          sum(accuracy[g] * test_sizes[g] for g in accuracy) / sum(test_sizes.values()))
        assert np.isclose(metrics["weighted_mean_accuracy"],
                          sum(accuracy[g] * train_sizes[g] for g in accuracy) / sum(train_sizes.values()))
        rows = table[table["model"] == model].set_index("group")
        assert rows["accuracy"].to_dict() == accuracy and rows["n_test"].to_dict() == test_sizes
    output = (demo_run / "snakemake.out").read_text()
    assert "WORST-GROUP ACCURACY" in output  # printed at the end of the run


def test_generated_images_are_labelled_target_and_pruning_records_reasons(demo_run):
    results = demo_run / "results/demo"
    index = pd.read_parquet(results / "inpaint/landbird_to_waterbird/shard-0.parquet")
    assert (index["y"] == 1).all() and (index["source_y"] == 0).all()
    shard = ImageShard(results / "inpaint/landbird_to_waterbird/shard-0.tar")
    assert sorted(shard.ids()) == sorted(index.loc[index["has_image"], "sample_id"])
    verdicts = pd.read_parquet(results / "prune/landbird_to_waterbird.parquet")
    scores = pd.concat([pd.read_parquet(results / f"ig/landbird_to_waterbird/shard-{n}.parquet") for n in (0, 1)])
    assert sorted(verdicts["sample_id"]) == sorted(scores["sample_id"])
    assert set(verdicts["reason"]) <= {"kept", "still_source", "low_ig", "no_mask"}
    history = pd.read_parquet(results / "retrain/history.parquet")
    assert history["selected"].sum() == 1 and {"loss_ce", "loss_gen_0", "loss_gen_1"} <= set(history.columns)


def test_a_step_runs_from_a_local_model_folder(demo_copy):
    """The "local path" route: the tiny inpainter saved with save_pretrained, then used by the inpaint rule."""
    from ddb.models.diffusion import save_tiny_pipeline

    folder = demo_copy / "results/demo/inpaint/landbird_to_waterbird"
    before = {n: np.asarray(ImageShard(folder / f"shard-{n}.tar").image(i), dtype=int)
              for n in (0, 1) for i in ImageShard(folder / f"shard-{n}.tar").ids()}
    save_tiny_pipeline(demo_copy / "my_inpainter", seed=0)
    config = yaml.safe_load((demo_copy / "config.yaml").read_text())
    config["datasets"]["demo"]["inpainting"]["model"] = "my_inpainter"
    write_config(demo_copy, config)
    assert planned_jobs(demo_copy)["inpaint"] == 4
    run_snakemake(demo_copy, "--cores", "2")
    after = {n: np.asarray(ImageShard(folder / f"shard-{n}.tar").image(i), dtype=int)
             for n in (0, 1) for i in ImageShard(folder / f"shard-{n}.tar").ids()}
    # same weights through from_pretrained: the same images (float rounding may move a pixel by 1)
    assert len(after) == len(before) > 0
    assert max(np.abs(after[k] - before[k]).max() for k in before) <= 1


def test_the_default_demo_shows_ddb_lifting_worst_group_accuracy(tmp_path):
    """The repo's own demo config, from scratch, as `snakemake --cores 2` runs it (about 4 minutes)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"] = {"demo": config["datasets"]["demo"]}
    config["targets"] = ["demo"]
    write_config(tmp_path, config)
    run_snakemake(tmp_path, "--cores", "2")
    report = json.loads((tmp_path / "results/demo/eval.json").read_text())
    erm, ddb = report["erm"]["worst_group_accuracy"], report["ddb"]["worst_group_accuracy"]
    assert erm <= 0.1  # ERM learned the background
    assert ddb > erm and ddb - erm >= 0.15, (erm, ddb)
