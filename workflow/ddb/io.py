"""Artifact I/O: every write goes to a temporary name and is renamed into place.

A killed job therefore never leaves a file that Snakemake or a reader takes as complete.
Image shards are plain tars of ``{sample_id}.png`` (the WebDataset convention) with a Parquet index
beside them, so ``tar -tf``, PIL, pandas and webdataset can all open them.
"""

from __future__ import annotations

import contextlib
import errno
import io as _io
import json
import math
import os
import re
import secrets
import shutil
import socket
import struct
import tarfile
import time
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from PIL import Image

from .errors import DDBError


# a full disk and an exceeded quota: (problem, fix)
_NO_SPACE = {
    errno.ENOSPC: ("the disk is full", "free space (or point results/ elsewhere) and rerun"),
    errno.EDQUOT: ("the disk quota is exceeded",
                   "free space within your quota (see `quota -s`, or `lfs quota` on Lustre), ask for a larger "
                   "one, or point results/ elsewhere, and rerun"),
}


def _no_space(error: BaseException | None) -> int | None:
    """The errno of a full disk or an exceeded quota behind ``error`` (itself or what caused it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return error.errno
        error = error.__cause__ or error.__context__
    return None


def _no_space_error(path: Path, code: int) -> DDBError:
    problem, fix = _NO_SPACE[code]
    return DDBError(path, f"{problem}; nothing was written", fix)


def _new_temp_file(path: Path) -> Path:
    """A new, empty ``.{name}.{random}.tmp`` beside ``path``.

    Created with mode 0o666 like any new file, so the user's umask (or the folder's default ACL) sets its
    permissions, which the artifact keeps once renamed (``tempfile.mkstemp`` would make it 0o600, unreadable
    for teammates). The name is cut to 100 bytes so that a long one stays under NAME_MAX.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    stem = path.name.encode()[:100].decode(errors="ignore")
    for _ in range(100):
        tmp = path.parent / f".{stem}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a crash after it cannot bring back the old file or none)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some platforms and file systems refuse to fsync a folder
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    On any failure, an exception or a ``SystemExit`` (``ddb.scripting.run_step`` turns SIGTERM into one),
    the temporary file is removed. A full disk or an exceeded quota, when the file is created or
    written, is one DDBError naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp_file(path)
    except OSError as error:
        if (code := _no_space(error)) is not None:
            raise _no_space_error(path, code) from error
        raise
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, Exception) and not isinstance(error, DDBError) and (code := _no_space(error)):
            raise _no_space_error(path, code) from error
        raise
    _fsync_dir(path.parent)


