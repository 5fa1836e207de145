"""Same seed, same results in process: the number of shards changes no generated image, and textual
inversion gives the same bytes run after run."""

from __future__ import annotations


import pytest

from _reliability import inpaint, make_generation, one_torch_thread  # noqa: F401


@pytest.mark.usefixtures("one_torch_thread")
def test_shard_count_changes_no_generated_image(tmp_path):
    """Seeds come from (global seed, target class, sample id): splitting 6 sources into 1, 2 or 3 shards
    (batches of 4, hence differently composed batches) gives the same PNG bytes per sample."""
    from ddb.storage.shards import ImageShard
    from ddb.masking import mask_shard, shard_rows

    generation = make_generation(tmp_path, n_sources=6)
    images = {}
    for shards in (1, 2, 3):
        for n in range(shards):
            folder = tmp_path / f"{shards}-shards" / str(n)
            rows = shard_rows(generation["rows"], n, shards)
            mask_index = mask_shard(rows, generation["masker"], generation["settings"].masking, folder / "masks.tar",
                                    folder / "masks.parquet")
            inpaint(generation, generation["pipeline"], folder, rows=rows, mask_index=mask_index,
                    masks=folder / "masks.tar", batch_size=4)
            shard = ImageShard(folder / "shard.tar")
            for sample_id in shard.ids():
                images.setdefault(sample_id, {})[shards] = shard.read_bytes(sample_id)
    assert len(images) == 6
    for sample_id, by_split in images.items():
        assert sorted(by_split) == [1, 2, 3], sample_id
        assert len(set(by_split.values())) == 1, f"{sample_id}: the shard count changed its image"


TEXTUAL_INVERSION_RUN = """
import sys
from pathlib import Path
import pandas as pd
sys.path.insert(0, {package!r})
from dataclasses import replace
from ddb.config import load_config, minority_group_name
from ddb.models.diffusion import load_text_to_image_components
from ddb.textual_inversion import choose_images, learn_token, save_embeddings
import torch
torch.set_num_threads(2)
cfg = load_config({config!r})["datasets"]["demo"]
from ddb.settings import dataset_settings
ti = replace(dataset_settings(cfg, "demo").textual_inversion, steps=40)
manifest = pd.read_parquet({manifest!r})
images = choose_images(manifest, 0, ti, seed=0, name="demo", minority_group=minority_group_name(cfg, 0))
learned, _ = learn_token(load_text_to_image_components(ti.model, seed=0), images, "landbird", ti, seed=0,
                         device="cpu")
save_embeddings(learned, sys.argv[1])
"""


def test_textual_inversion_on_the_demo_gives_the_same_bytes_five_times(tmp_path):
    """Five separate processes (two at a time, so they compete for the cores) learn the demo's <landbird>
    token through the demo inpainter: the embedding files must be identical. Before MKL_CBWR was set, MKL's
    alignment-dependent code paths made one run in several differ from the first step on."""
    import subprocess
    import sys

    from helpers import REPO
    from ddb.config import load_config
    from ddb.datasets import build_manifest

    cfg = load_config(REPO / "config.yaml")["datasets"]["demo"]
    cfg["root"] = str(tmp_path / "synthetic")
    manifest = build_manifest("demo", cfg, seed=0)
    manifest.to_parquet(tmp_path / "manifest.parquet")
    script = TEXTUAL_INVERSION_RUN.format(package=str(REPO / "workflow"), config=str(REPO / "config.yaml"),
                                          manifest=str(tmp_path / "manifest.parquet"))
    outputs = [tmp_path / f"run{i}.safetensors" for i in range(5)]
    for pair in (outputs[0:2], outputs[2:4], outputs[4:]):
        running = [subprocess.Popen([sys.executable, "-c", script, str(out)], stderr=subprocess.PIPE, text=True)
                   for out in pair]
        for process in running:
            _, err = process.communicate(timeout=600)
            assert process.returncode == 0, err[-2000:]
    contents = {out.read_bytes() for out in outputs}
    assert len(contents) == 1, "textual inversion gave different embeddings for the same seed"
