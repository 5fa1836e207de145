"""Config validation and per-dataset resolution.

rules/common.smk calls :func:`validate_config` before any job runs, with the files Snakemake merged
(:class:`ConfigSources`), so that a message names the file a bad value came from. The schema
(``workflow/schemas``) is the single source of defaults; this module only adds what a JSON schema cannot
say: friendlier error messages naming the key and its file, the ``prune: false`` /
``textual_inversion: false`` shorthands, class names taken from the dataset format when the config leaves
them out, a `seed` that must be one of `seeds`, and no NaN or infinity anywhere. A sample sheet
(``format: table``) is read here: its class names and each class's minority group come from the sheet,
and a bad sheet stops the run before any job.
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path

import jsonschema
import yaml
from jsonschema import validators

from .errors import DDBError
from .prompts import object_templates

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

# Class names in the index order of the papers (docs/method.md): the adapters produce these.
FORMAT_CLASSES = {
    "synthetic": ["landbird", "waterbird"],
    "waterbirds": ["landbird", "waterbird"],
    "celeba": ["non_blond", "blond"],
    "metashift": ["cat", "dog"],
    "imagenet": ["bee", "cockroach"],
}
# Sections that accept `false` as a shorthand for {enabled: false} (the paper's ablations; `dfr: false`
# leaves the DFR baseline out).
SWITCHABLE_SECTIONS = ("textual_inversion", "prune", "dfr")

# The ERM recipes of the checkpoints the paper imports (supplementary: Waterbirds' and CelebA's from DaC,
# MetaShift's from DISC), for a run that trains f itself (erm.checkpoint null). All start from ImageNet
# weights (classifier.weights), as the papers describe, although DaC's main.py builds ResNet50() with
# pretrained=False (DaC models.py:11). SGD's momentum is 0.9 in both (DaC utils.py:15, DISC
# disc/utils/tools.py:88), as the schema's default.
# Waterbirds: DaC's README command (--optimizer SGD --lr 1e-3 --weight_decay 1e-3 --num_epochs 100
# --batch_size 128); its training loader gets the test transform, so no augmentation (DaC
# data/waterbirds.py:108); the best validation WGA is kept, ties to the better mean (DaC main.py:85-98).
WATERBIRDS_ERM = {"epochs": 100, "batch_size": 128, "lr": 1.0e-3, "weight_decay": 1.0e-3, "optimizer": "sgd",
                  "augment": False, "select_epoch": "best_val_wga_mean"}
# CelebA: DaC's README gives Waterbirds' command only, so its settings; DaC's CelebA loader trains on a
# class-balanced subsample of the training split (data/celeba.py:40-47: class_balance subsample below,
# which ERM and retraining share) with augmentation (data/celeba.py:159-176: RandomResizedCrop ratio
# (1, 4/3), flips; eval: CenterCrop(178), Resize(224): the center_crop_resize transform).
CELEBA_ERM = {**WATERBIRDS_ERM, "augment": True}
# MetaShift: DISC's ERM (scripts/metashifts.sh: --lr 0.001 --batch_size 16 --weight_decay 0.0001
# --n_epochs 100, the one without --augment_data being the one DISC itself loads, line 5); best_model.pth
# is the first epoch with the best validation WGA (disc/train.py:213-222).
METASHIFT_ERM = {"epochs": 100, "batch_size": 16, "lr": 1.0e-3, "weight_decay": 1.0e-4, "optimizer": "sgd",
                 "augment": False, "select_epoch": "best_val_wga"}
# The authors computed in fp32 (no autocast; TF32 as PyTorch leaves it) and set the thresholds P on fp32
# ρ; bf16 flips prune verdicts near P (docs/cluster.md, section 8). Their textual_inversion.py runs with
# no mixed precision by default; their train.py draws the new head with weight_init (Xavier, zero bias).
PAPER_PRECISION = {"precision": "fp32", "tf32": "torch_default"}
PAPER_TI_DTYPE = {"dtype": "float32"}
PAPER_HEAD = {"head_init": "xavier"}

# What an entry with only `format` and `root` gets, on top of the schema's defaults: the paper's setting
# for its datasets (docs/method.md, "Decisions where the paper is ambiguous" and Table 5), the demo's own for
# `synthetic`. A key the entry sets always wins. Minority groups are spurious values in class-index order
# (the group whose spurious value goes with the *other* class); None: the class has no minority group in
# training (MetaShift's contexts are all majority ones, ImageNet's groups are its classes).
# The paper formats' masker: LangSAM as the authors call it (its SAM 2.1 release: GroundingDINO base,
# SAM 2.1 Hiera-S, the first mask above the thresholds; README, "Real datasets").
PAPER_MASKER = {"segmenter": "facebook/sam2.1-hiera-small", "boxes": "first"}
FORMAT_DEFAULTS = {
    "synthetic": {
        "minority_groups": ["water", "land"],
        "classifier": {"transform": "stretch"},
        "generation": {"sources": "all"},
        "inpainting": {"paste_back": True},
        # the demo runs anywhere, a cluster's CPU-only nodes included (CI's SLURM has no CUDA)
        "resources": {"cpu_fallback": True},
        # the demo's images load in the main process and its augmentation draws from the main process's
        # RNG stream: its figures and eval.json are the ones it always gave (workers would draw per image)
        "erm": {"num_workers": 0},
        "retrain": {"num_workers": 0},
    },
    "waterbirds": {
        "minority_groups": ["water", "land"],
        "classifier": {"transform": "resize_center_crop", **PAPER_PRECISION},
        "erm": WATERBIRDS_ERM,
        "textual_inversion": {"initializer_token": "bird", "templates": object_templates("{} bird"), **PAPER_TI_DTYPE},
        "masking": {"prompt": "bird.", **PAPER_MASKER},
        "inpainting": {"prompt": "a photo of a {} bird"},
        "prune": {"thresholds": [1, 1]},
        "retrain": {"batch_size": 32, "lr": 5.0e-6, "gammas": [6, 10], "batching": "joint", **PAPER_HEAD},
    },
    "celeba": {
        # supplementary §2.2: the non-blond token "was trained on a dataset of non-blond women"
        "minority_groups": ["female", "male"],
        "class_balance": "subsample",
        "classifier": {"transform": "center_crop_resize", **PAPER_PRECISION},
        "erm": CELEBA_ERM,
        # the authors publish only their animal templates; the object here is the inpainting prompt's
        "textual_inversion": {"initializer_token": "hair", "templates": object_templates("person with {} hair"),
                              **PAPER_TI_DTYPE},
        "masking": {"prompt": "hair", **PAPER_MASKER},
        "inpainting": {"prompt": "a photo of a person with {} hair"},
        "prune": {"thresholds": [2, 0.3]},
        "retrain": {"batch_size": 64, "lr": 1.0e-5, "gammas": [2, 7], "batching": "joint", **PAPER_HEAD},
        # the authors' CelebA grid (dfr_evaluate_spurious.py, commented "CelebA")
        "dfr": {"c_grid": [3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003]},
    },
    "metashift": {
        "minority_groups": [None, None],
        "classifier": {"transform": "resize_center_crop", **PAPER_PRECISION},
        "erm": METASHIFT_ERM,
        "textual_inversion": {"initializer_token": "animal", "templates": object_templates("{} animal"),
                              **PAPER_TI_DTYPE},
        "masking": {"prompt": "animal.", **PAPER_MASKER},
        "inpainting": {"prompt": "a photo of a {} animal"},
        "prune": {"thresholds": [0.3, 2]},
        # the authors' MetaShift loader feeds every split through the eval transform (no augmentation)
        "retrain": {"batch_size": 16, "lr": 5.0e-5, "gammas": [1, 4], "batching": "joint", "augment": False,
                    **PAPER_HEAD},
    },
    "imagenet": {
        "minority_groups": [None, None],
        "classifier": {"transform": "resize_shorter_center_crop", **PAPER_PRECISION},
        "textual_inversion": PAPER_TI_DTYPE,
        "masking": PAPER_MASKER,
        "retrain": {"batching": "joint", **PAPER_HEAD},
    },
    # A sample sheet: its classes and minority groups come from the sheet (_table_classes), its prompts from
    # the entry's `object` (object_defaults), the masker is the paper formats'.
    "table": {
        "table_split": {},
        "masking": PAPER_MASKER,
    },
}
# Keys of a dataset entry that only a sample sheet (format: table) reads.
TABLE_KEYS = ("table", "object", "table_split")
# The CelebA minority groups above name the values of the `Male` attribute; another spurious attribute
# has no paper default, so its entry must name its minority groups (or null for none).
CELEBA_DEFAULT_SPURIOUS = "Male"
# Keys that were renamed, with the fix (an old config stops with this instead of "unknown key").
# Dataset names become folders and a wildcard (results/<name>/..., {ds}): letters, digits and `_`.
DATASET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Folders of the results folder that are not datasets: <results>/logs/<rule>/..., <results>/benchmarks/<rule>/...,
# <results>/models/<model>.json
RESERVED_NAMES = {"logs": "the jobs' logs", "benchmarks": "the jobs' benchmarks",
                  "models": "the records of the hub models fetched"}
# Where a prompt or template puts the class token: `{}`, exactly once (str.format with one argument).
PROMPT_PATTERN = "^[^{}]*\\{\\}[^{}]*$"
RENAMED_KEYS = {
    "class_balanced": "class_balanced was replaced by class_balance: `class_balance: reweight` (what "
                      "`class_balanced: true` did), `subsample` (the paper's CelebA setting) or `none`",
}


def _merge_defaults(entry: dict, defaults: dict) -> None:
    """Fill ``entry`` with ``defaults`` where it sets nothing, section by section (``entry`` wins)."""
    for key, value in defaults.items():
        if key not in entry:
            entry[key] = copy.deepcopy(value)
        elif isinstance(entry[key], dict) and isinstance(value, dict):
            _merge_defaults(entry[key], value)


def object_defaults(noun: str) -> dict:
    """What a paper format sets per dataset, for a sample sheet whose images show ``noun`` (``bird``, ``sports
    car``): the masker's prompt, the inpainting prompt, the textual-inversion templates and initializer token
    (the noun's last word: it must be one token of the tokenizer)."""
    noun = " ".join(noun.split())
    return {"textual_inversion": {"initializer_token": noun.split(" ")[-1],
                                  "templates": object_templates(f"{{}} {noun}")},
            "masking": {"prompt": f"{noun}."},
            "inpainting": {"prompt": f"a photo of a {{}} {noun}"}}


def _check_table_keys(name: str, dataset: dict, source: str) -> None:
    """``table`` and ``object`` make a sample-sheet entry; the keys of one mean nothing to another format."""
    where = f"{source}: datasets.{name}"
    if dataset.get("format") != "table":
        for key in TABLE_KEYS:
            if key in dataset:
                raise DDBError(f"{where}.{key}", f"is a key of a sample sheet (format: table), not of format "
                               f"{dataset.get('format')!r}", "remove it, or set `format: table` (docs/datasets.md)")
        return
    for key, example in (("table", "samples.csv"), ("object", "bird")):
        if not isinstance(dataset.get(key), str) or not dataset[key].strip():
            raise DDBError(f"{where}.{key}", "is missing" if key not in dataset else f"{dataset[key]!r} is no text",
                           f"a sample sheet needs `{key}`, e.g. `{key}: {example}` (README, \"Your own dataset\")")
    if "{" in dataset["object"] or "}" in dataset["object"]:
        raise DDBError(f"{where}.object", f"{dataset['object']!r} holds braces",
                       "name what the images show in plain words, e.g. `object: bird`")


def _apply_format_defaults(name: str, dataset: dict, source: str) -> None:
    for key, fix in RENAMED_KEYS.items():
        if key in dataset:
            raise DDBError(f"{source}: datasets.{name}.{key}", "is no longer a key", fix)
    for section in SWITCHABLE_SECTIONS:
        if isinstance(dataset.get(section), bool):
            dataset[section] = {"enabled": dataset[section]}
    _check_table_keys(name, dataset, source)
    defaults = copy.deepcopy(FORMAT_DEFAULTS.get(dataset.get("format"), {}))
    if dataset.get("format") == "table":
        _merge_defaults(defaults, object_defaults(dataset["object"]))
    if (dataset.get("format") == "celeba"
            and (dataset.get("celeba") or {}).get("spurious_attribute", CELEBA_DEFAULT_SPURIOUS)
            != CELEBA_DEFAULT_SPURIOUS):
        defaults.pop("minority_groups")
    _merge_defaults(dataset, defaults)
    from .tuning import check_tune_shape

    check_tune_shape(name, dataset, source)  # before the schema: a flat list gets a plain message


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
    if error.validator == "pattern" and error.validator_value == PROMPT_PATTERN:
        others = [p for p in re.findall(r"\{[^{}]*\}", error.instance) if p != "{}"]
        found = (f"it has {', '.join(others)}, which is not a placeholder" if others
                 else f"it has `{{}}` {error.instance.count('{}')} times" if "{}" in error.instance
                 else "it has no `{}`")
        return (f"{error.instance!r}: the class token goes where `{{}}` stands, exactly once, and no other braces "
                f"are allowed ({found}); e.g. 'a photo of a {{}} bird'")
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys here: {allowed}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    return error.message


def validate_config(config: dict, source: "str | ConfigSources" = "config") -> dict:
    """Validate ``config`` in place against the schema (filling defaults) and return it.

    Raises :class:`DDBError` naming every offending key, e.g.
    ``config: datasets.demo.prune.thresholds.0: 'a' is not of type 'number'``. With ``source`` a
    :class:`ConfigSources` (the files Snakemake merged), each key is named with the file that set it:
    ``config.yaml: datasets.demo.prune.thresholds.0: ...``.
    """
    label = str(source)
    try:
        return _validate_config(config, label)
    except DDBError as error:
        if isinstance(source, ConfigSources):
            raise source.attribute(error, label) from None
        raise


def _validate_config(config: dict, source: str) -> dict:
    _refuse_non_finite(config, source)
    validator = _Validator(load_schema())
    # a sample sheet's minority groups default to each class's smallest training group, read from the sheet
    unnamed_minority = set()
    for name, dataset in (config.get("datasets") or {}).items():
        if isinstance(dataset, dict):
            if dataset.get("format") == "table" and "minority_groups" not in dataset:
                unnamed_minority.add(name)
            _apply_format_defaults(name, dataset, source)
    _read_yaml_exponents(validator, config)
    _refuse_non_finite(config, source)  # a string like '1e999' reads as inf
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = [f"{_key_path(e)}: {_describe(e)}" for e in errors]
        raise DDBError(source, "invalid configuration\n    " + "\n    ".join(lines),
                       "correct these keys (see workflow/schemas/config.schema.yaml for every key, "
                       "its type and default)")
    _check_seed(config, source)
    for name, dataset in config["datasets"].items():
        _check_dataset_name(name, source)
        _normalise_dataset(name, dataset, validator, source, minority_from_sheet=name in unnamed_minority)
        _resolve_drawn_root(name, dataset, config["results"])
    if config["targets"] is None:
        config["targets"] = list(config["datasets"])
    for target in config["targets"]:
        if target not in config["datasets"]:
            raise DDBError(f"{source}: targets", f"{target!r} is not a dataset of the config",
                           f"use one of {sorted(config['datasets'])}")
    return config


def _check_seed(config: dict, source: str) -> None:
    """`seed` names the run in results/<dataset>/ (the one that prepares the data), so with `seeds` it must be
    one of them."""
    if config["seeds"] and config["seed"] not in config["seeds"]:
        raise DDBError(f"{source}: seed", f"{config['seed']} is not one of seeds {config['seeds']}: the run of "
                       "`seed` lies in results/<dataset>/ and prepares the data every other seed reads",
                       f"add it to seeds or choose one of them (e.g. seed: {config['seeds'][0]})")


def _non_finite(value, path: list[str]):
    """Yield (key path, value) of every NaN or infinite number in ``value`` (dicts and lists walked)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield ".".join(path), value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, [*path, str(key)])
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _non_finite(item, [*path, str(index)])


def _refuse_non_finite(config: dict, source: str) -> None:
    """NaN and infinity (YAML `.nan`, `.inf`, `--config x=nan`) pass every `minimum` of the schema and would
    name files and candidates (`Pnan_nan-g1_1`): no key of the config takes one."""
    found = list(_non_finite(config, []))
    if found:
        key, value = found[0]
        more = f" (also {', '.join(k for k, _ in found[1:])})" if len(found) > 1 else ""
        raise DDBError(f"{source}: {key}", f"{value} is not a finite number{more}",
                       "give a finite number (YAML `.nan` and `.inf` are not accepted anywhere in the config)")


# A float written without a dot before its exponent (5e-6, 1E+3): YAML 1.1, which PyYAML and so Snakemake
# follow, reads it as a string. Where the schema asks for a number, it is read as the number it spells.
_YAML_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _number_for(error: jsonschema.ValidationError) -> float | int | None:
    """The number a string in a number-typed place spells (``'5e-6'``), or None."""
    if not (isinstance(error.instance, str) and _YAML_EXPONENT.fullmatch(error.instance.strip())):
        return None
    candidates = [error, *error.context] if error.validator in ("anyOf", "oneOf") else [error]
    types = set()
    for candidate in candidates:
        if candidate.validator == "type" and candidate.instance is error.instance:
            expected = candidate.validator_value
            types.update([expected] if isinstance(expected, str) else expected)
    value = float(error.instance)
    if "number" in types:
        return value
    if "integer" in types and value.is_integer():
        return int(value)
    return None


def _read_yaml_exponents(validator, config: dict) -> None:
    """Replace each string like ``'5e-6'`` where the schema expects a number by that number, in place."""
    for _ in range(100):  # each pass fixes every such value it reaches; a fixed one may reveal nested ones
        fixed = False
        for error in validator.iter_errors(config):
            number = _number_for(error)
            if number is None or not error.absolute_path:
                continue
            *parents, last = error.absolute_path
            container = config
            for key in parents:
                container = container[key]
            container[last] = number
            fixed = True
        if not fixed:
            return


def _normalise_dataset(name: str, dataset: dict, validator, source: str, *, minority_from_sheet: bool = False) -> None:
    training = None
    if dataset["format"] == "table":
        dataset["classes"], training = _table_classes(name, dataset, source)
    elif dataset["classes"] is None:
        dataset["classes"] = list(FORMAT_CLASSES[dataset["format"]])
    _check_classes(name, dataset, source)
    _check_model_paths(name, dataset, source)
    from .models.loading import check_random_refs

    check_random_refs(dataset, f"{source}: datasets.{name}")
    n_classes = len(dataset["classes"])
    if not isinstance(dataset["low_loss"]["k"], list):
        dataset["low_loss"]["k"] = [dataset["low_loss"]["k"]] * n_classes
    for key in (("prune", "thresholds"), ("retrain", "gammas"), ("low_loss", "k")):
        values = dataset[key[0]][key[1]]
        if len(values) != n_classes:
            raise DDBError(f"{source}: datasets.{name}.{'.'.join(key)}",
                           f"has {len(values)} values but the dataset has {n_classes} classes "
                           f"{dataset['classes']}", "give one value per class, in class-index order")
    if training is not None:
        _table_minority_groups(name, dataset, training, source, from_sheet=minority_from_sheet)
        if dataset["dfr"]["enabled"]:
            from .datasets.table import check_dfr_validation

            check_dfr_validation(dataset)
    dataset["minority_groups"] = _minority_groups(name, dataset, source)
    from .sharding import check_generation_config

    check_generation_config(dataset, f"{source}: datasets.{name}")
    from .tuning import check_tune

    check_tune(name, dataset, source)


def _check_dataset_name(name: str, source: str) -> None:
    """A dataset name is a folder of the results and a Snakemake wildcard: a plain identifier."""
    if not DATASET_NAME.fullmatch(str(name)):
        suggestion = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_") or "my_dataset"
        if suggestion[0].isdigit():
            suggestion = f"d_{suggestion}"
        raise DDBError(f"{source}: datasets.{name}", f"the dataset name {str(name)!r} is not a plain identifier "
                       "(it names folders under results/ and a wildcard of every rule)",
                       f"rename it with letters, digits and '_' only, not starting with a digit, e.g. {suggestion!r} "
                       "(and in `targets`)")
    if name in RESERVED_NAMES:
        raise DDBError(f"{source}: datasets.{name}", f"{name!r} is the folder of {RESERVED_NAMES[name]} under results/",
                       f"rename the dataset, e.g. {name + '_data'!r}")


def _resolve_drawn_root(name: str, dataset: dict, results: str) -> None:
    """The demo's images are drawn by prepare_dataset: a relative `root` of a synthetic dataset lies in the
    dataset's own data folder, <results>/<name>/data/ (`root: synthetic` -> results/demo/data/synthetic), so
    two configs with other results folders never draw over each other's images. A root already in that
    folder is kept (so resolving twice changes nothing); an absolute one is taken as is."""
    if dataset["format"] != "synthetic" or os.path.isabs(dataset["root"]):
        return
    data_folder = os.path.normpath(os.path.join(results, name, "data"))
    root = os.path.normpath(dataset["root"])
    if not root.startswith(data_folder + os.sep):
        root = os.path.normpath(os.path.join(data_folder, root))
    dataset["root"] = root


def _minority_groups(name: str, dataset: dict, source: str) -> dict[str, str | None]:
    """{class name: spurious value of its minority group, or None}, from a list (class-index order),
    a mapping by class name, or nothing (no minority group for any class)."""
    classes, given = dataset["classes"], dataset["minority_groups"]
    where = f"{source}: datasets.{name}.minority_groups"
    if given is None:
        return {c: None for c in classes}
    if isinstance(given, list):
        if len(given) != len(classes):
            raise DDBError(where, f"has {len(given)} values but the dataset has {len(classes)} classes {classes}",
                           "give one spurious value (or null) per class in class-index order, or a mapping "
                           "{class: spurious value}")
        return dict(zip(classes, given))
    unknown = sorted(set(given) - set(classes))
    missing = [c for c in classes if c not in given]
    if unknown or missing:
        raise DDBError(where, (f"names {unknown}, which are not classes of the dataset {classes}" if unknown
                               else f"does not name class(es) {missing}"),
                       "map every class name to the spurious value of its minority group (null for none), "
                       "e.g. {landbird: water, waterbird: land}")
    return {c: given[c] for c in classes}


def _table_classes(name: str, dataset: dict, source: str):
    """A sample sheet's classes (``y`` order) and training group sizes, read and checked before any job runs."""
    from .datasets.table import sheet_summary

    try:
        return sheet_summary(dataset)
    except DDBError as error:
        raise DDBError(error.where, f"{error.problem} ({source}: datasets.{name}.table)", error.fix) from None


def _table_minority_groups(name: str, dataset: dict, training, source: str, *, from_sheet: bool) -> None:
    """Each class's minority group: the entry's, else (no key, or a class the mapping leaves out) the class's
    smallest training group; a named one must be a training group of the sheet."""
    from .datasets.table import smallest_training_groups

    classes, given = dataset["classes"], dataset["minority_groups"]
    smallest = smallest_training_groups(classes, training)
    if from_sheet:
        dataset["minority_groups"] = smallest
    elif isinstance(given, dict):
        unknown = sorted(set(given) - set(classes))
        if unknown:
            raise DDBError(f"{source}: datasets.{name}.minority_groups", f"names {unknown}, which are not classes "
                           f"of the sample sheet {classes}", "map class names to spurious values, e.g. "
                           f"{{{classes[0]}: <value>}}; a class left out gets its smallest training group")
        dataset["minority_groups"] = {c: given[c] if c in given else smallest[c] for c in classes}
    named = _minority_groups(name, dataset, source)
    for class_name, value in named.items():
        values = sorted(training.loc[(training["label"] == class_name) & (training["count"] > 0), "spurious"])
        if value is not None and value not in values:
            raise DDBError(f"{source}: datasets.{name}.minority_groups.{class_name}",
                           f"names spurious value {value!r}, but the training images of {class_name} in the sample "
                           f"sheet have {values}", f"set it to one of {values}, null for no minority group, or "
                           "remove it to take the class's smallest training group")


def minority_group_name(dataset_cfg: dict, y: int) -> str | None:
    """The group name (``landbird_water``) of class ``y``'s minority group, or None if it has none."""
    from .datasets.manifest import group_name

    class_name = dataset_cfg["classes"][y]
    spurious = dataset_cfg["minority_groups"].get(class_name)
    return None if spurious is None else group_name(class_name, spurious)


# Formats whose labels are a fixed set of indices (the config only names them).
FIXED_CLASS_COUNT = {"synthetic": 2, "waterbirds": 2, "celeba": 2}


def _check_classes(name: str, dataset: dict, source: str) -> None:
    """Class names the dataset cannot have, found before any job runs (a job would fail half-way)."""
    classes, fmt = dataset["classes"], dataset["format"]
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise DDBError(f"{source}: datasets.{name}.classes",
                       f"lists {', '.join(f'{c!r} {classes.count(c)} times' for c in repeated)}: {classes}",
                       "give every class its own name, in class-index order (names become folders and wildcards)")
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
                       "use an inpainting model such as sd2-community/stable-diffusion-2-inpainting")


