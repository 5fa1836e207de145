"""A step's code version: one hash of every package file its script runs, found by reading the imports.

Snakemake reruns a ``script:`` rule when its script changes, not when a module the script imports does,
so each rule gets :func:`code_version` of its step as a param. The modules counted are the script's import
closure inside the ``ddb`` package: every ``import``/``from`` statement, at module level or inside a
function, followed from module to module (a package's ``__init__.py`` runs before its submodules and is
counted with them), and the modules a module names as a string for ``importlib`` (the dataset formats). A
few files count although nothing imports them: the data a module reads at run time (:data:`DATA_FILES`).
A few modules are left out because an edit of them cannot change what a step computes
(:data:`RESULT_NEUTRAL`, each with its reason).
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PACKAGE_NAME = "ddb"

# Package modules whose edits cannot change a step's result: left out of every code version.
RESULT_NEUTRAL = {
    "errors.py": "the DDBError type: only how an error reads",
    "job_stats.py": "the setup-time and GPU-memory lines a job writes to its log",
    "steps.py": "which rule writes which artifact, and the steps' names and resource classes: the DAG's "
                "plan, an error's fix and ddb inspect read it, no computation does",
    "storage/remake.py": "the rule that an error's fix names for a damaged artifact",
}
# What a module reads at run time besides its imports (paths relative to the package).
DATA_FILES = {
    "models/loading.py": ["assets/demo_inpainter"],  # the shipped `ddb:demo_inpainter`
    "models/random_init.py": ["assets/configs"],  # the published configs of the `random:` models
}
# A dotted module path in a string constant, as importlib is given it.
_MODULE_STRING = re.compile(rf"^{PACKAGE_NAME}(\.\w+)+$")


def _module_file(dotted: str) -> Path | None:
    """The file of package module ``dotted`` (``ddb.a.b``), a package's ``__init__.py``; None outside it."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE_NAME:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _dotted_name(file: Path) -> str:
    relative = file.relative_to(PACKAGE).with_suffix("")
    parts = [PACKAGE_NAME, *relative.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _with_parents(dotted: str) -> list[str]:
    """``ddb.a.b`` and the packages that run before it: ``ddb``, ``ddb.a``."""
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imported_modules(source: str, dotted: str | None = None) -> set[str]:
    """The package modules that ``source`` imports (``dotted``: its own module name, for relative imports;
    None for a script), named in full (``ddb.models.loading``); parents not included."""
    own_file = _module_file(dotted) if dotted is not None else None
    is_package = own_file is not None and own_file.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if dotted is None:
                    continue
                anchor = dotted.split(".")
                # a module's `.` is its package; a package's `.` is itself
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # `from pkg import name`: name may be a submodule
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
            found.add(node.value)
    return {name for name in found if _module_file(name) is not None}


@lru_cache(maxsize=None)
def _imports_of(file: Path) -> frozenset[str]:
    return frozenset(imported_modules(file.read_text(), _dotted_name(file)))


def import_closure(script: str | Path) -> list[str]:
    """The package files (relative to the package, sorted) that running ``script`` imports, directly or
    through other package modules, parents' ``__init__.py`` included."""
    pending = [name for imported in imported_modules(Path(script).read_text()) for name in _with_parents(imported)]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or _module_file(name) is None:
            continue
        seen.add(name)
        for imported in _imports_of(_module_file(name)):
            pending.extend(_with_parents(imported))
    return sorted(_module_file(name).relative_to(PACKAGE).as_posix() for name in seen)


def counted_files(script: str | Path) -> list[str]:
    """What :func:`code_version` hashes: the import closure less :data:`RESULT_NEUTRAL`, plus the
    :data:`DATA_FILES` of the modules in it (relative to the package)."""
    modules = [m for m in import_closure(script) if m not in RESULT_NEUTRAL]
    data = sorted({path for module in modules for folder in DATA_FILES.get(module, [])
                   for path in _files_under(folder)})
    return modules + data


def _files_under(relative: str) -> list[str]:
    path = PACKAGE / relative
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [p.relative_to(PACKAGE).as_posix() for p in files if "__pycache__" not in p.parts]


@lru_cache(maxsize=None)
def _file_digest(relative: str) -> bytes:
    return hashlib.sha256((PACKAGE / relative).read_bytes()).digest()


def code_version(script: str | Path) -> str:
    """A short hash of every file :func:`counted_files` lists, names and contents."""
    digest = hashlib.sha256()
    for relative in counted_files(script):
        digest.update(relative.encode())
        digest.update(_file_digest(relative))
    return digest.hexdigest()[:16]
