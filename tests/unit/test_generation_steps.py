"""Textual inversion, masking, inpainting and IG with the tiny models: real code paths, small inputs."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ddb.config import validate_config
from ddb.datasets import build_manifest
from ddb.errors import DDBError
from ddb.ig_scoring import attribute, score_shard
from ddb.inpainting import generated_id, inpaint_shard, prompt_for
from ddb.storage.shards import ImageShard
from ddb.storage.checkpoints import process_shard
from ddb.config import minority_group_name
from ddb.masking import FilesMasker, generation_sources, mask_shard, shard_rows
from ddb.models.classifier import build_classifier
from ddb.models.diffusion import load_inpaint_pipeline, load_text_to_image_components
from ddb.settings import dataset_settings
from ddb.textual_inversion import choose_images, learn_token, save_embeddings


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    config = validate_config({"datasets": {"demo": {
        "format": "synthetic", "root": str(root / "images"),
        "synthetic": {"n_train": 240, "n_val_per_group": 2, "n_test_per_group": 2, "image_size": 32},
        "textual_inversion": {"model": "tiny", "num_images": 2, "steps": 3, "batch_size": 2, "resolution": 32},
        "masking": {"masker": "files", "batch_size": 4},
        "generation": {"images_per_shard": 3, "max_sources_per_class": 5},
        "inpainting": {"model": "tiny", "steps": 2, "resolution": 32, "batch_size": 3},
        "ig": {"n_steps": 8, "internal_batch_size": 16, "batch_size": 4},
    }}})
    cfg = config["datasets"]["demo"]
    return cfg, build_manifest("demo", cfg, seed=0), root


def settings(cfg: dict):
    """The demo entry's typed step settings, as a rule script builds them."""
    return dataset_settings(cfg, "demo")


def test_textual_inversion_learns_only_the_new_row_and_the_pipeline_loads_it(demo, tmp_path):
    cfg, manifest, _ = demo
    images = choose_images(manifest, 1, settings(cfg).textual_inversion, seed=0, name="demo",
                           minority_group=minority_group_name(cfg, 1))
    assert len(images) == 2 and set(images["group"]) == {"waterbird_land"}  # the minority group
    components = load_text_to_image_components("tiny", seed=0)
    before = components["text_encoder"].get_input_embeddings().weight.detach().clone()
    learned, losses = learn_token(components, images, "waterbird", settings(cfg).textual_inversion, seed=0,
                                  device="cpu")
    after = components["text_encoder"].get_input_embeddings().weight.detach()
    assert after.shape[0] == before.shape[0] + 1
    assert torch.equal(after[:-1], before)  # every old row restored after each step
    assert list(learned) == ["<waterbird>"] and learned["<waterbird>"].shape == (1, 32)
    assert len(losses) == 3 and np.isfinite(losses["loss"]).all()
    save_embeddings(learned, tmp_path / "learned_embeds.safetensors")
    pipeline = load_inpaint_pipeline("tiny", seed=0)
    pipeline.load_textual_inversion(str(tmp_path / "learned_embeds.safetensors"))
    token_id = pipeline.tokenizer.convert_tokens_to_ids("<waterbird>")
    assert torch.allclose(pipeline.text_encoder.get_input_embeddings().weight[token_id], learned["<waterbird>"][0])
    assert len(pipeline.tokenizer.tokenize(prompt_for("waterbird", settings(cfg).inpainting, True))) == 5


def test_textual_inversion_set_smaller_than_asked_is_a_clear_error(demo):
    cfg, manifest, _ = demo
    asked = replace(settings(cfg).textual_inversion, num_images=50)
    with pytest.raises(DDBError, match=r"(?s)textual_inversion\.num_images.*asks for 50 images but the minority group "
                                       r"'waterbird_land' has only 3.*set num_images to at most 3"):
        choose_images(manifest, 1, asked, seed=0, name="demo", minority_group="waterbird_land")


def generate_pair(cfg, manifest, tmp_path, shards, seed=0):
    """Masks + inpainting landbird -> waterbird with `shards` shards; returns {generated id: png bytes}."""
    pipeline = load_inpaint_pipeline("tiny", seed=0)
    sources = generation_sources(manifest, 0, settings(cfg).generation, seed=seed)
    out = {}
    for n in range(shards):
        rows = shard_rows(sources, n, shards)
        mask_index = mask_shard(rows, FilesMasker(), settings(cfg).masking, tmp_path / f"m{n}.tar",
                                tmp_path / f"m{n}.parquet")
        index = inpaint_shard(pipeline, rows, ImageShard(tmp_path / f"m{n}.tar"), mask_index, source_y=0, target_y=1,
                              target_class="waterbird", prompt="a photo of a waterbird",
                              inpainting=settings(cfg).inpainting,
                              seed=seed, tar_path=tmp_path / f"g{n}.tar", index_path=tmp_path / f"g{n}.parquet")
        shard = ImageShard(tmp_path / f"g{n}.tar")
        out.update({i: shard.read_bytes(i) for i in shard.ids()})
        assert index["y"].eq(1).all() and index["source_y"].eq(0).all()  # labelled with the target class
    return out, sources


