"""One job per shard: a lock file beside the shard, naming its holder."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

from ..errors import DDBError
from .atomic import no_space_errno, no_space_error


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
            if (code := no_space_errno(error)) is not None:
                raise no_space_error(lock_path, code) from error
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

