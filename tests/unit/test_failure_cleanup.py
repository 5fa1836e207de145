"""A job that fails on a full disk: the one-line error comes first on the terminal and is the last word
(no OSError from the clean-up after it), and nothing it wrote is left looking finished.

The full disk is a patched writer raising ENOSPC (a real small file system needs root)."""

from __future__ import annotations

import builtins
import errno
import io
import os
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, Params, Wildcards, fake_snakemake, run_paths, small_config

from ddb.errors import DDBError

FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FillingDisk:
    """A disk that takes ``room`` more writes (calls), then refuses every write, flush and close with
    ENOSPC, as a full one does: the files named ``full`` by a path suffix live on it."""

    def __init__(self, room: int):
        self.room = room

    def write(self):
        self.room -= 1
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullFile(io.TextIOBase):
    """A text file (the job's log) on a :class:`FillingDisk`."""

    def __init__(self, disk: FillingDisk, path: str):
        self.disk, self.path, self.text = disk, path, []

    def write(self, text):
        self.disk.write()
        self.text.append(text)
        return len(text)

    def flush(self):
        if self.disk.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self):
        self.flush()


def terminal_lines(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if line.strip()]


def test_a_full_disk_during_the_demo_draw_is_one_line_first_and_removes_the_drawn_images(
        tmp_path, monkeypatch, capfd, in_process_step):
    from ddb.config import validate_config

    config = validate_config(small_config(synthetic={"n_train": 40, "n_val_per_group": 2, "n_test_per_group": 2,
                                                     "image_size": 32}))
    cfg = config["datasets"]["demo"]
    root = tmp_path / "synthetic"
    cfg["root"] = str(root)
    # a previous draw's image and a file of the user's, both there before the job
    (root / "train").mkdir(parents=True)
    earlier = root / "train" / "train00000.png"
    earlier.write_bytes(b"an earlier draw")
    notes = root / "notes.txt"
    notes.write_text("mine")
    disk = FillingDisk(room=10)  # images and masks: the 11th PNG meets the full disk
    write_bytes = Path.write_bytes

    def png_on_full_disk(self, data):
        if self.suffix == ".tmp":
            disk.write()
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", png_on_full_disk)
    log = tmp_path / "logs" / "prepare_dataset.log"
    monkeypatch.setattr("ddb.scripting.open", lambda path, *a, **k: FullFile(disk, path), raising=False)
    paths = run_paths(tmp_path)
    snakemake = fake_snakemake(tmp_path, "prepare_dataset", params=Params(cfg=cfg, seed=0), config=config,
                               wildcards=Wildcards(ds="demo"),
                               output=SimpleNamespace(manifest=str(paths.path("manifest")),
                                                      groups=str(paths.path("groups"))))
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "scripts" / "prepare_dataset.py"), init_globals={"snakemake": snakemake})
    monkeypatch.undo()
    assert exit_.value.code == 1
    lines = terminal_lines(capfd)
    assert lines[0] == f"ddb: {root / 'train' / 'train00005.png'}: the disk is full; nothing was written", lines
    assert lines[1] == "  fix: free space (or point results/ elsewhere) and rerun"
    assert lines[2] == f"  (rule prepare_dataset, log {log})" and len(lines) == 3
    assert not any("Traceback" in line or "OSError" in line for line in lines)
    # what this job drew is gone; what was there before stays, and no artifact of the step exists
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert left == ["notes.txt", "train", "train/train00000.png"]
    assert notes.read_text() == "mine" and not paths.path("manifest").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_demo_images_go_when_the_job_fails_after_drawing_them(tmp_path, monkeypatch, capfd, in_process_step):
    from ddb.config import validate_config
    from ddb.storage import atomic

    config = validate_config(small_config(synthetic={"n_train": 40, "n_val_per_group": 2, "n_test_per_group": 2,
                                                     "image_size": 32}))
    cfg = config["datasets"]["demo"]
    cfg["root"] = str(tmp_path / "synthetic")
    paths = run_paths(tmp_path)

    def groups_on_full_disk(frame, path):
        raise atomic.no_space_error(Path(path), errno.ENOSPC)

    script = REPO / "scripts" / "prepare_dataset.py"
    snakemake = fake_snakemake(tmp_path, "prepare_dataset", params=Params(cfg=cfg, seed=0), config=config,
                               wildcards=Wildcards(ds="demo"),
                               output=SimpleNamespace(manifest=str(paths.path("manifest")),
                                                      groups=str(paths.path("groups"))))
    monkeypatch.setattr(atomic, "write_parquet", groups_on_full_disk)
    with pytest.raises(SystemExit):
        runpy.run_path(str(script), init_globals={"snakemake": snakemake})
    monkeypatch.undo()
    lines = terminal_lines(capfd)
    error_at = lines.index(f"ddb: {paths.path('groups')}: the disk is full; nothing was written")
    # before it, only what the job warned of before failing (2 validation images a group are too few)
    assert all(line.startswith("ddb (rule prepare_dataset): WARNING") for line in lines[:error_at])
    assert not (tmp_path / "synthetic").exists()  # the root folder was made by this job, and so removed
    runpy.run_path(str(script), init_globals={"snakemake": snakemake})  # the same job with room: it draws them
    assert len(list((tmp_path / "synthetic").rglob("*.png"))) == 2 * (40 + 2 * 4 + 2 * 4)


