"""Same seed, same results: a second run of the demo from scratch, shards side by side, results elsewhere.

The session's `demo_run` ran with `--cores 2` (jobs one after the other, but for the light ones). Here
a second run starts from nothing in another working directory, writes its results to another folder
(config key `results`), and runs the generation shards side by side (`--set-threads` of 1 lets two
of them share the 2 cores). Every artifact must come out the same: Parquet tables equal (their
footer names library versions, not content), every other file (PNG, tar, eval.json, model.pt,
safetensors) byte for byte.

And the demo's textual inversion learns the same token, byte for byte, in five separate processes (no
Snakemake there, but minutes of training: not among the fast unit tests)."""

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


TEXTUAL_INVERSION_RUN = """
import sys
from pathlib import Path
import pandas as pd
sys.path.insert(0, {package!r})
from dataclasses import replace
from ddb.config import load_config, minority_group_name
from ddb.models.diffusion import load_text_to_image_components
from ddb.textual_inversion import choose_images, learn_token, save_embeddings
import torch
torch.set_num_threads(2)
cfg = load_config({config!r})["datasets"]["demo"]
from ddb.settings import dataset_settings
ti = replace(dataset_settings(cfg, "demo").textual_inversion, steps=40)
manifest = pd.read_parquet({manifest!r})
images = choose_images(manifest, 0, ti, seed=0, name="demo", minority_group=minority_group_name(cfg, 0))
learned, _ = learn_token(load_text_to_image_components(ti.model, seed=0), images, "landbird", ti, seed=0,
                         device="cpu")
save_embeddings(learned, sys.argv[1])
"""


def test_textual_inversion_on_the_demo_gives_the_same_bytes_five_times(tmp_path):
    """Five separate processes (two at a time, so they compete for the cores) learn the demo's <landbird>
    token through the demo inpainter: the embedding files must be identical. Before MKL_CBWR was set, MKL's
    alignment-dependent code paths made one run in several differ from the first step on."""
    import subprocess
    import sys

    from helpers import REPO
    from ddb.config import load_config
    from ddb.datasets import build_manifest

    cfg = load_config(REPO / "config.yaml")["datasets"]["demo"]
    cfg["root"] = str(tmp_path / "synthetic")
    manifest = build_manifest("demo", cfg, seed=0)
    manifest.to_parquet(tmp_path / "manifest.parquet")
    script = TEXTUAL_INVERSION_RUN.format(package=str(REPO / "workflow"), config=str(REPO / "config.yaml"),
                                          manifest=str(tmp_path / "manifest.parquet"))
    outputs = [tmp_path / f"run{i}.safetensors" for i in range(5)]
    for pair in (outputs[0:2], outputs[2:4], outputs[4:]):
        running = [subprocess.Popen([sys.executable, "-c", script, str(out)], stderr=subprocess.PIPE, text=True)
                   for out in pair]
        for process in running:
            _, err = process.communicate(timeout=600)
            assert process.returncode == 0, err[-2000:]
    contents = {out.read_bytes() for out in outputs}
    assert len(contents) == 1, "textual inversion gave different embeddings for the same seed"
