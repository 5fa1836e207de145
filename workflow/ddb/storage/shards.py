"""Image shards: plain tars of ``{sample_id}.png`` (the WebDataset convention) with a Parquet index beside
them, so ``tar -tf``, PIL, pandas and webdataset can all open them. Identical content gives identical
bytes."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Iterable

import pandas as pd
from PIL import Image

from ..errors import DDBError
from .atomic import atomic_path, write_parquet
from .images import IMAGE_ERRORS
from .remake import remake_hint


def tarinfo(name: str, size: int) -> tarfile.TarInfo:
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
TAR_FORMAT, TAR_ENCODING, TAR_ERRORS = tarfile.PAX_FORMAT, "utf-8", "surrogateescape"


def pack_tar(tar_path: str | os.PathLike, members: Iterable[tuple[str, int, "io.BufferedIOBase"]]) -> None:
    """Write ``{sample_id}.png`` members to ``tar_path`` atomically, one at a time: each comes as
    (sample id, size, a file object positioned at its bytes), which tarfile copies in 16 KiB chunks."""
    with atomic_path(tar_path) as tmp:
        with tarfile.open(tmp, "w", format=TAR_FORMAT, encoding=TAR_ENCODING, errors=TAR_ERRORS) as tar:
            for sample_id, size, source in members:
                tar.addfile(tarinfo(f"{sample_id}.png", size), source)
                tar.members.clear()  # tarfile keeps each member's TarInfo for lookups a writer never makes


def write_image_shard(items: Iterable[tuple[str, bytes]], tar_path: str | os.PathLike,
                      index: pd.DataFrame, index_path: str | os.PathLike) -> None:
    """Write ``{sample_id}.png`` members to ``tar_path`` and the index table to ``index_path``.

    The index is written last: a shard counts as finished only when both files are in place.
    POSIX (pax) format: a member name over ustar's 100 characters (a long sample id) gets a pax header
    holding its name, with nothing else in it; shorter names give the same bytes as ustar. ``items`` is
    consumed as it is written (a generator keeps one image in memory); :func:`.checkpoints.process_shard` packs its
    shard from its checkpoint file instead, the same bytes.
    """
    pack_tar(tar_path, ((sample_id, len(data), io.BytesIO(data)) for sample_id, data in items))
    write_parquet(index, index_path)



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
            image = Image.open(io.BytesIO(data))
            image.load()
        except IMAGE_ERRORS as error:
            raise DDBError(self.path, f"sample {sample_id!r}: corrupt image in the shard ({error})",
                           remake_hint(self.path)) from error
        return image
