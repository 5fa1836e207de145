"""What every loader shares: telling `tiny` from a local folder from a hub id, and the offline error."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DDBError

TINY = "tiny"
PACKAGED_PREFIX = "ddb:"
ASSETS = Path(__file__).resolve().parents[1] / "assets"


def resolve_ref(ref: str, config_key: str) -> str:
    """``ddb:NAME`` names a model shipped in the package (``ddb/assets/NAME``), e.g. the demo's
    trained inpainter; every other reference passes through unchanged."""
    if not ref.startswith(PACKAGED_PREFIX):
        return ref
    path = ASSETS / ref[len(PACKAGED_PREFIX):]
    if not (path / "model_index.json").exists() and not (path / "unet").exists():
        shipped = sorted(p.name for p in ASSETS.iterdir()) if ASSETS.exists() else []
        raise DDBError(f"config: {config_key}", f"{ref!r} is not a model shipped with ddb (shipped: {shipped})",
                       "use one of those, a hub id, a local folder, or `tiny`")
    return str(path)


def is_local(ref: str) -> bool:
    """A reference that looks like a path (or exists as one) is a local directory, never a hub id."""
    return os.path.isabs(ref) or ref.startswith((".", "~")) or Path(ref).exists()


def hub_source(ref: str) -> tuple[str, dict]:
    """(what to pass to ``from_pretrained``, the keywords that go with it) for a model reference.

    A hub id loads from safetensors files only (a pickled ``.bin`` from the hub could run code) and may
    pin a revision as ``org/name@revision`` (a commit hash, tag or branch), so a model that changes on
    the hub never silently changes a result. A local folder passes through unchanged.
    """
    if is_local(ref) or ref == TINY:
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
    return DDBError(f"config: {config_key}",
                    f"cannot load {what} {ref!r}: it is not in the Hugging Face cache ({hub_cache_dir()}) "
                    f"and the hub cannot be reached ({type(error).__name__})",
                    f"on a machine with network run `hf download {_download_args(ref)}` (or huggingface-cli "
                    "download) and "
                    f"copy the cache to {hub_cache_dir()} (set HF_HOME to move it), or set the key to a "
                    f"local folder holding the model")


def _download_args(ref: str) -> str:
    name, options = hub_source(ref)
    return name + (f" --revision {options['revision']}" if "revision" in options else "")