def test_inpainting_is_labelled_target_keeps_context_and_ignores_sharding(demo, tmp_path):
    cfg, manifest, _ = demo
    one, sources = generate_pair(cfg, manifest, tmp_path / "one", shards=1)
    two, _ = generate_pair(cfg, manifest, tmp_path / "two", shards=2)
    assert len(sources) == 5 and sorted(one) == sorted(generated_id(s, "waterbird") for s in sources["sample_id"])
    assert one == two  # per-sample seeds: the shard split changes no byte
    row = sources.iloc[0]
    generated = np.asarray(Image.open(__import__("io").BytesIO(one[generated_id(row["sample_id"], "waterbird")])))
    source, mask = np.asarray(Image.open(row["path"])), np.asarray(Image.open(row["mask_path"])) > 127
    assert generated.shape == source.shape
    assert np.array_equal(generated[~mask], source[~mask])  # paste-back: the spurious context is the source's
    assert not np.array_equal(generated[mask], source[mask])


def test_samples_without_mask_are_listed_not_dropped(demo, tmp_path):
    cfg, manifest, _ = demo
    rows = shard_rows(generation_sources(manifest, 0, settings(cfg).generation, seed=0), 0, 1)
    mask_index = mask_shard(rows, FilesMasker(str(tmp_path / "no_masks_here")), settings(cfg).masking,
                            tmp_path / "m.tar", tmp_path / "m.parquet")
    assert not mask_index["detected"].any() and len(ImageShard(tmp_path / "m.tar")) == 0
    index = inpaint_shard(load_inpaint_pipeline("tiny", seed=0), rows, ImageShard(tmp_path / "m.tar"), mask_index,
                          source_y=0, target_y=1, target_class="waterbird", prompt="p",
                          inpainting=settings(cfg).inpainting,
                          seed=0, tar_path=tmp_path / "g.tar", index_path=tmp_path / "g.parquet")
    assert len(index) == len(rows) and not index["has_image"].any()
    assert list(pd.read_parquet(tmp_path / "g.parquet").columns) == list(index.columns)


def test_shard_resumes_from_its_checkpoints(tmp_path):
    from ddb.storage.checkpoints import PartialShard

    calls = []

    def compute(ids):
        calls.append(list(ids))
        return [(i, np.full((2, 2), 7, np.uint8), {"sample_id": i}) for i in ids]

    partial = PartialShard(tmp_path / "s.tar")
    partial.put("a", b"ddb.io", {"sample_id": "a"})  # finished before the kill: image + record, committed
    partial.commit()
    partial.put("b", np.zeros((2, 2), np.uint8), {"sample_id": "b"})  # its image written, never committed
    partial.close()
    index = process_shard(["a", "b", "c"], compute, 2, tmp_path / "s.tar", tmp_path / "s.parquet")
    assert calls == [["b", "c"]] and index["sample_id"].tolist() == ["a", "b", "c"]
    shard = ImageShard(tmp_path / "s.tar")
    assert not (tmp_path / "s.tar.partial").exists() and shard.ids() == ["a", "b", "c"]
    assert shard.read_bytes("a") == b"ddb.io" and shard.image("b").size == (2, 2)


def test_rho_is_mask_times_attribution_and_ig_is_complete():
    torch.manual_seed(0)
    model = build_classifier("tiny", 2, None, seed=0).eval()
    generated, baseline = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    full = torch.ones(2, 1, 32, 32)
    half = torch.zeros(2, 1, 32, 32)
    half[..., :16] = 1
    targets = torch.tensor([1, 0])
    rho_full, delta, attributions = attribute(model, generated, baseline, full, targets, 64, 64)
    with torch.no_grad():
        gain = model(generated).gather(1, targets[:, None])[:, 0] - model(baseline).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(rho_full, gain, atol=0.05 * gain.abs().max().item() + 1e-3, rtol=0.05)
    rho_half, _, _ = attribute(model, generated, baseline, half, targets, 64, 64)
    torch.testing.assert_close(rho_half, attributions.sum(1)[..., :16].sum((1, 2)), rtol=1e-4, atol=1e-5)
    assert delta.shape == (2,)


def test_score_shard_scores_every_generated_image(demo, tmp_path):
    cfg, manifest, _ = demo
    generate_pair(cfg, manifest, tmp_path, shards=1)
    model = build_classifier("tiny", 2, None, seed=0)
    scores = score_shard(model, pd.read_parquet(tmp_path / "g0.parquet"), ImageShard(tmp_path / "g0.tar"),
                         ImageShard(tmp_path / "m0.tar"), dict(zip(manifest["sample_id"], manifest["path"])),
                         image_size=32, ig=settings(cfg).ig, device="cpu")
    assert len(scores) == 5 and scores["has_image"].all()
    assert np.isfinite(scores[["rho", "p_source", "p_target"]].to_numpy()).all()
    np.testing.assert_allclose(scores["p_source"] + scores["p_target"], 1.0, rtol=1e-5)
