"""Loading what users download: checkpoints only where torch's weights_only holds, hub models
from safetensors only, and a revision pinned per model entry."""

from __future__ import annotations

import pytest
import torch

from ddb.errors import DDBError
from ddb.models import classifier, diffusion
from ddb.models.loading import hub_source


def test_a_torch_whose_weights_only_can_be_bypassed_loads_no_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "erm.pt"
    torch.save(classifier.build_classifier("tiny", 2, None, seed=0).state_dict(), path)
    assert classifier.import_classifier(path, "tiny", 2, "datasets.x.erm.checkpoint") is not None
    monkeypatch.setattr(torch, "__version__", "2.5.1+cu124")
    with pytest.raises(DDBError, match=r"(?s)datasets\.x\.erm\.checkpoint.*torch 2\.5\.1\+cu124.*CVE-2025-32434"
                                       r".*install torch 2\.6 or newer"):
        classifier.import_classifier(path, "tiny", 2, "datasets.x.erm.checkpoint")


def test_hub_ids_load_safetensors_only_and_may_pin_a_revision(tmp_path):
    assert hub_source("sd2-community/stable-diffusion-2-inpainting") == (
        "sd2-community/stable-diffusion-2-inpainting", {"use_safetensors": True})
    assert hub_source("facebook/sam-vit-huge@0123abc") == (
        "facebook/sam-vit-huge", {"use_safetensors": True, "revision": "0123abc"})
    folder = tmp_path / "my@model"
    folder.mkdir()
    assert hub_source(str(folder)) == (str(folder), {})  # a local folder passes through, '@' and all
    assert hub_source("tiny") == ("tiny", {})


def test_the_inpainting_loader_asks_the_hub_for_safetensors_at_the_pinned_revision(monkeypatch):
    from diffusers import StableDiffusionInpaintPipeline

    asked = {}

    def refuse(source, **options):
        asked.update(source=source, **options)
        raise OSError("offline")

    monkeypatch.setattr(StableDiffusionInpaintPipeline, "from_pretrained", staticmethod(refuse))
    with pytest.raises(DDBError, match=r"hf download sd2-community/stable-diffusion-2-inpainting --revision v1\.0"):
        diffusion.load_inpaint_pipeline("sd2-community/stable-diffusion-2-inpainting@v1.0", seed=0)
    assert asked["source"] == "sd2-community/stable-diffusion-2-inpainting"
    assert asked["use_safetensors"] is True and asked["revision"] == "v1.0"


def test_the_segmenter_loader_pins_the_revision_of_config_weights_and_processor(monkeypatch):
    import transformers

    from ddb.models import segmentation

    calls = []

    def record(name):
        def from_pretrained(source, **options):
            calls.append((name, source, options))
            raise OSError("offline")
        return staticmethod(from_pretrained)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", record("config"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DDBError, match=r"facebook/sam-vit-huge"):
        segmentation.load_segmenter("facebook/sam-vit-huge@abc123")
    assert calls and all(c[1] == "facebook/sam-vit-huge" and c[2].get("revision") == "abc123" for c in calls)
