"""A shard in progress: checkpointed per batch into ``<tar>.partial/``, resumed after a killed job, and
packed into the finished shard with the bytes an uninterrupted run writes."""

from __future__ import annotations

import json
import math
import os
import shutil
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DDBError
from ..failure_cleanup import quietly
from .atomic import NO_SPACE, atomic_path, no_space_errno, write_parquet
from .images import png_bytes
from .locks import shard_lock
from .shards import TAR_ENCODING, TAR_ERRORS, TAR_FORMAT, pack_tar, tarinfo


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


def _stamp(folder: Path) -> str | None:
    try:
        return (folder / CHECKPOINT_STAMP).read_text()
    except FileNotFoundError:
        return None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def checkpointed(tar_path: str | os.PathLike, fingerprint: str | None = None) -> list[str]:
    """Sample ids whose checkpoint is complete in ``<tar>.partial/`` (empty if there is none; with a job's
    ``fingerprint``, also if the checkpoints are another job's, which that job would discard); reads only,
    so it may watch a running job."""
    folder = Path(str(tar_path) + ".partial")
    if fingerprint is not None and _stamp(folder) != fingerprint:
        return []
    lines, _, _ = _checkpoint_lines(folder / CHECKPOINT_RECORDS, _file_size(folder / CHECKPOINT_IMAGES))
    return list(lines)


class PartialShard:
    """Checkpoints of a shard in progress: ``<tar>.partial/`` holds three files, however large the shard.

    - ``images.tar``: the PNG of every finished sample, appended as a tar member with the finished
      shard's header (:func:`tarinfo`), in the order the samples finished, with no end-of-archive block;
    - ``records.jsonl``: one line per finished sample, its completion marker, appended after its PNG: its
      index row (``record``), where its PNG lies in images.tar (``png``: offset and size, or null) and
      where its member ends (``end``);
    - ``fingerprint.txt``: what the job's results depend on (``fingerprint``: the job's, from
      :attr:`ddb.jobs.Job.fingerprint`; None outside a job, e.g. a test, which keeps whatever is there).

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
            quietly(self.close)
            raise self._write_error(error) from error

    def _write_error(self, error: OSError) -> BaseException:
        """A full disk or an exceeded quota as one DDBError; any other error as it is."""
        if (code := no_space_errno(error)) is None:
            return error
        problem, fix = NO_SPACE[code]
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
                header = tarinfo(f"{sample_id}.png", len(data)).tobuf(TAR_FORMAT, TAR_ENCODING, TAR_ERRORS)
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

            pack_tar(tar_path, members())

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


def process_shard(sample_ids: list[str], compute_batch, batch_size: int, tar_path: str | os.PathLike,
                  index_path: str | os.PathLike, desc: str = "shard",
                  columns: list[str] | None = None, lock_wait: float | None = None,
                  fingerprint: str | None = None) -> pd.DataFrame:
    """Run ``compute_batch(ids) -> [(sample_id, image | PNG bytes | None, record)]`` over the unfinished ids
    in batches, checkpointing each batch (:class:`PartialShard`, stamped with the job's ``fingerprint``),
    then pack the tar from the checkpoint, streaming, and write its index last (rows in ``sample_ids``
    order; ``columns`` keeps the index's columns even for an empty shard). Memory holds one batch of images, never the shard's.

    The whole of it holds the shard's lock (:func:`.locks.shard_lock`; ``lock_wait`` seconds, default
    DDB_SHARD_LOCK_WAIT or 120, for another job writing the same shard, then a DDBError naming it).
    """
    with shard_lock(tar_path, lock_wait):
        return _process_shard(sample_ids, compute_batch, batch_size, tar_path, index_path, desc, columns, fingerprint)


def _process_shard(sample_ids, compute_batch, batch_size, tar_path, index_path, desc, columns,
                   fingerprint) -> pd.DataFrame:
    from tqdm.auto import tqdm

    partial = PartialShard(tar_path, fingerprint)
    packed = False
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
        packed = True
        write_parquet(index, index_path)  # last: the shard counts as finished once both files are in place
    except BaseException:
        # closing flushes the checkpoint's buffers, which a full disk refuses again: the error being raised
        # is the one to report. A tar without its index is not a finished shard; the checkpoint (kept for
        # the next job) holds its images.
        quietly(partial.close)
        if packed:
            quietly(Path(tar_path).unlink, True)
        raise
    partial.close()
    partial.cleanup()
    return index

