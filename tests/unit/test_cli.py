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


# ---- a bad input: one line `ddb: <where>: <problem>` on stderr, exit 1, for every command


def bad_input(capsys, argv: list[str]) -> str:
    from ddb.cli import BAD_INPUT, main

    assert main(argv) == BAD_INPUT == 1
    captured = capsys.readouterr()
    err = captured.err.rstrip("\n")
    assert err.startswith("ddb: ") and "\n" not in err and "Traceback" not in err and not captured.out, err
    return err


def test_inspect_a_missing_folder_an_unknown_step_or_sample_exits_1_with_one_line(tmp_path, capsys):
    assert bad_input(capsys, ["inspect", str(tmp_path / "nothing")]) == (
        f"ddb: {tmp_path / 'nothing'}: no such results folder (run snakemake first, or check the path)")
    run = tmp_path / "results" / "demo"
    (run / "data").mkdir(parents=True)
    assert bad_input(capsys, ["inspect", str(run), "--step", "nonsense"]).startswith(
        "ddb: --step: unknown step 'nonsense'; choose one of: prepare_dataset, train_erm")
    assert "prepare_dataset not run yet" in bad_input(capsys, ["inspect", str(run), "--sample", "nope123"])


def test_config_of_an_unknown_dataset_exits_1_with_one_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text((REPO / "config.yaml").read_text())
    err = bad_input(capsys, ["config", "nope", "--configfile", str(config)])
    assert err.startswith(f"ddb: {config}: no dataset 'nope'")


def test_sheet_of_a_folder_without_images_exits_1_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = bad_input(capsys, ["sheet", str(tmp_path / "empty")])
    assert err.startswith(f"ddb: {tmp_path / 'empty'}") and not (tmp_path / "empty" / "samples.csv").exists()