def write_text(text: str, path: str | os.PathLike) -> None:
    """``Path.write_text``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# the rule that writes an artifact, from where it lies under results/{ds}/ (see rules/*.smk)
_SHARD_RULES = {"masks": "mask", "inpaint": "inpaint", "ig": "ig_score"}  # {folder}/{name}/shard-{n}.*
_FOLDER_RULES = {"data": "prepare_dataset", "erm": "train_erm", "low_loss": "select_low_loss", "prune": "prune",
                 "retrain": "retrain", "dfr": "dfr", "report": "visualize"}  # {folder}/{file}
_FILE_RULES = {"psi.parquet": "mean_softmax", "eval.parquet": "evaluate", "eval.json": "evaluate"}


def rule_of(path: str | os.PathLike) -> str | None:
    """The rule that writes the artifact at ``path`` (None if the path is not one of the workflow's)."""
    path = Path(path)
    if re.fullmatch(r"shard-\d+\.(tar|parquet)", path.name) and path.parent.parent.name in _SHARD_RULES:
        return _SHARD_RULES[path.parent.parent.name]
    if path.parent.parent.name == "textual_inversion":
        return "textual_inversion"
    return _FOLDER_RULES.get(path.parent.name) or _FILE_RULES.get(path.name)


def remake_hint(path: str | os.PathLike) -> str:
    """The fix for a damaged artifact: delete it, and Snakemake's next run remakes it."""
    rule = rule_of(path)
    return ("delete it and rerun snakemake" + (f": rule {rule} remakes it" if rule else ", which remakes it")
            + " (and what depends on it)")


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike, columns: Iterable[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DDBError(path, "the table does not exist", "run the step that makes it (snakemake makes it for you)")
    import pyarrow

    try:
        frame = pd.read_parquet(path)
    except PermissionError as error:
        raise DDBError(path, "the table cannot be read: permission denied",
                       "ask its owner to make it readable (chmod g+r), or rerun into your own results/") from error
    except (pyarrow.ArrowException, OSError, ValueError) as error:  # truncated or corrupt (ArrowInvalid, OSError)
        raise DDBError(path, f"not a readable Parquet table, truncated or corrupt ({error})",
                       remake_hint(path)) from error
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DDBError(path, f"missing column(s) {missing}; found {list(frame.columns)}",
                           "regenerate it with this version of ddb-workflow")
    return frame


def to_square(image: Image.Image, resolution: int, resample=Image.BICUBIC) -> Image.Image:
    """``image`` stretched to ``resolution`` x ``resolution``: how the inpainting pipeline (and so textual
    inversion) sees a source of any size."""
    return image.resize((resolution, resolution), resample)


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch(obj, path: str | os.PathLike) -> None:
    import torch

    # through a buffer: saved to a path, torch names the archive's folder after the (random) temporary
    # file, and identical models would give different bytes
    buffer = _io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = _io.BytesIO()
    # compress_level fixed so the same pixels always give the same bytes
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_png(image: Image.Image | np.ndarray, path: str | os.PathLike) -> None:
    data = png_bytes(image)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    """A member's header: nothing but its name and size varies, so identical content gives identical bytes
    (no owner, group, time or mode of this machine or this job)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0  # byte-identical shards for identical content
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# How every shard tar is written (and a checkpoint's members encoded), so that identical content always
# gives identical bytes: POSIX (pax) format, UTF-8 names.
_TAR_FORMAT, _TAR_ENCODING, _TAR_ERRORS = tarfile.PAX_FORMAT, "utf-8", "surrogateescape"


def _pack_tar(tar_path: str | os.PathLike, members: Iterable[tuple[str, int, "_io.BufferedIOBase"]]) -> None:
    """Write ``{sample_id}.png`` members to ``tar_path`` atomically, one at a time: each comes as
    (sample id, size, a file object positioned at its bytes), which tarfile copies in 16 KiB chunks."""
    with atomic_path(tar_path) as tmp:
        with tarfile.open(tmp, "w", format=_TAR_FORMAT, encoding=_TAR_ENCODING, errors=_TAR_ERRORS) as tar:
            for sample_id, size, source in members:
                tar.addfile(_tarinfo(f"{sample_id}.png", size), source)
                tar.members.clear()  # tarfile keeps each member's TarInfo for lookups a writer never makes


def write_image_shard(items: Iterable[tuple[str, bytes]], tar_path: str | os.PathLike,
                      index: pd.DataFrame, index_path: str | os.PathLike) -> None:
    """Write ``{sample_id}.png`` members to ``tar_path`` and the index table to ``index_path``.

    The index is written last: a shard counts as finished only when both files are in place.
    POSIX (pax) format: a member name over ustar's 100 characters (a long sample id) gets a pax header
    holding its name, with nothing else in it; shorter names give the same bytes as ustar. ``items`` is
    consumed as it is written (a generator keeps one image in memory); :func:`process_shard` packs its
    shard from its checkpoint file instead, the same bytes.
    """
    _pack_tar(tar_path, ((sample_id, len(data), _io.BytesIO(data)) for sample_id, data in items))
    write_parquet(index, index_path)


# what Pillow raises for a file it cannot decode (UnidentifiedImageError is an OSError)
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


class ImageShard:
    """Random access to the PNGs of one shard tar, by sample id."""

    def __init__(self, tar_path: str | os.PathLike):
        self.path = Path(tar_path)
        if not self.path.exists():
            raise DDBError(self.path, "image shard does not exist", "rerun the step that writes it")
        try:
            with tarfile.open(self.path, "r:") as tar:  # shards are plain tars
                members = tar.getmembers()
                end = tar.offset
        except PermissionError as error:
            raise DDBError(self.path, "image shard cannot be read: permission denied",
                           "ask its owner to make it readable (chmod g+r), or rerun into your own results/") from error
        except tarfile.TarError as error:
            raise DDBError(self.path, f"not a readable tar, truncated or corrupt ({' '.join(str(error).split())})",
                           remake_hint(self.path)) from error
        # tarfile takes a tar cut at a member's header for a complete one with fewer members: a whole tar
        # ends with a zero block where its reading stopped
        with open(self.path, "rb") as handle:
            handle.seek(end)
            if handle.read(tarfile.BLOCKSIZE) != tarfile.NUL * tarfile.BLOCKSIZE:
                raise DDBError(self.path, f"truncated tar (it ends after {len(members)} member(s), with no "
                               "end-of-archive block)", remake_hint(self.path))
        self._offsets = {m.name[: -len(".png")]: (m.offset_data, m.size)
                         for m in members if m.name.endswith(".png")}

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self._offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def ids(self) -> list[str]:
        return list(self._offsets)

    def read_bytes(self, sample_id: str) -> bytes:
        offset, size = self._offsets[sample_id]
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
        if len(data) != size:
            raise DDBError(self.path, f"sample {sample_id!r}: truncated tar ({len(data)} of {size} bytes)",
                           remake_hint(self.path))
        return data

    def image(self, sample_id: str) -> Image.Image:
        """The PNG of ``sample_id``, decoded (so a corrupt one fails here, naming the shard and the sample)."""
        data = self.read_bytes(sample_id)
        try:
            image = Image.open(_io.BytesIO(data))
            image.load()
        except _IMAGE_ERRORS as error:
            raise DDBError(self.path, f"sample {sample_id!r}: corrupt image in the shard ({error})",
                           remake_hint(self.path)) from error
        return image


_JOB_FINGERPRINT: str | None = None


def set_job_fingerprint(fingerprint: str | None) -> None:
    """Name what the running job's results depend on (``ddb.scripting.run_step`` sets it from the rule,
    wildcards, params and inputs); :class:`PartialShard` keeps only checkpoints of the same fingerprint."""
    global _JOB_FINGERPRINT
    _JOB_FINGERPRINT = fingerprint


# The files of a shard's checkpoint folder: three, however many samples the shard holds (a shared file
# system pays for every file: two per sample would be ~70,000 for CelebA's generations).
CHECKPOINT_IMAGES, CHECKPOINT_RECORDS, CHECKPOINT_STAMP = "images.tar", "records.jsonl", "fingerprint.txt"


def _checkpoint_lines(records_path: Path, images_size: int) -> tuple[dict[str, int], int, int]:
    """Where each whole record of a checkpoint starts in records.jsonl, by sample id, with the byte length
    of those lines and the end of the last one's member in images.tar. Reading stops at the first line
    that is cut short, not JSON, or names bytes images.tar does not hold (the tail of a killed job)."""
    lines, records_end, images_end = {}, 0, 0
    try:
        handle = open(records_path, "rb")
    except FileNotFoundError:
        return lines, 0, 0
    with handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                entry = json.loads(line)
                end, png = int(entry["end"]), entry["png"]
                whole = images_end <= end <= images_size and isinstance(entry["record"], dict) and (
                    png is None or images_end <= int(png[0]) and int(png[0]) + int(png[1]) <= end)
                sample_id = str(entry["id"])
            except (ValueError, KeyError, TypeError, IndexError):
                break
            if not whole:
                break
            lines[sample_id] = records_end
            records_end, images_end = records_end + len(line), end
    return lines, records_end, images_end


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def checkpointed(tar_path: str | os.PathLike) -> list[str]:
    """Sample ids whose checkpoint is complete in ``<tar>.partial/`` (empty if there is none); reads only,
    so it may watch a running job."""
    folder = Path(str(tar_path) + ".partial")
    lines, _, _ = _checkpoint_lines(folder / CHECKPOINT_RECORDS, _file_size(folder / CHECKPOINT_IMAGES))
    return list(lines)


class PartialShard:
    """Checkpoints of a shard in progress: ``<tar>.partial/`` holds three files, however large the shard.

    - ``images.tar``: the PNG of every finished sample, appended as a tar member with the finished
      shard's header (:func:`_tarinfo`), in the order the samples finished, with no end-of-archive block;
    - ``records.jsonl``: one line per finished sample, its completion marker, appended after its PNG: its
      index row (``record``), where its PNG lies in images.tar (``png``: offset and size, or null) and
      where its member ends (``end``);
    - ``fingerprint.txt``: what the job's results depend on (:func:`set_job_fingerprint`).

    :meth:`put` appends a sample, :meth:`commit` (after each batch) flushes and fsyncs images.tar and only
    then appends and fsyncs the batch's records, so no record names bytes a crash can lose. A job killed
    mid-batch leaves a tail: PNG bytes without a record, a last line cut short. The next job drops it
    (both files are truncated after the last whole record), skips the finished samples and computes the
    rest. :meth:`write_tar` then copies the PNGs into the finished shard in ``sample_ids`` order, a member
    at a time, and :meth:`index` reads the records back a line at a time: memory holds one offset per
    sample, never the shard's images, so it stays flat however many images the shard holds. The shard has
    the bytes an uninterrupted run writes (every record is read back from the file, fresh or resumed). The
    folder is removed once the shard is in place (:meth:`cleanup`).

    Checkpoints left by a job with other settings or inputs (killed, then the config was edited) are
    discarded, never mixed into the new shard: the folder records the job's fingerprint. Any other file
    in it (the per-sample files of earlier versions, a killed job's temporary file) is removed.
    """

    def __init__(self, tar_path: str | os.PathLike, fingerprint: str | None = None):
        self.dir = Path(str(tar_path) + ".partial")
        self.images_path, self.records_path = self.dir / CHECKPOINT_IMAGES, self.dir / CHECKPOINT_RECORDS
        self.dir.mkdir(parents=True, exist_ok=True)
        leftovers = [f for f in self.dir.iterdir()
                     if f.name not in (CHECKPOINT_IMAGES, CHECKPOINT_RECORDS, CHECKPOINT_STAMP)]
        if old_format := sum(f.suffix == ".json" for f in leftovers):
            print(f"{self.dir}: discarding {old_format} per-sample checkpoint(s) of an earlier version of "
                  "ddb-workflow", flush=True)
        for leftover in leftovers:
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        fingerprint = fingerprint or _JOB_FINGERPRINT
        stamp = self.dir / CHECKPOINT_STAMP
        if fingerprint is not None and (not stamp.exists() or stamp.read_text() != fingerprint):
            done = len(_checkpoint_lines(self.records_path, _file_size(self.images_path))[0])
            if done:
                print(f"{self.dir}: discarding {done} checkpoint(s) of a job with other settings or inputs",
                      flush=True)
            for file in (self.images_path, self.records_path, stamp):
                file.unlink(missing_ok=True)
            with atomic_path(stamp) as tmp:
                tmp.write_text(fingerprint)
        # sample id -> where its record starts in records.jsonl: all that memory holds per finished sample
        self._lines, self._records_end, self._images_end = _checkpoint_lines(self.records_path,
                                                                             _file_size(self.images_path))
        dropped = (_file_size(self.images_path) - self._images_end, _file_size(self.records_path) - self._records_end)
        if any(dropped):
            print(f"{self.dir}: dropping the unfinished tail of a killed job ({dropped[0]} bytes of images, "
                  f"{dropped[1]} of records)", flush=True)
        self._pending: list[tuple[str, bytes]] = []  # the batch's records, until commit
        try:
            self._images = open(self.images_path, "ab")
            self._images.truncate(self._images_end)
            self._records = open(self.records_path, "ab")
            self._records.truncate(self._records_end)
        except OSError as error:
            self.close()
            raise self._write_error(error) from error

    def _write_error(self, error: OSError) -> BaseException:
        """A full disk or an exceeded quota as one DDBError; any other error as it is."""
        if (code := _no_space(error)) is None:
            return error
        problem, fix = _NO_SPACE[code]
        return DDBError(self.dir, f"{problem} while checkpointing; the samples finished before are kept", fix)

    def __len__(self) -> int:
        return len(self._lines)

    def done(self, sample_id: str) -> bool:
        return sample_id in self._lines

    def put(self, sample_id: str, image: Image.Image | np.ndarray | bytes | None, record: dict) -> None:
        """Append a finished sample (``image`` decoded, or already PNG bytes; None: no image); it becomes
        a checkpoint at the next :meth:`commit`."""
        png = None
        try:
            if image is not None:
                data = image if isinstance(image, bytes) else png_bytes(image)
                header = _tarinfo(f"{sample_id}.png", len(data)).tobuf(_TAR_FORMAT, _TAR_ENCODING, _TAR_ERRORS)
                padding = -len(data) % tarfile.BLOCKSIZE
                self._images.write(header)
                self._images.write(data)
                self._images.write(tarfile.NUL * padding)
                png = [self._images_end + len(header), len(data)]
                self._images_end += len(header) + len(data) + padding
        except OSError as error:
            raise self._write_error(error) from error
        entry = {"id": sample_id, "png": png, "end": self._images_end, "record": record}
        self._pending.append((sample_id, (json.dumps(entry) + "\n").encode()))

    def commit(self) -> None:
        """Make the samples put since the last commit durable: their PNGs first, then their records."""
        if not self._pending:
            return
        try:
            self._images.flush()
            os.fsync(self._images.fileno())
            self._records.write(b"".join(line for _, line in self._pending))
            self._records.flush()
            os.fsync(self._records.fileno())
        except OSError as error:
            raise self._write_error(error) from error
        for sample_id, line in self._pending:
            self._lines[sample_id] = self._records_end
            self._records_end += len(line)
        self._pending.clear()

    def _entries(self, sample_ids: Iterable[str]) -> Iterator[dict]:
        """The committed entries of ``sample_ids``, in that order, read back from records.jsonl."""
        with open(self.records_path, "rb") as records:
            for sample_id in sample_ids:
                records.seek(self._lines[sample_id])
                yield json.loads(records.readline())

    def index(self, sample_ids: list[str], columns: list[str] | None = None) -> pd.DataFrame:
        """The index table of ``sample_ids`` (their records, in that order), built a column at a time so
        that no per-row dict outlives its line; what ``pd.DataFrame.from_records`` makes of the same
        records (``columns``: those, else every key in the order first seen; a missing value is NaN)."""
        if not sample_ids:
            return pd.DataFrame.from_records([], columns=columns)
        values: dict[str, list] = {name: [] for name in columns or []}
        for row, entry in enumerate(self._entries(sample_ids)):
            record = entry["record"]
            if columns is None:
                for name in record:
                    values.setdefault(name, [math.nan] * row)
            for name, column in values.items():
                column.append(record.get(name, math.nan))
        return pd.DataFrame(values)

    def write_tar(self, sample_ids: list[str], tar_path: str | os.PathLike) -> None:
        """The finished shard: the PNGs of ``sample_ids`` that have one, in that order, copied from
        images.tar member by member (atomically replacing ``tar_path``)."""
        with open(self.images_path, "rb") as source:
            def members():
                for sample_id, entry in zip(sample_ids, self._entries(sample_ids)):
                    if entry["png"] is not None:
                        offset, size = entry["png"]
                        source.seek(offset)
                        yield sample_id, size, source

            _pack_tar(tar_path, members())

    def close(self) -> None:
        for name in ("_images", "_records"):
            handle = getattr(self, name, None)
            if handle is not None:
                handle.close()

    def cleanup(self) -> None:
        self.close()
        for file in self.dir.iterdir():
            file.unlink()
        self.dir.rmdir()


SHARD_LOCK_WAIT_VARIABLE = "DDB_SHARD_LOCK_WAIT"
# Long enough for a job that is being cancelled to clean up, and for an NFS v4 server to drop the lock of
# a crashed node (its lease, 90 s by default); far shorter than a shard's work, which a job would
# otherwise spend waiting on its GPU only to redo what the other job did.
DEFAULT_SHARD_LOCK_WAIT = 120.0


def shard_lock_wait() -> float:
    """Seconds a job waits for another job writing the same shard before it stops: the environment
    variable DDB_SHARD_LOCK_WAIT, else 120."""
    value = os.environ.get(SHARD_LOCK_WAIT_VARIABLE, "").strip()
    if not value:
        return DEFAULT_SHARD_LOCK_WAIT
    try:
        wait = float(value)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or wait < 0:
        raise DDBError(f"environment variable {SHARD_LOCK_WAIT_VARIABLE}", f"{value!r} is not a number of seconds",
                       f"set it to the seconds to wait (e.g. {DEFAULT_SHARD_LOCK_WAIT:g}; 0 stops at once), "
                       "or unset it")
    return wait


def _lock_holder(lock_path: Path) -> str:
    try:
        holder = lock_path.read_text(errors="replace").strip()
    except OSError:
        holder = ""
    return holder or "a job that is just starting or ending"


def _holder_line() -> str:
    slurm = os.environ.get("SLURM_JOB_ID")
    return (f"pid {os.getpid()} on host {socket.gethostname()}" + (f" (SLURM job {slurm})" if slurm else "")
            + f", started {datetime.now().astimezone().isoformat(timespec='seconds')}")


@contextlib.contextmanager
def shard_lock(tar_path: str | os.PathLike, wait: float | None = None) -> Iterator[None]:
    """Hold ``.{tar name}.lock`` beside ``tar_path`` (``fcntl.flock``: local disks, and NFS v4, where Linux
    maps it onto the server's locks) while the block runs, so two jobs never work on one shard, and so
    on one ``<tar>.partial/`` folder: say a SLURM job kept running after ``snakemake --unlock`` while the
    shard was submitted again.

    The holder writes its pid, host, SLURM job and start time into the lock file. Another job waits up
    to ``wait`` seconds (default: :func:`shard_lock_wait`) for it to finish, then stops with a DDBError
    naming it. The lock file is removed when the block ends; a job killed with SIGKILL leaves it, and
    the next job takes it over (the kernel released the lock). On a file system without locks (Lustre
    mounted without ``flock``) the block runs unlocked, after a warning.
    """
    import fcntl

    tar_path = Path(tar_path)
    lock_path = tar_path.with_name(f".{tar_path.name}.lock")
    wait = shard_lock_wait() if wait is None else wait
    deadline = time.monotonic() + wait
    waiting = False
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    cloexec = getattr(os, "O_CLOEXEC", 0)
    cannot_lock = DDBError(lock_path, "cannot open or lock the shard's lock file (it belongs to another user)",
                           "if no job is writing this shard any more, delete the lock file and rerun")
    while True:
        writable = True
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | cloexec, 0o666)
        except PermissionError as error:  # left by a teammate's killed job, not group-writable: lock it read-only
            try:
                fd, writable = os.open(lock_path, os.O_RDONLY | cloexec), False
            except OSError:
                raise cannot_lock from error
        except OSError as error:
            if (code := _no_space(error)) is not None:
                raise _no_space_error(lock_path, code) from error
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno == errno.EBADF:  # NFS locks a read-only file for reading only
                raise cannot_lock from error
            if error.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                import logging

                logging.getLogger("ddb").warning(
                    f"{lock_path}: the file system does not support locks ({error.strerror}); two jobs on "
                    "this shard would not be noticed")
                fd = None
                break
            if error.errno == errno.ESTALE:  # NFS: the holder removed the file we opened; open the new one
                time.sleep(0.05)
                continue
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = _lock_holder(lock_path)
            if time.monotonic() >= deadline:
                raise DDBError(tar_path, f"another job is writing this shard: {holder} (lock file {lock_path.name}; "
                               f"waited {wait:g} s)",
                               "let that job finish, or cancel it (scancel / kill), then rerun; a job that no "
                               "longer runs releases the lock by itself (on NFS within a few minutes). "
                               f"To wait longer, set {SHARD_LOCK_WAIT_VARIABLE}=<seconds>") from None
            if not waiting:
                print(f"{tar_path}: another job is writing this shard ({holder}); waiting up to {wait:g} s",
                      flush=True)
                waiting = True
            time.sleep(max(0.0, min(0.5, deadline - time.monotonic())))
            continue
        # the job we waited for removes the file before it releases it: is ours still the one in place?
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except OSError:
            same = False
        if same and not writable:  # nobody holds it: put a lock file of ours in its place
            try:
                lock_path.unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                os.close(fd)
                raise cannot_lock from error
        elif same:
            break
        os.close(fd)
    try:
        if fd is not None:
            with contextlib.suppress(OSError):  # who holds it is for messages only (and a full disk shows later)
                os.ftruncate(fd, 0)
                os.pwrite(fd, (_holder_line() + "\n").encode(), 0)
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                lock_path.unlink()  # before releasing: a job waiting on this file then opens a new one
            os.close(fd)


def process_shard(sample_ids: list[str], compute_batch, batch_size: int, tar_path: str | os.PathLike,
                  index_path: str | os.PathLike, desc: str = "shard",
                  columns: list[str] | None = None, lock_wait: float | None = None) -> pd.DataFrame:
    """Run ``compute_batch(ids) -> [(sample_id, image | PNG bytes | None, record)]`` over the unfinished ids
    in batches, checkpointing each batch (:class:`PartialShard`), then pack the tar from the checkpoint,
    streaming, and write its index last (rows in ``sample_ids`` order; ``columns`` keeps the index's
    columns even for an empty shard). Memory holds one batch of images, never the shard's.

    The whole of it holds the shard's lock (:func:`shard_lock`; ``lock_wait`` seconds, default
    DDB_SHARD_LOCK_WAIT or 120, for another job writing the same shard, then a DDBError naming it).
    """
    with shard_lock(tar_path, lock_wait):
        return _process_shard(sample_ids, compute_batch, batch_size, tar_path, index_path, desc, columns)


def _process_shard(sample_ids, compute_batch, batch_size, tar_path, index_path, desc, columns) -> pd.DataFrame:
    from tqdm.auto import tqdm

    partial = PartialShard(tar_path)
    try:
        todo = [s for s in sample_ids if not partial.done(s)]
        if len(todo) < len(sample_ids):
            print(f"{desc}: resuming, {len(sample_ids) - len(todo)} of {len(sample_ids)} samples already done",
                  flush=True)
        with tqdm(total=len(sample_ids), initial=len(sample_ids) - len(todo), desc=desc, mininterval=5) as bar:
            for start in range(0, len(todo), batch_size):
                for sample_id, image, record in compute_batch(todo[start:start + batch_size]):
                    partial.put(sample_id, image, record)
                    bar.update(1)
                partial.commit()
        index = partial.index(sample_ids, columns)
        partial.write_tar(sample_ids, tar_path)
        write_parquet(index, index_path)  # last: the shard counts as finished once both files are in place
    finally:
        partial.close()
    partial.cleanup()
    return index


def load_image(path: str | os.PathLike, mode: str = "RGB") -> Image.Image:
    """Open an image fully (so a truncated file fails here, with its name, not later)."""
    try:
        image = Image.open(path)
        try:
            image.load()
        except BaseException:
            image.close()
            raise
    except FileNotFoundError as error:
        raise DDBError(path, "image listed in the manifest does not exist",
                       "check the dataset root, or regenerate the manifest") from error
    except PermissionError as error:
        raise DDBError(path, "image cannot be read: permission denied",
                       "make it readable for your user (ask its owner: chmod a+r), or remove it from the dataset "
                       "and rerun prepare_dataset") from error
    except Image.DecompressionBombError as error:
        raise DDBError(path, f"image too large to decode safely ({error})",
                       "replace it with a smaller copy, or remove it from the dataset and rerun "
                       "prepare_dataset") from error
    except _IMAGE_ERRORS as error:
        raise DDBError(path, f"corrupt or truncated image ({error})",
                       "replace the file, or remove it from the dataset and rerun prepare_dataset") from error
    with image:
        return image.convert(mode)
