"""Shared fixtures: a reduced demo workflow run once per session. Every test file is in tests/unit/ or
tests/workflow/, and each test under tests/workflow/ is marked `workflow`. The helpers the tests import are
in helpers.py."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest

from helpers import small_config, write_config, run_snakemake

TESTS = Path(__file__).resolve().parent
UNIT_TESTS, WORKFLOW_TESTS = TESTS / "unit", TESTS / "workflow"


def pytest_collection_modifyitems(items):
    elsewhere = sorted({str(item.path.relative_to(TESTS)) for item in items
                        if TESTS in item.path.parents and item.path.parent not in (UNIT_TESTS, WORKFLOW_TESTS)})
    if elsewhere:
        raise pytest.UsageError(f"tests/{', tests/'.join(elsewhere)}: a test file belongs in tests/unit/ (named after "
                                "the module it tests, if it never runs Snakemake) or tests/workflow/ (if it does)")
    for item in items:
        if item.path.parent == WORKFLOW_TESTS:
            item.add_marker(pytest.mark.workflow)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A finished run of the reduced demo; tests that change it must copy it first (``demo_copy``)."""
    workdir = tmp_path_factory.mktemp("demo_run")
    write_config(workdir, small_config())
    result = run_snakemake(workdir, "--cores", "2")
    (workdir / "snakemake.out").write_text(result.stdout + result.stderr)
    return workdir


@pytest.fixture
def demo_copy(demo_run, tmp_path) -> Path:
    """A private copy of the finished demo run (results, logs and Snakemake's metadata, mtimes kept)."""
    target = tmp_path / "run"
    shutil.copytree(demo_run, target, symlinks=True)
    return target


# ---- a rule script run in-process, with what Snakemake would give it


@pytest.fixture
def in_process_step(monkeypatch):
    """run_step is made for a one-job process: it redirects these, sets up logging, torch's threads and a
    SIGTERM handler; put them back after."""
    import logging

    import torch

    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    monkeypatch.setattr(logging.getLogger("ddb"), "handlers", list(logging.getLogger("ddb").handlers))
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGTERM)
    yield
    torch.set_num_threads(threads)
    assert signal.getsignal(signal.SIGTERM) == handler  # run_step put it back itself
    signal.signal(signal.SIGTERM, handler)
