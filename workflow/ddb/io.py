"""Artifact I/O: every write goes to a temporary name and is renamed into place.

A killed job therefore never leaves a file that Snakemake or a reader takes as complete.
Image shards are plain tars of ``{sample_id}.png`` (the WebDataset convention) with a Parquet index
beside them, so ``tar -tf``, PIL, pandas and webdataset can all open them.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from PIL import Image

from .errors import DDBError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == 28:  # ENOSPC
            raise DDBError(path, "the disk is full; nothing was written",
                           "free space (or point results/ elsewhere) and rerun") from error
        raise


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike, columns: Iterable[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DDBError(path, "the table does not exist", "run the step that makes it (snakemake makes it for you)")
    frame = pd.read_parquet(path)
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
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0  # byte-identical shards for identical content
    info.mode = 0o644
    return info


def write_image_shard(items: Iterable[tuple[str, bytes]], tar_path: str | os.PathLike,
                      index: pd.DataFrame, index_path: str | os.PathLike) -> None:
    """Write ``{sample_id}.png`` members to ``tar_path`` and the index table to ``index_path``.

    The index is written last: a shard counts as finished only when both files are in place.
    """
    with atomic_path(tar_path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for sample_id, data in items:
                tar.addfile(_tarinfo(f"{sample_id}.png", len(data)), _io.BytesIO(data))
    write_parquet(index, index_path)


class ImageShard:
    """Random access to the PNGs of one shard tar, by sample id."""

    def __init__(self, tar_path: str | os.PathLike):
        self.path = Path(tar_path)
        if not self.path.exists():
            raise DDBError(self.path, "image shard does not exist", "rerun the step that writes it")
        try:
            with tarfile.open(self.path) as tar:
                self._offsets = {m.name[: -len(".png")]: (m.offset_data, m.size)
                                 for m in tar.getmembers() if m.name.endswith(".png")}
        except tarfile.TarError as error:
            raise DDBError(self.path, f"not a readable tar ({error})",
                           "delete it and rerun snakemake; the shard will be regenerated") from error

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
            return handle.read(size)

    def image(self, sample_id: str) -> Image.Image:
        return Image.open(_io.BytesIO(self.read_bytes(sample_id)))


_JOB_FINGERPRINT: str | None = None


def set_job_fingerprint(fingerprint: str | None) -> None:
    """Name what the running job's results depend on (``ddb.scripting.run_step`` sets it from the rule,
    wildcards, params and inputs); :class:`PartialShard` keeps only checkpoints of the same fingerprint."""
    global _JOB_FINGERPRINT
    _JOB_FINGERPRINT = fingerprint


class PartialShard:
    """Per-sample checkpoints of a shard in progress, in ``<tar>.partial/``.

    Each finished sample leaves ``{sample_id}.png`` (if it produced an image) and then
    ``{sample_id}.json`` (its index row, written last: the completion marker). A generation job that
    is killed keeps what it finished; restarted, it skips those samples and packs the same tar an
    uninterrupted run would have written. The folder is removed once the shard is in place.
    Checkpoints left by a job with other settings or inputs (killed, then the config was edited) are
    discarded, never mixed into the new shard: the folder records the job's fingerprint.
    """

    def __init__(self, tar_path: str | os.PathLike, fingerprint: str | None = None):
        self.dir = Path(str(tar_path) + ".partial")
        self.dir.mkdir(parents=True, exist_ok=True)
        fingerprint = fingerprint or _JOB_FINGERPRINT
        stamp = self.dir / "fingerprint.txt"
        if fingerprint is not None and (not stamp.exists() or stamp.read_text() != fingerprint):
            stale = list(self.dir.iterdir())
            done = sum(f.suffix == ".json" for f in stale)
            if done:
                print(f"{self.dir}: discarding {done} checkpoint(s) of a job with other settings or inputs",
                      flush=True)
            for file in stale:
                file.unlink()
            with atomic_path(stamp) as tmp:
                tmp.write_text(fingerprint)

    def done(self, sample_id: str) -> bool:
        return (self.dir / f"{sample_id}.json").exists()

    def put(self, sample_id: str, image: Image.Image | np.ndarray | None, record: dict) -> None:
        if image is not None:
            write_png(image, self.dir / f"{sample_id}.png")
        with atomic_path(self.dir / f"{sample_id}.json") as tmp:
            tmp.write_text(json.dumps(record))

    def record(self, sample_id: str) -> dict:
        return json.loads((self.dir / f"{sample_id}.json").read_text())

    def image_bytes(self, sample_id: str) -> bytes | None:
        path = self.dir / f"{sample_id}.png"
        return path.read_bytes() if path.exists() else None

    def cleanup(self) -> None:
        for file in self.dir.iterdir():
            file.unlink()
        self.dir.rmdir()


def process_shard(sample_ids: list[str], compute_batch, batch_size: int, tar_path: str | os.PathLike,
                  index_path: str | os.PathLike, desc: str = "shard",
                  columns: list[str] | None = None) -> pd.DataFrame:
    """Run ``compute_batch(ids) -> [(sample_id, image | None, record)]`` over the unfinished ids in
    batches, checkpointing each sample, then pack the tar and its index (rows in ``sample_ids`` order;
    ``columns`` keeps the index's columns even for an empty shard).
    """
    from tqdm.auto import tqdm

    partial = PartialShard(tar_path)
    todo = [s for s in sample_ids if not partial.done(s)]
    if len(todo) < len(sample_ids):
        print(f"{desc}: resuming, {len(sample_ids) - len(todo)} of {len(sample_ids)} samples already done",
              flush=True)
    with tqdm(total=len(sample_ids), initial=len(sample_ids) - len(todo), desc=desc, mininterval=5) as bar:
        for start in range(0, len(todo), batch_size):
            for sample_id, image, record in compute_batch(todo[start:start + batch_size]):
                partial.put(sample_id, image, record)
                bar.update(1)
    records = [partial.record(s) for s in sample_ids]
    items = [(s, data) for s in sample_ids if (data := partial.image_bytes(s)) is not None]
    index = pd.DataFrame.from_records(records, columns=columns)
    write_image_shard(items, tar_path, index, index_path)
    partial.cleanup()
    return index


def load_image(path: str | os.PathLike, mode: str = "RGB") -> Image.Image:
    """Open an image fully (so a truncated file fails here, with its name, not later)."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode)
    except FileNotFoundError as error:
        raise DDBError(path, "image listed in the manifest does not exist",
                       "check the dataset root, or regenerate the manifest") from error
    except (OSError, SyntaxError) as error:
        raise DDBError(path, f"corrupt or truncated image ({error})",
                       "replace the file, or remove it from the dataset and rerun prepare_dataset") from error
