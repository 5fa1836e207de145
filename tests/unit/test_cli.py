"""`ddb inspect --help` names every step `ddb inspect --step` accepts: the help is made from the same list."""

import subprocess
import sys

from helpers import REPO
from ddb.presenters.overview import STEPS, resolve_step


def test_inspect_help_lists_every_step_and_each_alias_it_names_resolves():
    result = subprocess.run([sys.executable, "-m", "ddb", "inspect", "--help"], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO / "workflow"), "COLUMNS": "1000"}, check=True)
    line = next(line for line in result.stdout.splitlines() if "one step's table: " in line)
    listed, aliases = line.split("one step's table: ")[1].split(" (aliases: ")
    assert listed.split(", ") == [name for name, _ in STEPS]
    assert "dfr" in listed.split(", ") and "tune" in listed.split(", ")
    assert [resolve_step(alias) for alias in aliases.rstrip(")").split(", ")] == [name for name, _ in STEPS]
