"""Shards that scale: counted from the config before any job runs, checkpointed in three files, packed
streaming.

- ``ddb.sharding``: shards per source class from K (``low_loss.k``), per_source and images_per_shard; no
  shard above images_per_shard; the config keys refused with their fix.
- ``ddb.storage.checkpoints.PartialShard``: a job killed mid-shard (SIGKILL, in a child process) resumes and packs the bytes
  of an uninterrupted run; the checkpoint folder holds the same three files for 10 or 300 samples; a
  tail cut by a kill is dropped; checkpoints of another fingerprint are discarded."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO

from ddb.config import validate_config
from ddb.errors import DDBError
from ddb.storage.shards import ImageShard
from ddb.storage.checkpoints import PartialShard, checkpointed, process_shard
from ddb.storage.images import png_bytes
from ddb.masking import shard_rows
from ddb.sharding import check_shard_size, planned_sources, shard_count, shard_counts


def entry(fmt: str = "waterbirds", **sections) -> dict:
    """A validated dataset entry of format ``fmt`` with ``sections`` merged over the defaults."""
    dataset = {"format": fmt, "root": "nowhere", **sections}
    return validate_config({"datasets": {"d": dataset}})["datasets"]["d"]


# ---- the count


def test_shards_are_counted_per_source_class_from_k():
    cfg = entry(low_loss={"k": [1300, 1074]}, generation={"images_per_shard": 500})
    assert shard_counts(cfg) == {"landbird": 3, "waterbird": 3}
    cfg = entry(low_loss={"k": [1300, 400]}, generation={"images_per_shard": 500})
    assert shard_counts(cfg) == {"landbird": 3, "waterbird": 1}
    # CelebA as config.yaml ships it: K = 20,000 a class, 3 images per source, 1000 images a shard at most
    celeba = entry("celeba", low_loss={"k": 20000}, generation={"per_source": 3})
    assert celeba["generation"]["images_per_shard"] == 1000
    assert shard_counts(celeba) == {"non_blond": 61, "blond": 61}  # 333 sources (999 images) a shard
    # where per_source divides images_per_shard the count is exactly ceil(K x per_source / images_per_shard)
    celeba = entry("celeba", low_loss={"k": 20000}, generation={"per_source": 3, "images_per_shard": 1200})
    assert shard_count(celeba, "blond") == math.ceil(20000 * 3 / 1200) == 50


def test_a_cap_bounds_the_count_and_all_without_one_takes_the_configured_shards():
    capped = entry(low_loss={"k": 300}, generation={"max_sources_per_class": 40, "images_per_shard": 10})
    assert shard_counts(capped) == {"landbird": 4, "waterbird": 4}
    demo = entry("synthetic", generation={"sources": "all", "max_sources_per_class": 150, "images_per_shard": 75})
    assert shard_counts(demo) == {"landbird": 2, "waterbird": 2}
    # a real dataset's `all` is counted by prepare_dataset only: the config names the shards
    named = entry("waterbirds", generation={"sources": "majority", "shards": 7})
    assert shard_counts(named) == {"landbird": 7, "waterbird": 7}


def test_the_drawn_demo_is_counted_from_its_config():
    """synthetic.n_train (800) in Waterbirds' proportions: 588 + 31 landbirds and 10 + 171 waterbirds, drawn
    exactly so; `majority` leaves out each class's minority group (landbirds on water, waterbirds on land)."""
    demo = entry("synthetic", generation={"sources": "all", "images_per_shard": 100})
    assert (planned_sources(demo, "landbird"), planned_sources(demo, "waterbird")) == (619, 181)
    assert shard_counts(demo) == {"landbird": 7, "waterbird": 2}
    majority = entry("synthetic", generation={"sources": "majority", "images_per_shard": 100})
    assert (planned_sources(majority, "landbird"), planned_sources(majority, "waterbird")) == (588, 171)
    assert shard_counts(entry("synthetic")) == {"landbird": 1, "waterbird": 1}  # format and root suffice


@pytest.mark.parametrize("sources", range(0, 60))
@pytest.mark.parametrize("per_source, images_per_shard", [(1, 1), (1, 7), (2, 7), (3, 10), (3, 12), (5, 5)])
def test_no_shard_holds_more_than_images_per_shard(sources, per_source, images_per_shard):
    cfg = entry(low_loss={"k": max(sources, 1)}, generation={"per_source": per_source,
                                                                "images_per_shard": images_per_shard})
    shards = shard_count(cfg, "landbird")
    rows = pd.DataFrame({"sample_id": [f"s{i:03d}" for i in range(sources)]})
    slices = [shard_rows(rows, n, shards) for n in range(shards)]
    assert sum(len(s) for s in slices) == sources
    assert max(len(s) for s in slices) * per_source <= images_per_shard
    if per_source == 1 and sources:
        assert shards == math.ceil(sources / images_per_shard)


