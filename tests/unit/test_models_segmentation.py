"""Text-prompted masking (GroundingDINO box → SAM mask) on seeded miniatures, offline on a CPU.

The miniatures have random weights, so their scores mean nothing: thresholds of 0 make every image
keep its best box and thresholds of 1 make none pass, which is what the tests rely on.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from helpers import random_images  # noqa: E402
from ddb.errors import DDBError  # noqa: E402
from ddb.models.loading import hub_cache_dir  # noqa: E402
from ddb.models.segmentation import (MaskResult, TextPromptedMasker, build_tiny_grounding_dino,  # noqa: E402
                                     build_tiny_sam, load_detector, load_segmenter, normalize_prompt,
                                     save_tiny_models)

SIZES = [(64, 64), (48, 80), (90, 40)]  # (height, width): square, landscape, portrait


@pytest.fixture(scope="module")
def images():
    return random_images(SIZES)


@pytest.fixture(scope="module")
def masker():
    return TextPromptedMasker("tiny", "tiny", "bird.", box_threshold=0.0, text_threshold=0.0, seed=0)


@pytest.fixture(scope="module")
def results(masker, images):
    return masker(images)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("tiny_models"), seed=0)


def test_batch_of_different_sizes_gives_one_mask_per_image_at_its_size(results):
    assert len(results) == len(SIZES)
    for result, (height, width) in zip(results, SIZES):
        assert isinstance(result, MaskResult)
        assert result.mask.shape == (height, width) and result.mask.dtype == bool
        assert result.detected
        x0, y0, x1, y1 = result.box
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
        assert 0.0 < result.score < 1.0


def test_threshold_one_detects_nothing_and_masks_are_empty(images):
    masker = TextPromptedMasker("tiny", "tiny", "bird.", box_threshold=1.0, text_threshold=1.0, seed=0)
    for result, (height, width) in zip(masker(images), SIZES):
        assert not result.detected and result.box is None and math.isnan(result.score)
        assert result.mask.shape == (height, width) and result.mask.dtype == bool and not result.mask.any()


def test_only_detected_images_go_to_sam(masker, images, results):
    """A threshold between the scores splits the batch; the detected images keep their boxes and masks."""
    scores = sorted(r.score for r in results)
    threshold = (scores[0] + scores[-1]) / 2
    split = TextPromptedMasker("tiny", "tiny", "bird.", box_threshold=threshold, text_threshold=0.0, seed=0)
    partial = split(images)
    assert any(r.detected for r in partial) and not all(r.detected for r in partial)
    for full, part in zip(results, partial):
        assert part.detected == (full.score > threshold)
        if part.detected:
            assert part.box == full.box
            # SAM ran on a smaller batch: allow the odd pixel of float noise at the mask's edge
            assert (part.mask == full.mask).mean() > 0.99
        else:
            assert not part.mask.any()


def test_same_seed_gives_identical_masks(results, images):
    again = TextPromptedMasker("tiny", "tiny", "bird.", box_threshold=0.0, text_threshold=0.0, seed=0)(images)
    for first, second in zip(results, again):
        assert np.array_equal(first.mask, second.mask)
        assert first.box == second.box and first.score == second.score


def test_seed_sets_weights_without_touching_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    weights = {seed: next(build_tiny_sam(seed)[0].parameters()).detach().clone() for seed in (0, 1)}
    assert torch.equal(torch.rand(3), expected)
    assert not torch.equal(weights[0], weights[1])


def test_saved_tiny_models_load_from_disk_and_match_the_in_memory_build(saved_models, results, images):
    detector_dir, segmenter_dir = saved_models
    assert detector_dir.name == "grounding_dino" and segmenter_dir.name == "sam"
    from_disk = TextPromptedMasker(str(detector_dir), str(segmenter_dir), "bird.", box_threshold=0.0,
                                   text_threshold=0.0)(images)
    for in_memory, loaded in zip(results, from_disk):
        assert np.array_equal(in_memory.mask, loaded.mask)
        assert in_memory.box == loaded.box and in_memory.score == loaded.score


def test_missing_local_folder_is_a_ddb_error(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(DDBError) as caught:
        load_detector(str(missing), 0, "cpu")
    message = str(caught.value)
    assert str(missing) in message and "does not exist" in message
    assert "hf download" in message and hub_cache_dir() in message


def test_folder_of_the_wrong_architecture_is_a_ddb_error(saved_models):
    detector_dir, segmenter_dir = saved_models
    with pytest.raises(DDBError) as caught:
        load_detector(str(segmenter_dir), 0, "cpu")
    assert str(segmenter_dir) in str(caught.value) and "'sam'" in str(caught.value)
    with pytest.raises(DDBError) as caught:
        load_segmenter(str(detector_dir), 0, "cpu")
    assert str(detector_dir) in str(caught.value) and "'grounding-dino'" in str(caught.value)


def test_uncached_hub_id_offline_names_the_cache_and_the_download(monkeypatch):
    from huggingface_hub import constants

    # offline mode keeps the test from waiting on network retries
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DDBError) as caught:
        load_segmenter("ddb-tests/no-such-sam", 0, "cpu")
    message = str(caught.value)
    assert "ddb-tests/no-such-sam" in message and hub_cache_dir() in message
    assert "hf download ddb-tests/no-such-sam" in message


def test_tiny_models_are_the_real_architectures():
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor, SamModel, SamProcessor

    detector, detector_processor = build_tiny_grounding_dino(0)
    segmenter, segmenter_processor = build_tiny_sam(0)
    assert isinstance(detector, GroundingDinoForObjectDetection)
    assert isinstance(detector_processor, GroundingDinoProcessor)
    assert isinstance(segmenter, SamModel) and isinstance(segmenter_processor, SamProcessor)
    # the prompt words are whole tokens, not [UNK]
    tokens = detector_processor.tokenizer.tokenize("a photo of a bird.")
    assert tokens == ["a", "photo", "of", "a", "bird", "."]


def test_prompt_is_normalized_and_must_name_something(masker):
    assert normalize_prompt(" Bird ") == "bird."
    assert normalize_prompt("a cat. a dog.") == "a cat. a dog."
    with pytest.raises(DDBError):
        normalize_prompt(" . ")
    assert masker([]) == []
