"""The SAM 2.1 masker (LangSAM's current release) on a seeded miniature, the box rule, and Hiera-S at full size.

The miniature has random weights, so its scores mean nothing: thresholds of 0 keep every detection.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from helpers import random_images, settings_of  # noqa: E402
from ddb.config import FORMAT_DEFAULTS  # noqa: E402
from ddb.errors import DDBError  # noqa: E402
from ddb.masking import make_masker  # noqa: E402
from ddb.models.random_init import parameter_count, random_manifest, read_config  # noqa: E402
from ddb.models.segmentation import (TINY_SAM2, TextPromptedMasker, build_tiny_sam2, choose_detection,  # noqa: E402
                                     load_segmenter)

SIZES = [(64, 64), (48, 80), (90, 40)]  # (height, width)


@pytest.fixture(scope="module")
def images():
    return random_images(SIZES)


@pytest.fixture(scope="module")
def masker():
    return TextPromptedMasker("tiny", TINY_SAM2, "bird.", box_threshold=0.0, text_threshold=0.0, seed=0,
                              boxes="first")


def test_the_sam2_miniature_masks_every_image_at_its_own_size(masker, images):
    from transformers import Sam2Model

    assert isinstance(masker.segmenter, Sam2Model) and masker.segmenter.config.model_type == "sam2"
    results = masker(images)
    assert [r.mask.shape for r in results] == SIZES
    assert all(r.detected and r.mask.dtype == bool for r in results)
    # a random SAM 2 still draws a mask of some pixels, neither empty nor the whole image, in at least one image
    assert any(0 < r.mask.mean() < 1 for r in results)
    again = masker(images)
    assert all(np.array_equal(a.mask, b.mask) and a.box == b.box for a, b in zip(results, again))


def test_a_saved_sam2_folder_loads_as_sam2_with_the_same_masks(tmp_path, masker, images):
    from transformers import Sam2Model

    model, processor = build_tiny_sam2(0)
    model.save_pretrained(tmp_path / "sam2")
    processor.save_pretrained(tmp_path / "sam2")
    loaded, _ = load_segmenter(str(tmp_path / "sam2"), device="cpu")
    assert isinstance(loaded, Sam2Model)
    from_disk = TextPromptedMasker("tiny", str(tmp_path / "sam2"), "bird.", box_threshold=0.0, text_threshold=0.0,
                                   seed=0, boxes="first")
    for a, b in zip(masker(images), from_disk(images)):
        assert np.array_equal(a.mask, b.mask)


def test_the_box_rule_takes_the_first_detection_or_the_best_one():
    scores = torch.tensor([0.41, 0.93, 0.35])  # GroundingDINO's post-processed order (query order, unsorted)
    assert choose_detection(scores, "first") == 0
    assert choose_detection(scores, "best") == 1
    assert choose_detection(torch.tensor([]), "first") is None and choose_detection(torch.tensor([]), "best") is None


@pytest.mark.parametrize("rule, expected_box", [("first", (1.0, 2.0, 20.0, 30.0)), ("best", (5.0, 6.0, 40.0, 44.0))])
def test_the_masker_segments_the_box_its_rule_chooses(monkeypatch, rule, expected_box, images):
    """A handcrafted detector output: the chosen box is the one SAM receives and the result reports."""
    masker = TextPromptedMasker("tiny", TINY_SAM2, "bird.", box_threshold=0.3, text_threshold=0.25, seed=0,
                                boxes=rule)
    handcrafted = [{"scores": torch.tensor([0.40, 0.90]), "labels": ["bird", "bird"],
                    "boxes": torch.tensor([[1.0, 2.0, 20.0, 30.0], [5.0, 6.0, 40.0, 44.0]])}]
    monkeypatch.setattr(masker.detector_processor, "post_process_grounded_object_detection",
                        lambda *args, **kwargs: handcrafted)
    segmented = []
    original = masker._segment
    monkeypatch.setattr(masker, "_segment", lambda imgs, boxes: segmented.append(boxes) or original(imgs, boxes))
    (result,) = masker(images[:1])
    assert segmented == [[expected_box]] and result.box == expected_box
    assert result.score == pytest.approx(0.40 if rule == "first" else 0.90)


def test_an_unknown_box_rule_is_refused():
    with pytest.raises(DDBError, match="masking.boxes"):
        TextPromptedMasker("tiny", TINY_SAM2, "bird.", 0.3, 0.25, boxes="largest")


def test_the_paper_formats_mask_with_sam2_small_and_the_first_box():
    for fmt in ("waterbirds", "celeba", "metashift"):
        masking = FORMAT_DEFAULTS[fmt]["masking"]
        assert (masking["segmenter"], masking["boxes"]) == ("facebook/sam2.1-hiera-small", "first")
    assert "masking" not in FORMAT_DEFAULTS["synthetic"]
    cfg = {"masker": "grounded_sam", "prompt": "bird.", "detector": "tiny", "segmenter": TINY_SAM2,
           "box_threshold": 0.3, "text_threshold": 0.25, "multimask": False, "boxes": "first"}
    assert make_masker(settings_of("masking", **cfg), seed=0, device="cpu").masker.boxes == "first"


def test_sam2_hiera_small_builds_at_full_size_from_its_shipped_config():
    """On the meta device: the architecture and its size, without drawing 38M weights."""
    from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model

    manifest = random_manifest("random:facebook/sam2.1-hiera-small", "masking.segmenter", "sam")
    config = Sam2Config.from_dict(read_config(manifest, "config.json"))
    backbone = config.vision_config.backbone_config
    assert (backbone.blocks_per_stage, backbone.global_attention_blocks) == ([1, 2, 11, 2], [7, 10, 13])
    assert backbone.embed_dim_per_stage == [96, 192, 384, 768]
    with torch.device("meta"):
        model = Sam2Model(config)
    assert parameter_count(model) == 38_538_577
    processor_config = {k: v for k, v in read_config(manifest, "preprocessor_config.json").items()
                        if k != "image_processor_type"}
    assert Sam2ImageProcessor(**processor_config).size["height"] == 1024