def shard_batch(ids):
    rng = np.random.default_rng(0)
    return [(s, rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), {"sample_id": s, "has_image": True})
            for s in ids]


def test_a_full_disk_while_checkpointing_a_shard_is_one_ddb_error_not_the_close_after_it(tmp_path, monkeypatch):
    from ddb.storage import checkpoints

    tar, index = tmp_path / "inpaint" / "a_to_b" / "shard-0.tar", tmp_path / "inpaint" / "a_to_b" / "shard-0.parquet"
    disk = FillingDisk(room=12)
    real_open = builtins.open

    class OnFullDisk(io.BufferedWriter):
        def write(self, data):
            disk.write()
            return super().write(data)

        def flush(self):
            if disk.room < 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            super().flush()

    def open_(path, mode="r", *args, **kwargs):
        if mode == "ab":  # the checkpoint's images.tar and records.jsonl
            return OnFullDisk(io.FileIO(path, "a"))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "open", open_, raising=False)
    ids = [f"s{i}" for i in range(8)]
    with pytest.raises(DDBError) as error:
        checkpoints.process_shard(ids, shard_batch, 2, tar, index)
    monkeypatch.undo()
    assert str(error.value).startswith(f"{tar}.partial: the disk is full while checkpointing; the samples "
                                       "finished before are kept")
    assert not tar.exists() and not index.exists()
    done = checkpoints.checkpointed(tar)
    assert 0 < len(done) < len(ids)  # kept for the next job, which resumes from them
    frame = checkpoints.process_shard(ids, shard_batch, 2, tar, index)
    assert list(frame["sample_id"]) == ids and not Path(f"{tar}.partial").exists()


def test_a_shard_whose_index_cannot_be_written_leaves_no_tar_but_its_checkpoint(tmp_path, monkeypatch):
    from ddb.storage import atomic, checkpoints

    tar, index = tmp_path / "masks" / "a" / "shard-0.tar", tmp_path / "masks" / "a" / "shard-0.parquet"

    def index_on_full_disk(frame, path):
        raise atomic.no_space_error(Path(path), errno.ENOSPC)

    monkeypatch.setattr(checkpoints, "write_parquet", index_on_full_disk)
    ids = [f"s{i}" for i in range(5)]
    with pytest.raises(DDBError, match="the disk is full"):
        checkpoints.process_shard(ids, shard_batch, 2, tar, index)
    monkeypatch.undo()
    assert not tar.exists() and not index.exists() and checkpoints.checkpointed(tar) == ids
    calls = []
    checkpoints.process_shard(ids, lambda batch: calls.append(batch) or shard_batch(batch), 2, tar, index)
    assert calls == [] and tar.exists() and len(pd.read_parquet(index)) == 5


def test_a_full_disk_met_outside_ddbs_writers_is_the_same_one_line(tmp_path, capfd, in_process_step):
    from ddb.scripting import run_step

    @run_step
    def main(snakemake):
        raise RuntimeError("the library's save failed") from OSError(errno.ENOSPC, "No space left on device",
                                                                        str(tmp_path / "cache.bin"))

    with pytest.raises(SystemExit) as exit_:
        main(fake_snakemake(tmp_path, "inpaint"))
    assert exit_.value.code == 1
    lines = terminal_lines(capfd)
    assert lines[0] == f"ddb: {tmp_path / 'cache.bin'}: the disk is full" and "Traceback" not in "".join(lines)
