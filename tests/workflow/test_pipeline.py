"""End to end: the reduced demo DAG through Snakemake's CLI, as a user runs it."""

import json

import numpy as np
import pandas as pd
import yaml

from helpers import REPO, planned_jobs, run_paths, run_snakemake, small_config, write_config
from ddb.storage.shards import ImageShard
from ddb.selection_checks import CODES

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
    paths = run_paths(demo_run)
    expected = [paths.path(name) for name in ("manifest", "groups", "erm_model", "erm_history", "psi", "retrain_model",
                                              "retrain_history", "eval_json", "eval_table")]
    for cls in ("landbird", "waterbird"):
        expected += [paths.path(name, cls=cls) for name in ("ti_embeds", "ti_samples", "ti_loss", "low_loss")]
        expected += [paths.path(name, src=cls, n=n) for n in (0, 1) for name in ("mask_tar", "mask_index")]
    for src, dst in (("landbird", "waterbird"), ("waterbird", "landbird")):
        expected += [paths.path(name, src=src, dst=dst, n=n) for n in (0, 1)
                     for name in ("inpaint_tar", "inpaint_index", "ig_scores")]
        expected.append(paths.path("prune", src=src, dst=dst))
    assert len(expected) == 9 + 2 * 8 + 2 * 7
    missing = [path for path in expected if not path.is_file()]
    assert not missing
    assert not list(paths.root.rglob("*.partial")) and not list(paths.root.rglob(".*.tmp"))


def test_eval_json_has_the_promised_shape_and_real_numbers(demo_run):
    paths = run_paths(demo_run)
    report = json.loads(paths.path("eval_json").read_text())
    table = pd.read_parquet(paths.path("eval_table"))
    manifest = pd.read_parquet(paths.path("manifest"))
    test_sizes = manifest[manifest["split"] == "test"].groupby("group").size().to_dict()
    train_sizes = manifest[manifest["split"] == "train"].groupby("group").size().to_dict()
    assert report["dataset"] == "demo" and set(report) == {"dataset", "erm", "dfr", "ddb", "warnings"}
    # the reduced demo's validation split has 8 images per group, under validation.min_group_size (10)
    assert report["warnings"][0]["code"] == "small_validation_group" and "(8 images)" in report["warnings"][0]["message"]
    assert {w["code"] for w in report["warnings"]} <= set(CODES)
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
    paths = run_paths(demo_run)
    pair = {"src": "landbird", "dst": "waterbird"}
    index = pd.read_parquet(paths.path("inpaint_index", **pair, n=0))
    assert (index["y"] == 1).all() and (index["source_y"] == 0).all()
    shard = ImageShard(paths.path("inpaint_tar", **pair, n=0))
    assert sorted(shard.ids()) == sorted(index.loc[index["has_image"], "sample_id"])
    verdicts = pd.read_parquet(paths.path("prune", **pair))
    scores = pd.concat([pd.read_parquet(paths.path("ig_scores", **pair, n=n)) for n in (0, 1)])
    assert sorted(verdicts["sample_id"]) == sorted(scores["sample_id"])
    assert set(verdicts["reason"]) <= {"kept", "still_source", "low_ig", "no_mask"}
    history = pd.read_parquet(paths.path("retrain_history"))
    assert history["selected"].sum() == 1 and {"loss_ce", "loss_gen_0", "loss_gen_1"} <= set(history.columns)


def test_a_step_runs_from_a_local_model_folder(demo_copy):
    """The "local path" route: the tiny inpainter saved with save_pretrained, then used by the inpaint rule."""
    from ddb.models.diffusion import save_tiny_pipeline

    shards = {n: run_paths(demo_copy).path("inpaint_tar", src="landbird", dst="waterbird", n=n) for n in (0, 1)}
    before = {n: np.asarray(ImageShard(shards[n]).image(i), dtype=int) for n in shards for i in ImageShard(shards[n]).ids()}
    written = {n: shards[n].stat().st_mtime_ns for n in shards}
    save_tiny_pipeline(demo_copy / "my_inpainter", seed=0)
    config = yaml.safe_load((demo_copy / "config.yaml").read_text())
    config["datasets"]["demo"]["inpainting"]["model"] = "my_inpainter"
    write_config(demo_copy, config)
    assert planned_jobs(demo_copy)["inpaint"] == 4
    # the shards compared below, not what depends on them: IG, pruning and retraining load no inpainter
    run_snakemake(demo_copy, "--cores", "2", "--", *(str(shard.relative_to(demo_copy)) for shard in shards.values()))
    after = {n: np.asarray(ImageShard(shards[n]).image(i), dtype=int) for n in shards for i in ImageShard(shards[n]).ids()}
    assert all(shards[n].stat().st_mtime_ns > written[n] for n in shards)  # drawn again, by my_inpainter
    # same weights through from_pretrained: the same images (float rounding may move a pixel by 1)
    assert len(after) == len(before) > 0
    assert max(np.abs(after[k] - before[k]).max() for k in before) <= 1


def test_the_default_demo_shows_ddb_lifting_worst_group_accuracy(tmp_path):
    """The repo's own demo config, from scratch, as `snakemake --cores 2` runs it (5 minutes on 2 cores)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"] = {"demo": config["datasets"]["demo"]}
    config["targets"] = ["demo"]
    write_config(tmp_path, config)
    run_snakemake(tmp_path, "--cores", "2")
    report = json.loads(run_paths(tmp_path).path("eval_json").read_text())
    erm, ddb = report["erm"]["worst_group_accuracy"], report["ddb"]["worst_group_accuracy"]
    assert erm <= 0.1  # ERM learned the background
    assert ddb > erm and ddb - erm >= 0.15, (erm, ddb)
