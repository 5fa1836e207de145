"""Atomic writes: every artifact goes to a temporary name and is renamed into place.

A killed job therefore never leaves a file that Snakemake or a reader takes as complete; a full disk or
an exceeded quota is one DDBError naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DDBError
from .images import png_bytes


# a full disk and an exceeded quota: (problem, fix)
NO_SPACE = {
    errno.ENOSPC: ("the disk is full", "free space (or point results/ elsewhere) and rerun"),
    errno.EDQUOT: ("the disk quota is exceeded",
                   "free space within your quota (see `quota -s`, or `lfs quota` on Lustre), ask for a larger "
                   "one, or point results/ elsewhere, and rerun"),
}


def no_space_errno(error: BaseException | None) -> int | None:
    """The errno of a full disk or an exceeded quota behind ``error`` (itself or what caused it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            return error.errno
        error = error.__cause__ or error.__context__
    return None


def no_space_error(path: Path, code: int) -> DDBError:
    problem, fix = NO_SPACE[code]
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
        if (code := no_space_errno(error)) is not None:
            raise no_space_error(path, code) from error
        raise
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # the error being raised is the one to report
            pass
        if isinstance(error, Exception) and not isinstance(error, DDBError) and (code := no_space_errno(error)):
            raise no_space_error(path, code) from error
        raise
    _fsync_dir(path.parent)


def write_text(text: str, path: str | os.PathLike) -> None:
    """``Path.write_text``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")




def write_parquet(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)



def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch(obj, path: str | os.PathLike) -> None:
    import torch

    # through a buffer: saved to a path, torch names the archive's folder after the (random) temporary
    # file, and identical models would give different bytes
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())



def write_png(image: Image.Image | np.ndarray, path: str | os.PathLike) -> None:
    data = png_bytes(image)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)

