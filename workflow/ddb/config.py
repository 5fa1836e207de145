"""Config validation and per-dataset resolution.

The Snakefile calls :func:`load_config` before any job runs. The schema (``workflow/schemas``) is the
single source of defaults; this module only adds what a JSON schema cannot say: friendlier error
messages naming the key, the ``prune: false`` / ``textual_inversion: false`` shorthands, and class
names taken from the dataset format when the config leaves them out.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml
from jsonschema import validators

from .errors import DDBError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

# Class names in the index order of the papers (method.md): the adapters produce these.
FORMAT_CLASSES = {
    "synthetic": ["landbird", "waterbird"],
    "waterbirds": ["landbird", "waterbird"],
    "celeba": ["non_blond", "blond"],
    "metashift": ["cat", "dog"],
    "imagenet": ["bee", "cockroach"],
}
# Sections that accept `false` as a shorthand for {enabled: false} (the paper's ablations).
SWITCHABLE_SECTIONS = ("textual_inversion", "prune")


def _with_defaults(validator_class):
    check_properties = validator_class.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": fill_defaults})


_Validator = _with_defaults(jsonschema.Draft7Validator)


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys here: {allowed}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    return error.message


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate ``config`` in place against the schema (filling defaults) and return it.

    Raises :class:`DDBError` naming every offending key, e.g.
    ``config: datasets.demo.prune.thresholds.0: 'a' is not of type 'number'``.
    """
    validator = _Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = [f"{_key_path(e)}: {_describe(e)}" for e in errors]
        raise DDBError(source, "invalid configuration\n    " + "\n    ".join(lines),
                       "correct these keys (see workflow/schemas/config.schema.yaml for every key, "
                       "its type and default)")
    for name, dataset in config["datasets"].items():
        _normalise_dataset(name, dataset, validator, source)
    if config["targets"] is None:
        config["targets"] = list(config["datasets"])
    for target in config["targets"]:
        if target not in config["datasets"]:
            raise DDBError(f"{source}: targets", f"{target!r} is not a dataset of the config",
                           f"use one of {sorted(config['datasets'])}")
    return config


def _normalise_dataset(name: str, dataset: dict, validator, source: str) -> None:
    for section in SWITCHABLE_SECTIONS:
        if isinstance(dataset[section], bool):
            enabled = dataset[section]
            dataset[section] = {}
            # fill the section's defaults through the schema, then apply the switch
            validator.validate({"datasets": {name: {"format": dataset["format"], "root": dataset["root"],
                                                     section: dataset[section]}}})
            dataset[section]["enabled"] = enabled
    if dataset["classes"] is None:
        dataset["classes"] = list(FORMAT_CLASSES[dataset["format"]])
    _check_classes(name, dataset, source)
    _check_model_paths(name, dataset, source)
    n_classes = len(dataset["classes"])
    for key in (("prune", "thresholds"), ("retrain", "gammas")):
        values = dataset[key[0]][key[1]]
        if len(values) != n_classes:
            raise DDBError(f"{source}: datasets.{name}.{'.'.join(key)}",
                           f"has {len(values)} values but the dataset has {n_classes} classes "
                           f"{dataset['classes']}", "give one value per class, in class-index order")


# Formats whose labels are a fixed set of indices (the config only names them).
FIXED_CLASS_COUNT = {"synthetic": 2, "waterbirds": 2, "celeba": 2}


def _check_classes(name: str, dataset: dict, source: str) -> None:
    """Class names the dataset cannot have, found before any job runs (a job would fail half-way)."""
    classes, fmt = dataset["classes"], dataset["format"]
    if fmt in FIXED_CLASS_COUNT and len(classes) != FIXED_CLASS_COUNT[fmt]:
        extra = classes[FIXED_CLASS_COUNT[fmt]:]
        raise DDBError(f"{source}: datasets.{name}.classes",
                       f"lists {len(classes)} classes {classes}, but a {fmt} dataset has {FIXED_CLASS_COUNT[fmt]} "
                       f"(labels 0..{FIXED_CLASS_COUNT[fmt] - 1})" + (f": {extra} are not in it" if extra else ""),
                       f"give {FIXED_CLASS_COUNT[fmt]} names in label order (default {FORMAT_CLASSES[fmt]}), "
                       "or remove the key")
    if fmt == "imagenet":
        from .datasets.imagenet import class_wnids

        class_wnids(classes, dataset["imagenet"]["wnids"])


def _check_model_paths(name: str, dataset: dict, source: str) -> None:
    """A local model path that does not exist, or holds another architecture, stops the run at once."""
    from .models.loading import TINY, is_local

    refs = {"textual_inversion.model": dataset["textual_inversion"].get("model"),
            "inpainting.model": dataset["inpainting"]["model"], "erm.checkpoint": dataset["erm"]["checkpoint"]}
    if dataset["masking"]["masker"] == "grounded_sam":
        refs.update({"masking.detector": dataset["masking"]["detector"],
                     "masking.segmenter": dataset["masking"]["segmenter"]})
    weights = dataset["classifier"]["weights"]
    if weights and (os.sep in weights or weights.endswith((".pt", ".pth", ".bin", ".safetensors"))):
        refs["classifier.weights"] = weights
    for key, ref in refs.items():
        if not ref or ref == TINY or not (is_local(ref) or key in ("erm.checkpoint", "classifier.weights")):
            continue
        where = f"{source}: datasets.{name}.{key}"
        path = Path(ref).expanduser()
        if not path.exists():
            raise DDBError(where, f"the local path {ref!r} does not exist (relative paths start from the working "
                           f"directory, {Path.cwd()})", "fix the path; or use a hub id, or `tiny` for the seeded "
                           "miniature" if key.endswith(("model", "detector", "segmenter")) else "fix the path")
        if key == "inpainting.model" or (key == "textual_inversion.model" and dataset["textual_inversion"]["enabled"]):
            _check_diffusers_folder(path, ref, where, inpainting=key == "inpainting.model")


def _check_diffusers_folder(path: Path, ref: str, where: str, *, inpainting: bool) -> None:
    """A Stable Diffusion folder (save_pretrained) whose UNet fits the step: 9 input channels to inpaint."""
    import json

    unet_config = path / "unet" / "config.json"
    if not path.is_dir() or not unet_config.exists():
        raise DDBError(where, f"{ref!r} is not a Stable Diffusion folder (no unet/config.json in it)",
                       "point it at a folder written by save_pretrained of a diffusers pipeline "
                       "(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
    channels = json.loads(unet_config.read_text()).get("in_channels")
    if inpainting and channels != 9:
        raise DDBError(where, f"{ref!r} has a UNet with {channels} input channels, not an inpainting UNet (9)",
                       "use an inpainting model such as stabilityai/stable-diffusion-2-inpainting")


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DDBError(path, f"not valid YAML ({error})", "fix the syntax at the line shown") from error
    return validate_config(config, str(path))


def class_pairs(classes: list[str]) -> list[tuple[int, int]]:
    """Every ordered pair (i, i') of distinct classes: the generation directions."""
    return [(i, j) for i in range(len(classes)) for j in range(len(classes)) if i != j]
