"""Same seed, same results: a second run of the demo from scratch, shards side by side, results elsewhere.

The session's `demo_run` ran with `--cores 2` (jobs one after the other, but for the light ones). Here
a second run starts from nothing in another working directory, writes its results to another folder
(config key `results`), and runs the generation shards side by side (`--set-threads` of 1 lets two
of them share the 2 cores). Every artifact must come out the same: Parquet tables equal (their
footer names library versions, not content), every other file (PNG, tar, eval.json, model.pt,
safetensors) byte for byte."""

from __future__ import annotations

import re

import pandas as pd

from helpers import run_snakemake, small_config, write_config
from _reliability import artifacts, assert_same_artifact


SHARD_RULES = {"mask", "inpaint", "ig_score"}


def most_shards_at_once(log: str) -> int:
    """The largest number of mask/inpaint/ig_score jobs Snakemake's log shows running together."""
    running, pending, most = {}, None, 0
    for line in log.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            pending = match.group(1)
        elif (match := re.match(r"^jobid: (\d+)$", line.strip())) and pending:
            running[match.group(1)] = pending
            pending = None
            most = max(most, sum(rule in SHARD_RULES for rule in running.values()))
        elif match := re.match(r"^Finished jobid: (\d+)", line.strip()):
            running.pop(match.group(1), None)
    return most


def test_second_run_from_scratch_with_shards_side_by_side_is_identical(demo_run, tmp_path):
    workdir = tmp_path / "second"
    workdir.mkdir()
    elsewhere = tmp_path / "elsewhere" / "ddb-results"
    write_config(workdir, {**small_config(), "results": str(elsewhere)})
    result = run_snakemake(workdir, "--cores", "2", "--set-threads", "mask=1", "inpaint=1", "ig_score=1")
    assert most_shards_at_once(result.stdout + result.stderr) >= 2
    assert not (workdir / "results").exists()  # everything went to the `results` folder, logs too

    expected = artifacts(demo_run)
    drawn = [name for name in expected if name.startswith("demo/data/synthetic/")]
    assert len(drawn) > 100
    assert artifacts(workdir, str(elsewhere)) == expected  # the drawn images too: in the results folder
    for name in expected:
        if name.endswith(".parquet"):  # the paths of drawn images name their results folder
            pd.testing.assert_frame_equal(relocated(pd.read_parquet(elsewhere / name), str(elsewhere), "results"),
                                          pd.read_parquet(demo_run / "results" / name), check_exact=True, obj=name)
        elif name.endswith("root.txt"):  # the drawn root, in its results folder
            assert (elsewhere / name).read_text() == (demo_run / "results" / name).read_text().replace(
                "results/", f"{elsewhere}/", 1)
        else:
            assert_same_artifact(elsewhere / name, demo_run / "results" / name)


def relocated(table: pd.DataFrame, folder: str, instead: str) -> pd.DataFrame:
    """``table`` with every text cell that starts with ``folder/`` starting with ``instead/`` instead."""
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object or pd.api.types.is_string_dtype(table[column]):
            values = table[column]
            moved = values.astype(str).str.startswith(folder + "/")
            if moved.any():
                table[column] = values.where(~moved, instead + values.astype(str).str[len(folder):])
    return table
