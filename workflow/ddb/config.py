"""Config validation and per-dataset resolution.

The Snakefile calls :func:`load_config` before any job runs. The schema (``workflow/schemas``) is the
single source of defaults; this module only adds what a JSON schema cannot say: friendlier error
messages naming the key, the ``prune: false`` / ``textual_inversion: false`` shorthands, and class
names taken from the dataset format when the config leaves them out.
"""

from __future__ import annotations

import copy
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
    for target in config.get("targets", []):
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
    n_classes = len(dataset["classes"])
    for key in (("prune", "thresholds"), ("retrain", "gammas")):
        values = dataset[key[0]][key[1]]
        if len(values) != n_classes:
            raise DDBError(f"{source}: datasets.{name}.{'.'.join(key)}",
                           f"has {len(values)} values but the dataset has {n_classes} classes "
                           f"{dataset['classes']}", "give one value per class, in class-index order")


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
