"""What every loader shares: telling `tiny`, `random:` and a local folder from a hub id, and the offline error."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from ..errors import DDBError

TINY = "tiny"
PACKAGED_PREFIX = "ddb:"
# `random:org/name`: the published architecture of a hub model with seeded random weights (ddb.models.random_init)
RANDOM_PREFIX = "random:"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
# folders of ASSETS that hold configs, not models
NOT_MODELS = ("configs",)
# the published configs of the `random:` models, one folder per hub id (org--name), each with a manifest
CONFIGS = ASSETS / "configs"
MANIFEST = "ddb_random.json"
# what each model key of a dataset entry must be
RANDOM_KINDS = {"inpainting.model": "stable_diffusion", "textual_inversion.model": "stable_diffusion",
                "masking.detector": "grounding_dino", "masking.segmenter": "sam"}


def resolve_ref(ref: str, config_key: str) -> str:
    """``ddb:NAME`` names a model shipped in the package (``ddb/assets/NAME``), e.g. the demo's
    trained inpainter; every other reference passes through unchanged."""
    if not ref.startswith(PACKAGED_PREFIX):
        return ref
    path = ASSETS / ref[len(PACKAGED_PREFIX):]
    if not (path / "model_index.json").exists() and not (path / "unet").exists():
        shipped = sorted(p.name for p in ASSETS.iterdir() if p.name not in NOT_MODELS) if ASSETS.exists() else []
        raise DDBError(f"config: {config_key}", f"{ref!r} is not a model shipped with ddb (shipped: {shipped})",
                       "use one of those, a hub id, a local folder, or `tiny`")
    return str(path)


def is_random(ref) -> bool:
    """A ``random:org/name`` reference: a published architecture with seeded random weights (a rehearsal)."""
    return isinstance(ref, str) and ref.startswith(RANDOM_PREFIX)


def random_models_of(dataset_cfg: dict) -> dict[str, str]:
    """{config key: ref} of the ``random:`` models a dataset entry uses (empty for a real run): the keys of
    the steps that run (textual inversion when enabled, the detector and segmenter with the text-prompted
    masker) and the classifier's weights."""
    refs = {"inpainting.model": (dataset_cfg.get("inpainting") or {}).get("model"),
            "classifier.weights": (dataset_cfg.get("classifier") or {}).get("weights")}
    ti = dataset_cfg.get("textual_inversion")
    if isinstance(ti, dict) and ti.get("enabled", True):
        refs["textual_inversion.model"] = ti.get("model")
    masking = dataset_cfg.get("masking") or {}
    if masking.get("masker", "grounded_sam") == "grounded_sam":
        refs["masking.detector"] = masking.get("detector")
        refs["masking.segmenter"] = masking.get("segmenter")
    return {key: ref for key, ref in sorted(refs.items()) if is_random(ref)}


@lru_cache(maxsize=None)
def _manifests() -> dict[str, dict]:
    """hub id -> manifest; a manifest's ``aliases`` (other hub ids of the same repository, such as the
    sd2-community copies of the Stable Diffusion 2 models) name it too, and its ``model`` stays the id
    its seeds are drawn from, so every alias builds the same weights."""
    found = {}
    for path in sorted(CONFIGS.glob(f"*/{MANIFEST}")):
        manifest = {**json.loads(path.read_text()), "folder": path.parent}
        for name in [manifest["model"], *manifest.get("aliases", [])]:
            found[name] = manifest
    return found


def known_random_models(kind: str | None = None) -> list[str]:
    """The ``random:`` references this package can build (of one ``kind``: stable_diffusion, grounding_dino, sam)."""
    return [RANDOM_PREFIX + name for name, m in _manifests().items() if kind is None or m["kind"] == kind]


def random_manifest(ref: str, config_key: str, kind: str | None = None, prefixed: bool = False) -> dict:
    """The manifest (kind, sources, notes, folder) of ``random:org/name``; a DDBError naming the choices
    when there is none, or when it is a model of another kind than the key needs."""
    name = ref[len(RANDOM_PREFIX):]
    manifest = _manifests().get(name)
    if manifest is None or (kind is not None and manifest["kind"] != kind):
        choices = known_random_models(kind)
        problem = (f"{ref!r} is not a model ddb can build with random weights" if manifest is None
                   else f"{ref!r} is a {manifest['kind'].replace('_', ' ')} model, not a {kind.replace('_', ' ')} one")
        raise DDBError(config_key if prefixed else f"config: {config_key}", problem, f"use one of {choices}")
    return manifest


