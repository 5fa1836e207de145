"""Where each value of a resolved dataset entry comes from (``ddb config NAME``).

A value a step receives is the last of four layers: the config files (later ones override earlier ones,
as Snakemake merges ``--configfile``), the dataset format's defaults (``ddb.config.FORMAT_DEFAULTS``: the
paper's setting for its datasets, the demo's own), the schema's defaults, and what loading derives from
them (class names, one value per class, a drawn dataset's root under the results folder). This module
replays the layers one at a time with the same functions the workflow loads its config with, so what it
prints is what the jobs get.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import SWITCHABLE_SECTIONS, ConfigSources, _Validator, _apply_format_defaults, load_schema, validate_config
from .errors import DDBError

SCHEMA_DEFAULT, DERIVED = "schema default", "derived"
_MISSING = object()


@dataclass(frozen=True)
class ResolvedValue:
    key: str  # dotted path inside the entry, e.g. "prune.thresholds"
    value: object
    source: str  # a config file, "format default (<format>)", SCHEMA_DEFAULT or DERIVED


def _read_yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DDBError(path, "the config file does not exist", "give an existing file with --configfile") from None
    except yaml.YAMLError as error:
        raise DDBError(path, f"not valid YAML ({error})", "fix the syntax at the line shown") from error
    if loaded is not None and not isinstance(loaded, dict):
        raise DDBError(path, f"holds a {type(loaded).__name__}, not a mapping of keys", "write `key: value` lines")
    return loaded or {}


def _update(target: dict, update: dict) -> None:
    """``update`` merged into ``target`` section by section, as Snakemake merges config files."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _leaves(entry: dict, prefix: str = "") -> dict[str, object]:
    """Every value of ``entry`` by dotted key; a list is one value."""
    found = {}
    for key, value in entry.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            found.update(_leaves(value, f"{path}."))
        else:
            found[path] = value
    return found