@pytest.mark.parametrize("fmt, generation, key, message, fix", [
    ("celeba", {"shards": 40}, "generation.shards", "is no longer used here: shards are counted from K of each class",
     "remove generation.shards; to change the size of a shard, set generation.images_per_shard (now 1000 images)"),
    ("synthetic", {"max_sources_per_class": 6, "shards": 2}, "generation.shards",
     "shards are counted from generation.max_sources_per_class", "remove generation.shards"),
    ("synthetic", {"shards": 2}, "generation.shards",
     "shards are counted from the drawn demo's training images (synthetic.n_train)", "remove generation.shards"),
    ("waterbirds", {"sources": "all"}, "generation", "generation.sources is 'all' and max_sources_per_class is null",
     "set generation.max_sources_per_class"),
    ("celeba", {"per_source": 3, "images_per_shard": 2}, "generation.images_per_shard",
     "is 2, fewer than the 3 images of one source", "set images_per_shard to at least 3"),
])
def test_a_generation_section_that_cannot_be_sharded_is_refused(fmt, generation, key, message, fix):
    with pytest.raises(DDBError) as error:
        validate_config({"datasets": {"d": {"format": fmt, "root": "nowhere", "generation": generation}}},
                        "config.yaml")
    text = str(error.value)
    assert text.startswith(f"config.yaml: datasets.d.{key}: "), text
    assert message in text and f"fix: {fix}" in text


def test_a_shard_over_the_limit_stops_before_any_work_naming_the_count_needed():
    generation = {"per_source": 2, "images_per_shard": 10, "shards": 3}
    check_shard_size(5, 15, generation, "inpaint/shard-0.tar")  # 10 images: at the limit
    with pytest.raises(DDBError, match=r"(?s)shard-0.tar: this shard holds 6 sources x 2 = 12 images, more than "
                                       r"generation.images_per_shard \(10\).*set generation.shards to at least 4"):
        check_shard_size(6, 16, generation, "inpaint/shard-0.tar")


# ---- the checkpoint

PNGS = [png_bytes(np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)) for i in range(3)]


def compute_pngs(ids):
    """Pre-encoded PNGs for some samples, none for every fifth (a sample without a mask)."""
    return [(i, None if int(i[1:]) % 5 == 4 else PNGS[int(i[1:]) % 3], {"sample_id": i, "n": int(i[1:])})
            for i in ids]


def ids_of(count: int) -> list[str]:
    return [f"s{i:04d}" for i in range(count)]


def uninterrupted(tmp_path: Path, count: int) -> tuple[bytes, pd.DataFrame]:
    tar = tmp_path / "uninterrupted" / "shard-0.tar"
    index = process_shard(ids_of(count), compute_pngs, 4, tar, tar.with_suffix(".parquet"))
    return tar.read_bytes(), index


KILLED_JOB = """
import os, sys, time
from pathlib import Path
sys.path[:0] = {tests!r}
from test_sharding import compute_pngs, ids_of
from ddb.storage.checkpoints import process_shard

tar, count, batches = Path(sys.argv[1]), int(sys.argv[2]), [0]

def compute(ids):
    batches[0] += 1
    if batches[0] == 4:  # three batches are checkpointed: say so, then wait for SIGKILL
        (tar.parent / "three-batches-done").write_text("")
        time.sleep(600)
    return compute_pngs(ids)

process_shard(ids_of(count), compute, 4, tar, tar.with_suffix(".parquet"))
"""


def test_a_job_killed_mid_shard_resumes_and_packs_the_bytes_of_an_uninterrupted_run(tmp_path, capsys):
    expected_tar, expected_index = uninterrupted(tmp_path, 30)
    tar = tmp_path / "killed" / "shard-0.tar"
    tar.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    tests = [str(folder) for folder in Path(__file__).resolve().parents[:2]]  # tests/unit/ and tests/ (helpers.py)
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB.format(tests=tests), str(tar), "30"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (tar.parent / "three-batches-done").exists():
        assert job.poll() is None, job.stdout.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=60)
    assert not tar.exists() and not tar.with_suffix(".parquet").exists()
    assert checkpointed(tar) == ids_of(12)

    calls = []

    def compute(ids):
        calls.extend(ids)
        return compute_pngs(ids)

    index = process_shard(ids_of(30), compute, 7, tar, tar.with_suffix(".parquet"))  # other batches
    assert calls == ids_of(30)[12:]
    assert "resuming, 12 of 30 samples already done" in capsys.readouterr().out
    assert tar.read_bytes() == expected_tar
    pd.testing.assert_frame_equal(index, expected_index)
    pd.testing.assert_frame_equal(pd.read_parquet(tar.with_suffix(".parquet")), expected_index)
    assert not Path(f"{tar}.partial").exists()


