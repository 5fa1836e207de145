"""Artifact I/O on a shared cluster: results teammates can read, long sample ids, two jobs
on one shard, one-line messages for damaged or unwritable files, and nothing left behind by SIGTERM.

All in-process or with small subprocesses (no Snakemake DAG); each test takes seconds.
"""

from __future__ import annotations

import errno
import os
import runpy
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, Params, Wildcards, fake_snakemake, run_paths, small_config
from PIL import Image

from ddb.errors import DDBError
from ddb.paths import RunPaths

WORKFLOW = str(REPO / "workflow")
LONG_ID = "waterbird_" + "x" * 186 + "_0042"  # 200 characters: its member name is 204


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*.tmp"))


def run_python(code: str, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": WORKFLOW}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


# ---- 1. results teammates can read


@pytest.fixture(params=[0o002, 0o022, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_artifacts_get_the_mode_the_umask_gives_a_new_file(tmp_path, umask):
    import torch

    from ddb.storage.atomic import save_torch, write_json, write_parquet, write_png, write_text
    from ddb.storage.shards import write_image_shard

    write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "table.parquet")
    write_json({"wga": 0.5}, tmp_path / "eval.json")
    write_png(np.zeros((4, 4), np.uint8), tmp_path / "figure.png")
    save_torch({"w": torch.zeros(2)}, tmp_path / "model.pt")
    write_image_shard([("a", b"png")], tmp_path / "shard-0.tar", pd.DataFrame({"sample_id": ["a"]}),
                      tmp_path / "shard-0.parquet")
    write_text("root\n", tmp_path / "root.txt")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["eval.json", "figure.png", "model.pt", "root.txt", "shard-0.parquet", "shard-0.tar",
                     "table.parquet"]
    assert {name: oct(mode(tmp_path / name)) for name in files} == {name: oct(0o666 & ~umask) for name in files}


# ---- 7. long sample ids


def test_a_200_character_sample_id_round_trips_through_a_shard(tmp_path):
    from ddb.storage.shards import ImageShard
    from ddb.storage.checkpoints import process_shard

    pixels = {LONG_ID: np.full((4, 4), 200, np.uint8), "short": np.full((4, 4), 9, np.uint8)}

    def compute(ids):
        return [(i, pixels[i], {"sample_id": i, "area": 1.0}) for i in ids]

    tar = RunPaths(tmp_path).path("mask_tar", src="landbird", n=0)
    index = process_shard(list(pixels), compute, 1, tar, tar.with_suffix(".parquet"))
    assert index["sample_id"].tolist() == [LONG_ID, "short"]
    shard = ImageShard(tar)
    assert shard.ids() == [LONG_ID, "short"]
    for sample_id, expected in pixels.items():
        assert np.array_equal(np.asarray(shard.image(sample_id)), expected)
    with tarfile.open(tar) as archive:  # any tar reader sees the full name
        assert archive.getnames() == [f"{LONG_ID}.png", "short.png"]
        # the pax header holds the name and nothing else (no atime, ctime, owner, pid-dependent name)
        assert [m.pax_headers for m in archive.getmembers()] == [{"path": f"{LONG_ID}.png"}, {}]

    # identical content, identical bytes: written again by another process, at another time
    again = tmp_path / "again.tar"
    writer = run_python("""
        import sys
        import pandas as pd
        from ddb.storage.shards import ImageShard, write_image_shard
        shard = ImageShard(sys.argv[1])
        write_image_shard([(i, shard.read_bytes(i)) for i in shard.ids()], sys.argv[2],
                          pd.DataFrame({"sample_id": shard.ids()}), sys.argv[2] + ".parquet")
        """, str(tar), str(again))
    assert writer.wait(timeout=120) == 0, writer.stdout.read()
    assert again.read_bytes() == tar.read_bytes()
    assert b"PaxHeaders" not in tar.read_bytes() and str(os.getpid()).encode() not in tar.read_bytes()


def test_shards_with_short_names_keep_their_ustar_bytes_and_old_shards_still_read(tmp_path):
    import io

    from ddb.storage.shards import ImageShard, tarinfo, write_image_shard

    items = [("a", b"first png"), ("b" * 96, b"second png")]  # 'b' * 96 + '.png': 100 characters
    write_image_shard(items, tmp_path / "new.tar", pd.DataFrame({"sample_id": ["a", "b"]}), tmp_path / "new.parquet")
    with tarfile.open(tmp_path / "old.tar", "w", format=tarfile.USTAR_FORMAT) as old:  # as shards were written
        for sample_id, data in items:
            old.addfile(tarinfo(f"{sample_id}.png", len(data)), io.BytesIO(data))
    assert (tmp_path / "new.tar").read_bytes() == (tmp_path / "old.tar").read_bytes()
    shard = ImageShard(tmp_path / "old.tar")
    assert {i: shard.read_bytes(i) for i in shard.ids()} == dict(items)


# ---- 8. two jobs on one shard

HOLDER = """
    import sys, time
    from pathlib import Path
    from ddb.storage.checkpoints import process_shard

    tar, go = Path(sys.argv[1]), Path(sys.argv[2])

    def compute(ids):
        if ids == ["b"]:  # 'a' is checkpointed; the job is busy with 'b' until the test says go
            (tar.parent / "busy").write_text("")
            deadline = time.monotonic() + 60
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return [(i, None, {"sample_id": i}) for i in ids]

    process_shard(["a", "b"], compute, 1, tar, tar.with_suffix(".parquet"))
    """


@pytest.fixture
def busy_shard(tmp_path):
    """A process in the middle of shard ``inpaint/landbird_to_waterbird/shard-0.tar``: it holds the lock."""
    tar = RunPaths(tmp_path).path("inpaint_tar", src="landbird", dst="waterbird", n=0)
    tar.parent.mkdir(parents=True)
    go = tmp_path / "go"
    holder = run_python(HOLDER, str(tar), str(go))
    deadline = time.monotonic() + 120
    while not (tar.parent / "busy").exists():
        assert holder.poll() is None, holder.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield SimpleNamespace(tar=tar, go=go, process=holder)
    go.touch()
    holder.wait(timeout=60)


def compute_records(calls: list):
    def compute(ids):
        calls.extend(ids)
        return [(i, None, {"sample_id": i}) for i in ids]

    return compute


def test_second_job_on_a_busy_shard_stops_naming_the_first_and_leaves_its_files(busy_shard, monkeypatch):
    from ddb.storage.checkpoints import checkpointed, process_shard

    tar, calls = busy_shard.tar, []
    monkeypatch.setenv("DDB_SHARD_LOCK_WAIT", "0.5")
    started = time.monotonic()
    with pytest.raises(DDBError) as error:
        process_shard(["a", "b"], compute_records(calls), 1, tar, tar.with_suffix(".parquet"))
    assert 0.5 <= time.monotonic() - started < 10
    message = str(error.value)
    assert message.startswith(f"{tar}: another job is writing this shard: pid {busy_shard.process.pid} on host ")
    assert "waited 0.5 s" in message and "fix: let that job finish, or cancel it" in message
    assert "DDB_SHARD_LOCK_WAIT" in message
    assert calls == []  # it did nothing, and took nothing from the first job's checkpoints
    assert checkpointed(tar) == ["a"]

    busy_shard.go.touch()
    assert busy_shard.process.wait(timeout=60) == 0, busy_shard.process.stdout.read()
    assert tar.exists() and not Path(f"{tar}.partial").exists()
    assert [p.name for p in tar.parent.iterdir() if p.name.startswith(".")] == []  # the lock file is gone


def test_second_job_waits_for_the_first_then_does_the_shard(busy_shard, capsys):
    from ddb.storage.shards import ImageShard
    from ddb.storage.checkpoints import process_shard

    tar, calls = busy_shard.tar, []
    threading.Timer(1.0, busy_shard.go.touch).start()
    index = process_shard(["a", "b"], compute_records(calls), 1, tar, tar.with_suffix(".parquet"), lock_wait=60)
    assert busy_shard.process.wait(timeout=60) == 0
    assert f"pid {busy_shard.process.pid} on host" in capsys.readouterr().out
    assert calls == ["a", "b"] and index["sample_id"].tolist() == ["a", "b"]
    assert len(ImageShard(tar)) == 0 and not Path(f"{tar}.partial").exists()


def test_a_lock_left_by_a_killed_job_is_taken_over(tmp_path):
    from ddb.storage.checkpoints import process_shard

    tar = tmp_path / "shard-0.tar"
    (tmp_path / ".shard-0.tar.lock").write_text("pid 1 on host gone, started long ago\n")
    calls = []
    process_shard(["a"], compute_records(calls), 1, tar, tmp_path / "shard-0.parquet", lock_wait=0)
    assert calls == ["a"] and not (tmp_path / ".shard-0.tar.lock").exists()


def test_a_lock_left_by_another_users_killed_job_is_replaced(tmp_path, monkeypatch):
    from ddb.storage.checkpoints import process_shard

    tar, lock = tmp_path / "shard-0.tar", tmp_path / ".shard-0.tar.lock"
    lock.write_text("pid 1 on host gone, started long ago\n")
    real_open = os.open

    def open_(path, flags, *args, **kwargs):  # a teammate's file, mode 0644 (root ignores modes, so pretend)
        if Path(path) == lock and lock.exists() and flags & os.O_RDWR:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    calls = []
    process_shard(["a"], compute_records(calls), 1, tar, tmp_path / "shard-0.parquet", lock_wait=0)
    assert calls == ["a"] and not lock.exists()


def test_the_wait_comes_from_DDB_SHARD_LOCK_WAIT(monkeypatch):
    from ddb.storage.locks import DEFAULT_SHARD_LOCK_WAIT, shard_lock_wait

    monkeypatch.delenv("DDB_SHARD_LOCK_WAIT", raising=False)
    assert shard_lock_wait() == DEFAULT_SHARD_LOCK_WAIT == 120
    monkeypatch.setenv("DDB_SHARD_LOCK_WAIT", "0")
    assert shard_lock_wait() == 0
    monkeypatch.setenv("DDB_SHARD_LOCK_WAIT", "ten minutes")
    with pytest.raises(DDBError, match="DDB_SHARD_LOCK_WAIT: 'ten minutes' is not a number of seconds"):
        shard_lock_wait()


# ---- 9. one message, naming the file and the fix


def test_load_image_decompression_bomb_and_unreadable_files(tmp_path, monkeypatch):
    from ddb.storage.images import load_image

    big = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels: over twice the limit
    with pytest.raises(DDBError, match=r"big.png: image too large to decode safely .*\n  fix: replace it"):
        load_image(big)
    monkeypatch.undo()
    assert load_image(big).size == (64, 64)

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(DDBError, match="notes.png: corrupt or truncated image"):
        load_image(text)
    with pytest.raises(DDBError, match=f"{tmp_path}: corrupt or truncated image"):
        load_image(tmp_path)  # a folder

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(big))

    monkeypatch.setattr(Image, "open", denied)  # chmod cannot stop root, who runs these tests in CI
    with pytest.raises(DDBError, match="big.png: image cannot be read: permission denied"):
        load_image(big)


def shard_of(tmp_path: Path, name: str, items, **wildcards) -> Path:
    """Image shard ``name`` (mask_tar or inpaint_tar) number 0 of the demo run, holding ``items``."""
    from ddb.storage.shards import write_image_shard

    tar = run_paths(tmp_path).path(name, n=0, **wildcards)
    write_image_shard(items, tar, pd.DataFrame({"sample_id": [i for i, _ in items]}), tar.with_suffix(".parquet"))
    return tar


def test_corrupt_png_in_a_shard_names_the_shard_and_the_sample(tmp_path):
    from ddb.storage.shards import ImageShard
    from ddb.storage.images import png_bytes

    good = png_bytes(np.full((8, 8), 3, np.uint8))
    broken = good[:40] + bytes(len(good) - 40)  # header intact, image data zeroed
    tar = shard_of(tmp_path, "inpaint_tar", [("good", good), ("bad", broken), ("junk", b"junk")], src="landbird",
                   dst="waterbird")
    shard = ImageShard(tar)
    assert np.asarray(shard.image("good")).max() == 3
    for sample_id in ("bad", "junk"):
        with pytest.raises(DDBError) as error:
            shard.image(sample_id)
        assert str(error.value).startswith(f"{tar}: sample '{sample_id}': corrupt image in the shard (")
        assert "fix: delete it and rerun snakemake: rule inpaint remakes it" in str(error.value)


@pytest.mark.parametrize("cut", ["in the first header", "in a member's data", "at the second header",
                                 "in the second header", "before the end blocks", "empty"])
def test_truncated_tar_names_it_and_the_rule_that_remakes_it(tmp_path, cut):
    from ddb.storage.shards import ImageShard

    tar = shard_of(tmp_path, "mask_tar", [("a", bytes(700)), ("b", bytes(700))], src="landbird")
    data = tar.read_bytes()  # headers at 0 and 1536, data at 512 and 2048, end blocks at 3072
    size = {"in the first header": 100, "in a member's data": 900, "at the second header": 1536,
            "in the second header": 1636, "before the end blocks": 3072, "empty": 0}[cut]
    tar.write_bytes(data[:size])
    with pytest.raises(DDBError) as error:
        ImageShard(tar)
    message = str(error.value)
    assert message.startswith(f"{tar}: ") and "truncated" in message, message
    assert "fix: delete it and rerun snakemake: rule mask remakes it" in message
    assert "\n" not in message.split("\n  fix: ")[0]


def test_remake_hint_names_each_artifacts_rule():
    from ddb.storage.remake import rule_of

    results = Path("results/celeba")
    assert {p: rule_of(results / p) for p in [
        "masks/blond/shard-3.tar", "masks/erm/shard-0.parquet", "inpaint/a_to_b/shard-1.tar",
        "ig/a_to_b/shard-0.parquet",
        "prune/a_to_b.parquet", "data/manifest.parquet", "data/root.txt", "erm/model.pt", "low_loss/blond.parquet",
        "psi.parquet", "textual_inversion/blond/learned_embeds.safetensors", "retrain/history.parquet",
        "eval.json", "report/eval.html", "notes.txt"]} == {
        "masks/blond/shard-3.tar": "mask", "masks/erm/shard-0.parquet": "mask", "inpaint/a_to_b/shard-1.tar": "inpaint",
        "ig/a_to_b/shard-0.parquet": "ig_score", "prune/a_to_b.parquet": "prune",
        "data/manifest.parquet": "prepare_dataset", "data/root.txt": "prepare_dataset", "erm/model.pt": "train_erm",
        "low_loss/blond.parquet": "select_low_loss", "psi.parquet": "mean_softmax",
        "textual_inversion/blond/learned_embeds.safetensors": "textual_inversion",
        "retrain/history.parquet": "retrain", "eval.json": "evaluate", "report/eval.html": "visualize",
        "notes.txt": None}


@pytest.mark.parametrize("damage", ["truncated", "zeroed footer", "not parquet"])
def test_truncated_or_corrupt_parquet_names_it(tmp_path, damage):
    from ddb.storage.reading import read_parquet
    from ddb.storage.atomic import write_parquet

    table = run_paths(tmp_path).path("prune", src="landbird", dst="waterbird")
    write_parquet(pd.DataFrame({"sample_id": [f"s{i}" for i in range(50)], "ig": np.arange(50.0)}), table)
    data = table.read_bytes()
    table.write_bytes({"truncated": data[: len(data) // 2],
                       "zeroed footer": data[:-40] + bytes(36) + data[-4:],
                       "not parquet": b"sample_id,ig\ns0,0.0\n"}[damage])
    with pytest.raises(DDBError) as error:
        read_parquet(table)
    message = str(error.value)
    assert message.startswith(f"{table}: not a readable Parquet table, truncated or corrupt (")
    assert message.endswith("fix: delete it and rerun snakemake: rule prune remakes it (and what depends on it)")


@pytest.mark.parametrize("code, problem", [(errno.ENOSPC, "the disk is full"),
                                           (errno.EDQUOT, "the disk quota is exceeded")])
@pytest.mark.parametrize("when", ["creating the temporary file", "writing", "writing, wrapped"])
def test_full_disk_or_quota_is_one_message_and_leaves_nothing(tmp_path, monkeypatch, code, problem, when):
    from ddb.storage import atomic as io

    table = tmp_path / "out" / "table.parquet"
    io.write_parquet(pd.DataFrame({"a": [1]}), table)
    before = table.read_bytes()
    full = OSError(code, os.strerror(code))
    if when == "creating the temporary file":
        real_open = os.open

        def open_(path, *args, **kwargs):
            if str(path).endswith(".tmp"):
                raise full
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_)
    else:
        def to_parquet(*args, **kwargs):
            if when == "writing":
                raise full
            try:
                raise full
            except OSError as error:  # as a library may re-raise it
                raise RuntimeError("write failed") from error

        monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    with pytest.raises(DDBError) as error:
        io.write_parquet(pd.DataFrame({"a": [2]}), table)
    monkeypatch.undo()
    assert str(error.value).startswith(f"{table}: {problem}; nothing was written\n  fix: free space")
    assert table.read_bytes() == before and [p.name for p in table.parent.iterdir()] == ["table.parquet"]


# ---- 10. leftovers


SLOW_WRITER = """
    import sys, time
    from types import SimpleNamespace
    from ddb.storage.atomic import atomic_path
    from ddb.scripting import run_step

    @run_step
    def main(snakemake):
        with atomic_path(sys.argv[1]) as tmp:
            with open(tmp, "w") as handle:
                for _ in range(600):  # a slow write: a minute, unless stopped
                    handle.write("x" * 1000)
                    handle.flush()
                    time.sleep(0.1)

    main(SimpleNamespace(log=[sys.argv[2]], threads=1, resources=SimpleNamespace(), input=[], params=[],
                         wildcards={}, rule="slow"))
    """


def test_sigterm_removes_the_temporary_file_of_the_artifact_being_written(tmp_path):
    out, log = tmp_path / "results" / "model.pt", tmp_path / "slow.log"
    writer = run_python(SLOW_WRITER, str(out), str(log))
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in temp_files(tmp_path)):
        assert writer.poll() is None, writer.stdout.read()
        assert time.monotonic() < deadline, "the writer never started writing"
        time.sleep(0.05)
    writer.send_signal(signal.SIGTERM)  # what SLURM sends at scancel or the time limit
    returncode = writer.wait(timeout=60)
    assert temp_files(tmp_path) == [] and not out.exists()
    assert returncode == 128 + signal.SIGTERM, writer.stdout.read()
    assert "stopped by SIGTERM" in log.read_text()