def check_random_refs(dataset_cfg: dict, where: str) -> None:
    """Every ``random:`` model of a dataset entry is one ddb can build, of the kind its key needs (a
    DDBError naming the key and the choices otherwise); ``where`` prefixes the key, e.g. config: datasets.x."""
    for key, ref in random_models_of(dataset_cfg).items():
        if key == "classifier.weights":
            arch = dataset_cfg["classifier"]["arch"]
            if ref != f"{RANDOM_PREFIX}{arch}":
                raise DDBError(f"{where}.{key}", f"{ref!r} is not a random {arch}",
                               f"use {RANDOM_PREFIX}{arch} (the architecture of classifier.arch)")
        else:
            random_manifest(ref, f"{where}.{key}", RANDOM_KINDS[key], prefixed=True)


def is_local(ref: str) -> bool:
    """A reference that looks like a path (or exists as one) is a local directory, never a hub id; a
    ``random:`` reference is neither (it names a published architecture, built in memory)."""
    if ref.startswith(RANDOM_PREFIX):
        return False
    return os.path.isabs(ref) or ref.startswith((".", "~")) or Path(ref).exists()


def hub_source(ref: str) -> tuple[str, dict]:
    """(what to pass to ``from_pretrained``, the keywords that go with it) for a model reference.

    A hub id loads from safetensors files only (a pickled ``.bin`` from the hub could run code) and may
    pin a revision as ``org/name@revision`` (a commit hash, tag or branch), so a model that changes on
    the hub never silently changes a result. A local folder passes through unchanged.
    """
    if is_local(ref) or ref == TINY or ref.startswith(RANDOM_PREFIX):
        return ref, {}
    name, _, revision = ref.partition("@")
    return name, {"use_safetensors": True, **({"revision": revision} if revision else {})}


def hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub is a dependency of diffusers/transformers
        return os.path.expanduser("~/.cache/huggingface/hub")


def model_load_error(ref: str, what: str, error: Exception, config_key: str) -> DDBError:
    """The one message for a model that cannot be loaded: names the id, the cache and the fix."""
    if is_local(ref):
        path = Path(ref).expanduser()
        if not path.exists():
            return DDBError(f"config: {config_key}", f"the local {what} folder {ref!r} does not exist",
                            "fix the path, or use a hub id, or `tiny` for the seeded miniature")
        return DDBError(f"config: {config_key}",
                        f"{ref!r} does not hold a loadable {what} ({type(error).__name__}: {error})",
                        f"point it at a folder saved with save_pretrained of a {what}")
    from .fetching import download_command, hub_offline, kind_of_key, record_name

    kind = kind_of_key(config_key)
    command = download_command(ref, kind) if kind else f"hf download {_download_args(ref)}"
    if hub_offline():
        # a cluster job (ddb.job_environment) or a user's HF_HUB_OFFLINE: nothing was asked of the network
        record = f"models/{record_name(ref, kind)}.json" if kind else None
        return DDBError(f"config: {config_key}",
                        f"cannot load {what} {ref!r}: it is not in the Hugging Face cache ({hub_cache_dir()}) and "
                        "this job may not use the network (HF_HUB_OFFLINE is set: ddb sets it in every cluster job)",
                        "fetch it where snakemake runs, with the HF_HOME the jobs see (a shared folder): rerun "
                        "snakemake, whose fetch_model job downloads it"
                        + (f" (remove {record} under the results folder if it is there)" if record else "")
                        + f", or run `{command}`; or set the key to a local folder holding the model")
    return DDBError(f"config: {config_key}",
                    f"cannot load {what} {ref!r}: it is not in the Hugging Face cache ({hub_cache_dir()}) "
                    f"and the hub cannot be reached ({type(error).__name__})",
                    f"on a machine with network run `{command}` and copy the cache to {hub_cache_dir()} (set "
                    "HF_HOME to move it), "
                    "or set the key to a local folder holding the model")


def _download_args(ref: str) -> str:
    name, options = hub_source(ref)
    return name + (f" --revision {options['revision']}" if "revision" in options else "")