class ConfigSources:
    """The config files (and `--config` overrides) Snakemake merged into ``config``, to name the one a
    key came from. ``sources`` lists (label, raw content) from the highest precedence down: Snakemake merges
    mappings key by key and lets a list or a value replace what lay below it."""

    def __init__(self, sources: list[tuple[str, dict]]):
        self.sources = [(label, content) for label, content in sources if isinstance(content, dict)]

    @classmethod
    def from_snakemake(cls, configfiles, cli_configfiles, overrides: dict | None,
                       replace_workflow_config: bool = False) -> "ConfigSources":
        """From Snakemake's ``workflow.configfiles`` (the command line's `--configfile` files, then the
        Snakefile's `configfile:`), ``workflow.overwrite_configfiles`` (the command line's) and
        ``workflow.config_settings.config`` (`--config`). Snakemake loads the Snakefile's file first and then
        updates it with the command line's files in order and `--config` last."""
        cli = [Path(f) for f in cli_configfiles or []]
        own = [Path(f) for f in configfiles or [] if Path(f).absolute() not in {c.absolute() for c in cli}]
        files = list(reversed(cli)) + ([] if replace_workflow_config else list(reversed(own)))
        sources = [("--config overrides", overrides or {})] if overrides else []
        for path in files:
            try:
                content = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue
            sources.append((_shown_path(path), content))
        return cls(sources)

    def __str__(self) -> str:
        labels = [label for label, _ in self.sources]
        if len(labels) == 1:
            return labels[0]
        return "config (" + (", then ".join(labels) if labels else "no file") + ")"

    def origin(self, key_path: str) -> str | None:
        """The label of the source that set ``key_path`` (``datasets.demo.prune.thresholds.0``), or None
        where none did (a default)."""
        keys = key_path.split(".")
        for label, content in self.sources:
            node = content
            for key in keys:
                if not isinstance(node, dict):
                    return label  # a list or value set here replaced whatever lay below it
                if key not in node:
                    break
                node = node[key]
            else:
                return label
        return None

    def describe(self, key_path: str) -> str:
        origin = self.origin(key_path)
        if origin is not None:
            return origin
        labels = [label for label, _ in self.sources]
        return f"config (a default: not set in {', '.join(labels) or 'any file'}, checked in that order)"

    def attribute(self, error: DDBError, label: str) -> DDBError:
        """``error`` (raised with ``label`` in place of a file) with each key named by its file."""
        prefix = f"{label}: "
        if error.where.startswith(prefix):
            rest = error.where[len(prefix):]
            return DDBError(f"{self.describe(rest.split(' ')[0])}: {rest}", error.problem, error.fix)
        if error.where == label and error.problem.startswith("invalid configuration\n"):
            head, *lines = error.problem.split("\n    ")
            lines = [f"{self.describe(line.split(':')[0])}: {line}" for line in lines]
            return DDBError("config", "\n    ".join([head, *lines]), error.fix)
        return error


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory where it lies below it, else as given."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