@pytest.mark.parametrize("count", [10, 300])
def test_the_checkpoint_is_three_files_however_many_samples(tmp_path, count):
    tar = tmp_path / "shard-0.tar"
    partial = PartialShard(tar, "mask, shard 0")
    for n, (sample_id, image, record) in enumerate(compute_pngs(ids_of(count)), 1):
        partial.put(sample_id, image, record)
        if n % 8 == 0:  # batches of 8
            partial.commit()
    partial.commit()
    partial.close()
    assert sorted(p.name for p in Path(f"{tar}.partial").iterdir()) == ["fingerprint.txt", "images.tar",
                                                                        "records.jsonl"]
    assert checkpointed(tar) == checkpointed(tar, "mask, shard 0") == ids_of(count)
    assert checkpointed(tar, "mask, shard 0, another config") == []  # that job would discard them
    # the images file is a tar of the finished PNGs (without its end blocks): any tar reader lists them
    import tarfile

    with tarfile.open(Path(f"{tar}.partial") / "images.tar", ignore_zeros=True) as images:
        expected = [f"{i}.png" for i, image, _ in compute_pngs(ids_of(count)) if image is not None]
        assert images.getnames() == expected


def test_a_tail_cut_by_a_kill_is_dropped(tmp_path, capsys):
    expected_tar, expected_index = uninterrupted(tmp_path, 12)
    tar = tmp_path / "cut" / "shard-0.tar"
    partial = PartialShard(tar)
    for sample_id, image, record in compute_pngs(ids_of(6)):
        partial.put(sample_id, image, record)
    partial.commit()
    partial.close()
    folder = Path(f"{tar}.partial")
    with open(folder / "images.tar", "ab") as images:  # a member of the next batch, half written
        images.write(b"\0" * 512 + PNGS[0][:100])
    with open(folder / "records.jsonl", "ab") as records:  # and its record, cut short
        records.write(json.dumps({"id": "s0006", "png": [0, 1], "end": 10 ** 6, "record": {}}).encode()[:30])
    assert checkpointed(tar) == ids_of(6)
    capsys.readouterr()

    index = process_shard(ids_of(12), compute_pngs, 4, tar, tar.with_suffix(".parquet"))
    out = capsys.readouterr().out
    assert "dropping the unfinished tail of a killed job (612 bytes of images, 30 of records)" in out
    assert "resuming, 6 of 12 samples already done" in out
    assert tar.read_bytes() == expected_tar
    pd.testing.assert_frame_equal(index, expected_index)


def test_a_record_naming_bytes_the_images_file_lacks_ends_the_checkpoint(tmp_path):
    """A record past the end of images.tar (a file system that lost the images' last write): it and
    every later record are dropped, the samples before it kept."""
    tar = tmp_path / "shard-0.tar"
    partial = PartialShard(tar)
    for sample_id, image, record in compute_pngs(ids_of(3)):
        partial.put(sample_id, image, record)
        partial.commit()
    partial.close()
    images = Path(f"{tar}.partial") / "images.tar"
    os.truncate(images, images.stat().st_size - 1)
    assert checkpointed(tar) == ids_of(2)
    resumed = PartialShard(tar)
    assert resumed.done("s0001") and not resumed.done("s0002")
    resumed.close()


def test_checkpoints_of_another_fingerprint_are_discarded(tmp_path, capsys):
    tar = tmp_path / "shard-0.tar"
    for fingerprint in ("steps 2", "steps 2"):  # the same job twice: the second resumes
        partial = PartialShard(tar, fingerprint)
        for sample_id, image, record in compute_pngs(ids_of(8)[len(partial):len(partial) + 4]):
            partial.put(sample_id, image, record)
        partial.commit()
        partial.close()
    assert checkpointed(tar) == ids_of(8)
    capsys.readouterr()
    partial = PartialShard(tar, "steps 3")  # the config was edited before the rerun
    assert len(partial) == 0 and not partial.done("s0000")
    assert "discarding 8 checkpoint(s) of a job with other settings or inputs" in capsys.readouterr().out
    partial.close()
    assert checkpointed(tar) == [] and (Path(f"{tar}.partial") / "fingerprint.txt").read_text() == "steps 3"


def test_per_sample_checkpoints_of_an_earlier_version_are_discarded(tmp_path, capsys):
    tar = tmp_path / "shard-0.tar"
    folder = Path(f"{tar}.partial")
    folder.mkdir()
    (folder / "a.png").write_bytes(PNGS[0])
    (folder / "a.json").write_text('{"sample_id": "a"}')
    (folder / ".fingerprint.txt.0123abcd.tmp").write_text("")  # a killed job's temporary file
    index = process_shard(["a", "b"], compute_records, 1, tar, tar.with_suffix(".parquet"))
    assert "discarding 1 per-sample checkpoint(s) of an earlier version" in capsys.readouterr().out
    assert index["sample_id"].tolist() == ["a", "b"] and len(ImageShard(tar)) == 0
    assert not folder.exists()


def compute_records(ids):
    return [(i, None, {"sample_id": i}) for i in ids]
