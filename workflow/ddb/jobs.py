"""What a rule declares for one job, as a frozen record a rule script's ``main(job)`` takes.

:func:`ddb.scripting.run_step` builds one :class:`Job` from the ``snakemake`` object before the step runs,
and passes it on; no module keeps a copy, so a step called from a test or a second job in one process sees
only what it is given. What a step depends on besides its inputs travels explicitly: the job's
``fingerprint`` goes to the checkpoint code (``PartialShard``, ``process_shard``, ``TrainingCheckpoint``)
as an argument.

Attribute access stays that of Snakemake, so a rule script reads as the rule it belongs to:
``job.input.manifest``, ``job.output[0]`` (an unnamed output), ``job.params.cfg``, ``job.wildcards.src``.
The differences:

- every file is a :class:`pathlib.Path`; a named entry the rule gives as a list (an input function, an
  ``expand``) stays a list, however many files it holds, and an optional input the rule left out is an
  empty list; a named entry of one file is that Path;
- :class:`Files` iterates over every file in declared order (as Snakemake does), and ``.items()`` gives
  the named entries;
- ``job.log`` is the one log file (None for a rule without one), ``job.seed`` the ``seed`` param (None where
  the rule has none), ``job.threads`` the torch threads the job computes with
  (:func:`ddb.scripting.compute_threads`);
- nothing is writable: the record, its mappings and the names in them.

The config sections a rule passes as params stay dicts here (what reruns after a config edit is decided
on them); a step's typed settings are built from them by :func:`ddb.settings.dataset_settings`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any


def _declared_first(record, declared: str, name: str):
    """Attribute ``name`` of ``record``: a declared name (in its mapping ``declared``) wins over a method of the
    same name, as in Snakemake's named lists (an output named `index`, a param named `items`)."""
    if not name.startswith("_"):
        values = object.__getattribute__(record, declared)
        if name in values:
            return values[name]
    return object.__getattribute__(record, name)


class Named(Mapping):
    """A read-only mapping whose keys are also attributes (``params.cfg``, ``wildcards.src``)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None):
        object.__setattr__(self, "_values", MappingProxyType(dict(values or {})))

    def __getitem__(self, key: str):
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattribute__(self, name: str):
        return _declared_first(self, "_values", name)

    def __getattr__(self, name: str):
        if name.startswith("_"):  # never a declared name; and no recursion while an instance is half made
            raise AttributeError(name)
        raise AttributeError(f"the rule declares no {name!r} (it declares: {', '.join(self._values) or 'none'})")

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"a job's {type(self).__name__} is read-only")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._values)!r})"


class Files:
    """A rule's input or output files: every file in declared order by index (``output[0]``), ``len`` and
    iteration, the named entries by attribute (``input.manifest``, ``output.index``), ``get`` and ``items``."""

    __slots__ = ("_paths", "_named")

    def __init__(self, paths: Sequence[Path] = (), named: Mapping[str, Path | list[Path]] | None = None):
        object.__setattr__(self, "_paths", tuple(paths))
        object.__setattr__(self, "_named", Named(named))

    def __getitem__(self, index):
        return self._paths[index]

    def __len__(self) -> int:
        return len(self._paths)

    def __iter__(self) -> Iterator[Path]:
        return iter(self._paths)

    def __getattribute__(self, name: str):
        return _declared_first(self, "_named", name)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._named, name)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError("a job's files are read-only")

    def get(self, name: str, default=None):
        return self._named.get(name, default)

    def items(self):
        return self._named.items()

    def names(self) -> list[str]:
        return list(self._named)

    def __repr__(self) -> str:
        return f"Files({dict(self._named.items())!r}, all={[str(p) for p in self._paths]!r})"


@dataclass(frozen=True)
class Job:
    """One job of a rule, as the rule declares it (see the module's docstring)."""

    rule: str
    wildcards: Named
    input: Files
    output: Files
    params: Named
    resources: Named
    config: Mapping
    log: Path | None
    seed: int | None
    threads: int
    fingerprint: str | None


def files_of(declared) -> Files:
    """:class:`Files` from what Snakemake gives a script as ``input`` or ``output`` (a named list), or what
    a test gives instead: a list, a dict of names, a namespace of names."""
    if declared is None:
        return Files()
    named = {name: _paths(value) for name, value in _names(declared).items()}
    if isinstance(declared, (list, tuple)):  # Snakemake's named list: every file, named or not, in order
        paths = [Path(p) for p in declared]
    else:
        paths = [p for value in named.values() for p in (value if isinstance(value, list) else [value])]
    return Files(paths, named)


def _paths(value) -> Path | list[Path]:
    if isinstance(value, (str, Path)):
        return Path(value)
    return [Path(p) for p in value]


def named_of(declared) -> Named:
    """:class:`Named` from Snakemake's params, wildcards or resources (named lists, or a namespace), or
    what a test gives instead (a dict, a list with names)."""
    return Named(None if declared is None else _names(declared))


def _names(declared) -> dict:
    """The named entries of a Snakemake named list (``items``), or of a namespace or a list with named
    attributes (tests); a plain list has none."""
    if hasattr(declared, "items"):
        return dict(declared.items())
    return {name: value for name, value in getattr(declared, "__dict__", {}).items() if not name.startswith("_")}
