"""Unit tests never run Snakemake: starting it (its CLI in a subprocess, or its API in this process) fails the
test, so a test that needs the workflow is found here and moved to tests/workflow/."""

from __future__ import annotations

import os
import subprocess

import pytest


def runs_snakemake(args) -> bool:
    """Whether a subprocess argv starts Snakemake: the `snakemake` command, `python -m snakemake`, or
    `python -c` code that imports it."""
    if isinstance(args, (str, bytes, os.PathLike)):
        argv = os.fsdecode(args).split()
    else:
        argv = [os.fsdecode(arg) for arg in args]
    if argv and os.path.basename(argv[0]) == "snakemake":
        return True
    for flag, value in zip(argv, argv[1:]):
        if flag == "-m" and value.split(".")[0] == "snakemake":
            return True
        if flag == "-c" and ("import snakemake" in value or "from snakemake" in value):
            return True
    return False


class SnakemakeInAUnitTest(AssertionError):
    pass


MOVE = "this test runs Snakemake: it belongs in tests/workflow/, not tests/unit/"


@pytest.fixture(autouse=True)
def no_snakemake(monkeypatch):
    popen_init = subprocess.Popen.__init__

    def refusing_popen(self, args, *rest, **kwargs):
        if runs_snakemake(args):
            # what Popen.__del__ and repr read, as for a process that never started
            self.args, self.returncode, self._child_created = args, None, False
            raise SnakemakeInAUnitTest(f"{MOVE} (subprocess {args!r})")
        popen_init(self, args, *rest, **kwargs)

    def refusing_api(self):
        raise SnakemakeInAUnitTest(f"{MOVE} (snakemake.api.SnakemakeApi)")

    from snakemake.api import SnakemakeApi

    monkeypatch.setattr(subprocess.Popen, "__init__", refusing_popen)
    monkeypatch.setattr(SnakemakeApi, "__post_init__", refusing_api)
