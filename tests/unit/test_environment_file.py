"""envs/ddb.yaml (the rules' software under `snakemake --sdm conda`) lists what pyproject.toml lists, with
the same version specifiers, so a job run through conda gets the software a pip install gets."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
# what runs Snakemake itself, not a rule: the SLURM job's Snakemake is the submitting interpreter's
CONTROLLER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}
# pinned in the environment file to the versions the README's install line names (the demo's bytes
# depend on them); each pin must still satisfy pyproject's specifier
PINNED = {"torch", "torchvision"}


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def environment_file() -> dict:
    return yaml.safe_load((REPO / "envs" / "ddb.yaml").read_text())


def environment_requirements() -> dict[str, Requirement]:
    pip = next(d["pip"] for d in environment_file()["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {canonicalize_name(r.name): r for r in map(Requirement, pip)}


def readme_pins() -> dict[str, str]:
    line = next(l for l in (REPO / "README.md").read_text().splitlines() if l.startswith("pip install torch=="))
    return {canonicalize_name(name): version for name, version in re.findall(r"([\w-]+)==([\w.+]+)", line)}


def test_the_environment_file_lists_the_packages_of_pyproject():
    expected = set(pyproject_requirements()) - CONTROLLER_ONLY
    assert set(environment_requirements()) == expected, (
        f"only in pyproject.toml: {sorted(expected - set(environment_requirements()))}; "
        f"only in envs/ddb.yaml: {sorted(set(environment_requirements()) - expected)}")


def test_the_version_specifiers_are_pyprojects():
    project, environment = pyproject_requirements(), environment_requirements()
    for name, requirement in environment.items():
        if name in PINNED:
            continue
        assert requirement.specifier == project[name].specifier, (
            f"{name}: envs/ddb.yaml says {requirement.specifier or 'any'}, pyproject.toml "
            f"{project[name].specifier or 'any'}")


def test_torch_pins_are_the_readmes_and_satisfy_pyproject():
    project, environment, pins = pyproject_requirements(), environment_requirements(), readme_pins()
    for name in PINNED:
        assert environment[name].specifier == SpecifierSet(f"=={pins[name]}"), name
        assert project[name].specifier.contains(pins[name]), name


def test_the_python_version_satisfies_requires_python():
    python = next(d for d in environment_file()["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(python.split("=", 1)[1])