def test_root_txt_is_written_atomically(tmp_path, monkeypatch, in_process_step):
    from ddb.storage import atomic as io
    from ddb.config import validate_config

    config = validate_config(small_config(synthetic={"n_train": 40, "n_val_per_group": 1, "n_test_per_group": 1,
                                                     "image_size": 32}))
    cfg = config["datasets"]["demo"]
    cfg["root"] = str(tmp_path / "synthetic")
    written = []
    atomic_path = io.atomic_path

    def recording(path):
        written.append(Path(path).name)
        return atomic_path(path)

    monkeypatch.setattr(io, "atomic_path", recording)
    paths = run_paths(tmp_path)
    snakemake = fake_snakemake(tmp_path, "prepare_dataset", params=Params(cfg=cfg, seed=0), config=config,
                               wildcards=Wildcards(ds="demo"),
                               output=SimpleNamespace(manifest=str(paths.path("manifest")),
                                                      groups=str(paths.path("groups"))))
    runpy.run_path(str(REPO / "scripts" / "prepare_dataset.py"), init_globals={"snakemake": snakemake})
    assert written[-3:] == [paths.path(name).name for name in ("groups", "manifest", "dataset_root")]  # after the images
    assert paths.path("dataset_root").read_text() == f"{cfg['root']}\n"


def test_the_rename_is_made_durable_by_fsyncing_the_folder(tmp_path, monkeypatch):
    from ddb.storage.atomic import write_json

    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_json({"a": 1}, tmp_path / "eval.json")
    assert synced == ["file", "folder"]

    def refuse(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", refuse)  # platforms that refuse to fsync a folder: still written
    write_json({"a": 2}, tmp_path / "eval.json")
    assert (tmp_path / "eval.json").read_text() == '{\n  "a": 2\n}\n'
