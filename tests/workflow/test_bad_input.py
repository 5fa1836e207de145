"""Bad input, clear error, nothing lost; guard rails.

Each case runs the real `snakemake` on a copy of the finished demo and checks: a non-zero exit, one
message naming the cause and the fix (no traceback), and every artifact under results/ unchanged.
Mistakes in the config (keys, types, ranges, class names, model paths) stop the run while Snakemake
parses it, before any job starts. Problems only a job can see (a corrupt image, a textual-inversion
set larger than its pool) stop that job with one message; see each test for what the job's own stale
outputs become. An empty class is not an error: retraining goes on with the real data and says so.
"""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from helpers import SMALL_DEMO, planned_jobs, run_paths, run_snakemake, small_config, write_config

from _reliability import changed_files, snapshot


def fails_cleanly(workdir: Path, *messages: str, args=("--cores", "1")) -> str:
    """Run snakemake; assert it fails with ``messages`` in one place, no traceback, results unchanged."""
    before = snapshot(workdir)
    result = run_snakemake(workdir, *args, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for message in messages:
        assert message in output, f"{message!r} not in:\n{output[-3000:]}"
    assert "fix:" in output and "Traceback" not in output, output[-3000:]
    # a failed generation job may leave its (empty) checkpoint folder, never an artifact
    after = {k: v for k, v in snapshot(workdir).items() if ".partial/" not in k}
    assert changed_files(before, after) == {"added": [], "removed": [], "modified": []}
    return output


def demo_with(section: str, **change) -> dict:
    return small_config(**{section: {**SMALL_DEMO[section], **change}})


@pytest.mark.parametrize("config, messages", [
    pytest.param({**small_config(), "datasets": {"demo": {**SMALL_DEMO, "prun": {"thresholds": [0, 0]}}}},
                 ["datasets.demo: Additional properties are not allowed ('prun' was unexpected)",
                  "allowed keys here: [", "'prune'"], id="misspelt-key"),
    pytest.param(demo_with("low_loss", k=-5), ["datasets.demo.low_loss.k: -5 is less than the minimum of 1"],
                 id="negative-K"),
    pytest.param(demo_with("prune", thresholds=["high", 0.0]),
                 ["datasets.demo.prune.thresholds.0: 'high' is not of type 'number'"], id="P-as-string"),
    pytest.param(demo_with("generation", shards=0), ["datasets.demo.generation.shards: 0 is less than the minimum"],
                 id="zero-shards"),
    pytest.param({**small_config(), "seed": "zero"}, ["seed: 'zero' is not of type 'integer'"], id="seed-type"),
    pytest.param(small_config(classes=["landbird", "waterbird", "seabird"], prune={"thresholds": [0, 0, 0]},
                              retrain={**SMALL_DEMO["retrain"], "gammas": [1, 1, 1]}),
                 ["datasets.demo.classes: lists 3 classes", "['seabird'] are not in it"], id="class-not-in-dataset"),
    pytest.param(demo_with("inpainting", model="./models/sd-2-inpainting"),
                 ["datasets.demo.inpainting.model: the local path './models/sd-2-inpainting' does not exist"],
                 id="missing-model-path"),
    pytest.param(demo_with("erm", checkpoint="erm/resnet50_waterbirds.pt"),
                 ["datasets.demo.erm.checkpoint: the local path 'erm/resnet50_waterbirds.pt' does not exist"],
                 id="missing-checkpoint"),
])
def test_config_mistake_stops_before_any_job(demo_copy, config, messages):
    write_config(demo_copy, config)
    fails_cleanly(demo_copy, *messages)


@pytest.fixture(scope="module")
def text_to_image_folder(tmp_path_factory):
    """The tiny SD text-to-image pipeline (4-channel UNet) saved with save_pretrained."""
    from diffusers import StableDiffusionPipeline

    from ddb.models.diffusion import tiny_components

    folder = tmp_path_factory.mktemp("models") / "tiny-sd-base"
    StableDiffusionPipeline(**tiny_components(0, in_channels=4), safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder)
    return folder


def test_model_folder_of_the_wrong_architecture(demo_copy, text_to_image_folder, tmp_path):
    write_config(demo_copy, demo_with("inpainting", model=str(text_to_image_folder)))
    fails_cleanly(demo_copy, "datasets.demo.inpainting.model", "has a UNet with 4 input channels, not an "
                  "inpainting UNet (9)", "sd2-community/stable-diffusion-2-inpainting")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    write_config(demo_copy, demo_with("inpainting", model=str(empty)))
    fails_cleanly(demo_copy, "is not a Stable Diffusion folder (no unet/config.json in it)", "save_pretrained")


def test_corrupt_image_names_the_file_and_keeps_every_artifact(demo_copy):
    """The mask shard that reads the image is lost (deleted here); its rerun stops at the image."""
    masks = demo_copy / "results/demo/masks/landbird/shard-0"
    first = pd.read_parquet(f"{masks}.parquet")["sample_id"].iloc[0]
    manifest = pd.read_parquet(demo_copy / "results/demo/data/manifest.parquet").set_index("sample_id")
    image = demo_copy / manifest.loc[first, "path"]
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    for suffix in (".tar", ".parquet"):
        Path(f"{masks}{suffix}").unlink()
    output = fails_cleanly(demo_copy, f"{manifest.loc[first, 'path']}: corrupt or truncated image",
                           "replace the file", "(rule mask,")
    assert output.count("corrupt or truncated image") == 1


def test_textual_inversion_set_larger_than_its_pool(demo_copy):
    """Found by the job itself (the pool is the class's minority group in the manifest). Snakemake
    removes a job's previous outputs before running it, so the two stale token files are gone; every
    other artifact (manifest, generated shards, models, eval) is unchanged."""
    write_config(demo_copy, demo_with("textual_inversion", num_images=500))
    before = snapshot(demo_copy)
    result = run_snakemake(demo_copy, "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "datasets.demo.textual_inversion.num_images: asks for 500 images but the minority group" in output
    assert "fix: set num_images to at most" in output and "Traceback" not in output
    changes = changed_files(before, snapshot(demo_copy))
    assert changes["added"] == [] and changes["modified"] == []
    assert {Path(p).parent.name for p in changes["removed"]} <= {"landbird", "waterbird"}
    assert all("/textual_inversion/" in p for p in changes["removed"])


def test_no_generation_survives_pruning_retrains_on_real_data_and_says_so(demo_copy):
    write_config(demo_copy, demo_with("prune", thresholds=[1e9, 1e9]))
    result = run_snakemake(demo_copy, "--cores", "2")
    output = result.stdout + result.stderr
    for name in ("landbird", "waterbird"):
        assert (f"no generated sample labelled {name} survived pruning: its term L_gen adds 0 and retraining "
                "continues with the real data") in output
    paths = run_paths(demo_copy)
    pruned = pd.concat([pd.read_parquet(p) for p in paths.glob("prune")])
    assert not pruned["keep"].any() and set(pruned["reason"]) <= {"low_ig", "still_source", "no_mask"}
    history = pd.read_parquet(paths.path("retrain_history"))
    assert (history[["loss_gen_0", "loss_gen_1"]] == 0).all().all()
    assert history["loss"].notna().all()
    assert paths.path("eval_json").exists()


def test_disk_full_write_is_one_message_and_keeps_the_previous_file(tmp_path, monkeypatch, capfd):
    import logging
    import sys

    from ddb.storage.shards import write_image_shard
    from ddb.storage.atomic import write_parquet
    from ddb.scripting import run_step

    # run_step is made for a one-job process: it redirects these and sets up logging; put them back after
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    monkeypatch.setattr(logging.getLogger("ddb"), "handlers", list(logging.getLogger("ddb").handlers))

    table, shard = tmp_path / "table.parquet", tmp_path / "shard.tar"
    write_parquet(pd.DataFrame({"a": [1, 2]}), table)
    write_image_shard([("x", b"old png")], shard, pd.DataFrame({"sample_id": ["x"]}), tmp_path / "shard.parquet")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    monkeypatch.setattr("tarfile.TarFile.addfile", full)

    @run_step
    def step(snakemake):
        write_parquet(pd.DataFrame({"a": [3]}), table)

    fake = SimpleNamespace(log=[str(tmp_path / "logs" / "step.log")], threads=1, resources=SimpleNamespace(),
                           input=[], params=[], wildcards={}, rule="step")
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as exit_:
        step(fake)
    torch.set_num_threads(threads)
    assert exit_.value.code == 1
    terminal = capfd.readouterr().err
    assert f"ddb: {table}: the disk is full; nothing was written" in terminal
    assert "fix: free space (or point results/ elsewhere) and rerun" in terminal and "Traceback" not in terminal

    with pytest.raises(Exception, match="the disk is full"):
        write_image_shard([("x", b"new png")], shard, pd.DataFrame({"sample_id": ["x"]}), tmp_path / "shard.parquet")
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # the previous files, and no temporary file left beside them


# ---- guard rails


def test_other_dataset_root_is_refused_unless_asked(demo_copy):
    write_config(demo_copy, small_config(root="results/demo/data/other_synthetic"))
    fails_cleanly(demo_copy, "root.txt: results of dataset 'demo' were made from root 'results/demo/data/synthetic'",
                  "--config allow_root_change=True")
    planned = planned_jobs(demo_copy, "--config", "allow_root_change=True")
    assert planned["prepare_dataset"] == 1 and planned["evaluate"] == 1
