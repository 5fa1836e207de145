"""A step's code version is the hash of its script's import closure in the package (ddb.code_versions): an
edit of any module the step runs changes it, an edit of anything else does not."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))

from ddb import code_versions  # noqa: E402


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package and the scripts that code_versions reads instead of the checkout's."""
    shutil.copytree(REPO / "workflow" / "ddb", tmp_path / "workflow" / "ddb",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    monkeypatch.setattr(code_versions, "PACKAGE", tmp_path / "workflow" / "ddb")
    code_versions._imports_of.cache_clear()
    code_versions._file_digest.cache_clear()
    yield tmp_path
    code_versions._imports_of.cache_clear()
    code_versions._file_digest.cache_clear()


def version(root: Path, step: str) -> str:
    code_versions._file_digest.cache_clear()
    code_versions._imports_of.cache_clear()
    return code_versions.code_version(root / "scripts" / f"{step}.py")


def test_the_closures_hold_the_modules_a_hand_list_missed():
    def closure(step):
        return code_versions.import_closure(REPO / "scripts" / f"{step}.py")

    for step in ("mask", "inpaint", "ig_score"):
        assert "scripting.py" in closure(step)
    assert "textual_inversion.py" in closure("inpaint")  # inpainting.py loads the learned tokens with it
    assert "config.py" in closure("mask")
    # the dataset formats, which datasets/__init__.py imports by name through importlib
    assert {"datasets/synthetic.py", "datasets/waterbirds.py"} <= set(closure("prepare_dataset"))
    # a package's __init__.py runs before its modules
    assert {"__init__.py", "models/__init__.py"} <= set(closure("ig_score"))
    assert "inpainting.py" not in closure("prune")


def test_relative_imports_resolve_from_modules_and_packages():
    source = "from .loading import x\nfrom .. import errors\nfrom ..datasets import manifest\nimport numpy\n"
    assert code_versions.imported_modules(source, "ddb.models.segmentation") == {
        "ddb.models.loading", "ddb", "ddb.errors", "ddb.datasets", "ddb.datasets.manifest"}
    # in a package's __init__.py, `.` is the package itself
    assert "ddb.datasets.manifest" in code_versions.imported_modules("from .manifest import EXCLUDED\n",
                                                                      "ddb.datasets")


def test_data_files_count_and_neutral_modules_do_not():
    counted = code_versions.counted_files(REPO / "scripts" / "inpaint.py")
    assert any(path.startswith("assets/demo_inpainter/") for path in counted)
    assert any(path.startswith("assets/configs/") for path in counted)
    assert not set(code_versions.RESULT_NEUTRAL) & set(counted)


@pytest.mark.parametrize("step", ["mask", "inpaint", "ig_score", "prune", "retrain", "evaluate"])
def test_editing_any_module_of_a_step_changes_its_version_and_no_other_edit_does(package_copy, step):
    before = version(package_copy, step)
    package = package_copy / "workflow" / "ddb"
    counted = set(code_versions.counted_files(package_copy / "scripts" / f"{step}.py"))
    modules = sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py")
                     if "__pycache__" not in path.parts)
    for module in modules:
        file = package / module
        original = file.read_text()
        file.write_text(original + "\n# edited\n")
        changed = version(package_copy, step) != before
        file.write_text(original)
        assert changed == (module in counted), f"editing {module}: {step}'s version changed: {changed}"
    assert version(package_copy, step) == before
