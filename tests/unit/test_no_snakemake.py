"""tests/unit/conftest.py keeps Snakemake out of the unit tests: each way of starting it fails the test with
where the test belongs, and other subprocesses run as usual."""

from __future__ import annotations

import subprocess
import sys

import pytest

MOVE = "belongs in tests/workflow/"


@pytest.mark.parametrize("argv", [[sys.executable, "-m", "snakemake", "--version"], ["snakemake", "--version"],
                                  [sys.executable, "-c", "from snakemake.api import SnakemakeApi"],
                                  f"{sys.executable} -m snakemake --version"])
def test_starting_the_snakemake_cli_fails_the_test(argv):
    with pytest.raises(AssertionError, match=MOVE):
        subprocess.run(argv, capture_output=True, shell=isinstance(argv, str))


def test_the_snakemake_api_fails_the_test():
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings

    with pytest.raises(AssertionError, match=r"belongs in tests/workflow/.*SnakemakeApi"):
        SnakemakeApi(OutputSettings())


def test_other_subprocesses_run():
    result = subprocess.run([sys.executable, "-c", "print('snakemake' + '.smk')"], capture_output=True, text=True)
    assert result.stdout == "snakemake.smk\n"