def _set_by(key: str, leaves: dict[str, object]) -> bool:
    """Whether ``key`` or a section above it (``prune: false``) is one of ``leaves``."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in leaves for i in range(1, len(parts) + 1))


@dataclass(frozen=True)
class _Loaded:
    files: list[tuple[str, dict]]  # (path, content) of each config file, in the order given
    merged: dict  # the files merged as snakemake merges them
    label: str  # the files, as a config error names them


def _load(config_files: list[str | Path], name: str) -> _Loaded:
    """``config_files`` read and merged, refusing a ``name`` that no file defines as a dataset."""
    paths = [Path(f) for f in config_files]
    files = [(str(path), _read_yaml(path)) for path in paths]
    merged: dict = {}
    for _, content in files:
        _update(merged, content)
    datasets = merged.get("datasets") or {}
    if name not in datasets:
        raise DDBError(", ".join(map(str, paths)), f"no dataset {name!r} (datasets: {sorted(datasets)})",
                       "name one of them, or give the config file that defines it with --configfile")
    label = str(paths[-1]) if len(paths) == 1 else "config files " + ", ".join(map(str, paths))
    return _Loaded(files, merged, label)


def resolve_entry(config_files: list[str | Path], name: str) -> list[ResolvedValue]:
    """Dataset ``name`` as the workflow resolves it from ``config_files``, each value with its source."""
    loaded = _load(config_files, name)
    merged, source = loaded.merged, loaded.label
    entries = []
    for path, content in loaded.files:
        entry = (content.get("datasets") or {}).get(name)
        if isinstance(entry, dict):
            # `prune: false` sets prune.enabled only
            entry = {k: {"enabled": v} if k in SWITCHABLE_SECTIONS and isinstance(v, bool) else v
                     for k, v in entry.items()}
            entries.append((path, {"datasets": {name: entry}}))
    # the file that set a key, as a config error names it: the last file wins
    given_by = ConfigSources(list(reversed(entries)))

    # the layers, replayed on copies: the format's defaults, then the schema's, then loading
    with_format = copy.deepcopy(merged)
    for other, entry in with_format["datasets"].items():
        if isinstance(entry, dict):
            _apply_format_defaults(other, entry, source)
    with_schema = copy.deepcopy(with_format)
    list(_Validator(load_schema()).iter_errors(with_schema))  # fills the schema's defaults as it validates
    resolved = validate_config(copy.deepcopy(merged), source)["datasets"][name]

    format_leaves = _leaves(with_format["datasets"][name])
    before_loading = _leaves(with_schema["datasets"][name])
    fmt = resolved["format"]
    values = []
    for key, value in _leaves(resolved).items():
        if (given := given_by.origin(f"datasets.{name}.{key}")) is not None:
            origin = given
        elif _set_by(key, format_leaves):
            origin = f"format default ({fmt})"
        elif _set_by(key, before_loading):
            origin = SCHEMA_DEFAULT
        else:
            origin = DERIVED
        if origin == SCHEMA_DEFAULT and before_loading.get(key, _MISSING) != value:
            origin = DERIVED  # e.g. the format's class names in place of the schema's null
        elif origin != DERIVED and before_loading.get(key, _MISSING) != value:
            origin += f", {DERIVED}"  # e.g. one k given for every class, a relative root placed
        values.append(ResolvedValue(key, value, origin))
    return values


def format_entry(name: str, values: list[ResolvedValue]) -> str:
    """One line per value: key, value (as YAML would spell it) and its source."""
    return _table(f"datasets.{name}, as the workflow resolves it (key, value, where it comes from):",
                  [(v.key, json.dumps(v.value, default=str), v.source) for v in values])


def _table(title: str, rows: list[tuple[str, str, str]]) -> str:
    """``title``, then one aligned line per (key, value, source); a value longer than 48 characters pushes
    only its own line's source to the right."""
    width = max(len(key) for key, _, _ in rows)
    value_width = min(48, max(len(value) for _, value, _ in rows))
    return "\n".join([title, *(f"  {key:<{width}}  {value:<{value_width}}  {origin}" for key, value, origin in rows)])


@dataclass(frozen=True)
class RuleResource:
    rule: str
    key: str  # gpu, mem_mb, runtime (minutes, first attempt), threads
    value: object
    source: str  # the layer that set it last (ddb.resources.ResourcePolicy.explained)


def resolve_resources(config_files: list[str | Path], name: str,
                      environ: dict[str, str] | None = None) -> list[RuleResource]:
    """What each cluster rule of dataset ``name``'s own run asks for, as the workflow computes it from
    ``config_files`` (ddb.resources), each value with the layer that set it: the rule's resource class, the
    config's ``resources.rules``, the dataset's ``resources`` (scale, max, rules) or the estimate from the
    job's work. Rules that declare no resources (seconds of work) are left out."""
    from .resources import ResourcePolicy
    from .steps import STEPS

    loaded = _load(config_files, name)
    config = validate_config(loaded.merged, loaded.label)
    entry = config["datasets"][name]
    given_by = ConfigSources(list(reversed(loaded.files)))  # the last file wins

    def where(key_path: str) -> str:
        origin = given_by.origin(key_path)
        return f"{origin}: {key_path}" if origin else f"{key_path} (a default)"

    policy = ResourcePolicy(config, {name: entry}, environ or {})
    found = []
    for step in STEPS:
        for rule in step.rules:
            if rule.resources is None or rule.runs == "seed" or not rule.needed_for(entry):
                continue
            for key, (value, source) in policy.explained(rule.name, name, where=where).items():
                found.append(RuleResource(rule.name, key, value, source))
    return found


def format_resources(name: str, resources: list[RuleResource]) -> str:
    """One line per rule and resource: value and the layer that set it."""
    return _table(f"what each cluster job of {name} asks for (runtime in minutes, first attempt; where it comes from):",
                  [(f"{r.rule}.{r.key}", str(r.value), r.source) for r in resources])
