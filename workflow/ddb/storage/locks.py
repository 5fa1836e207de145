"""Locks in the results folder that name their holder: one job per shard (:func:`shard_lock`), one
Snakemake run per results folder (:func:`take_run_lock`)."""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import math
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from ..errors import DDBError
from ..paths import run_lock_path
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


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as its lock file says: what a person needs to find the process and stop it."""

    pid: int
    host: str
    slurm_job: str | None
    workdir: str
    started: str

    _LINE = re.compile(r"pid (?P<pid>\d+) on host (?P<host>\S+)(?: \(SLURM job (?P<slurm_job>[^)]*)\))?, "
                       r"in (?P<workdir>.*), started (?P<started>\S+)")

    @classmethod
    def this_process(cls) -> "LockHolder":
        return cls(os.getpid(), socket.gethostname(), os.environ.get("SLURM_JOB_ID") or None, os.getcwd(),
                   datetime.now().astimezone().isoformat(timespec="seconds"))

    @classmethod
    def parse(cls, text: str) -> "LockHolder | None":
        """The holder a lock file names (None for an empty or foreign one)."""
        match = cls._LINE.fullmatch(text.strip())
        if match is None:
            return None
        return cls(**{**match.groupdict(), "pid": int(match["pid"])})

    def line(self) -> str:
        return (f"pid {self.pid} on host {self.host}" + (f" (SLURM job {self.slurm_job})" if self.slurm_job else "")
                + f", in {self.workdir}, started {self.started}")

    def is_here(self) -> bool:
        return self.host == socket.gethostname()

    def is_running(self) -> bool:
        """Whether its process exists (only meaningful on its own host)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process
            return True
        return True


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is what its lock file says."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def _lock_holder(lock_path: Path) -> str:
    try:
        holder = lock_path.read_text(errors="replace").strip()
    except OSError:
        holder = ""
    return holder or "a process that is just starting or ending"


def _lock_file(lock_path: Path, cannot_lock: DDBError, unnoticed: str,
               judge_left: Callable[[str, bool], None] | None = None) -> int:
    """Take ``fcntl.flock`` on ``lock_path`` without waiting (local disks, and NFS v4, where Linux maps it onto
    the server's locks) and return the open descriptor; raise :class:`LockHeld` where another process holds it.

    ``judge_left(text, locked)`` sees what a lock file that nobody holds says (a holder that ended without
    removing it, or, where ``locked`` is false, any holder) before it is replaced, and may raise to leave it be.
    On a file system without locks (Lustre mounted without ``flock``) the descriptor is returned unlocked,
    after a warning that ``unnoticed`` would not be noticed.
    """
    import fcntl

    cloexec = getattr(os, "O_CLOEXEC", 0)
    while True:
        writable = True
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | cloexec, 0o666)
        except PermissionError as error:  # left by a teammate's killed process, not group-writable: lock it read-only
            try:
                fd, writable = os.open(lock_path, os.O_RDONLY | cloexec), False
            except OSError:
                raise cannot_lock from error
        except OSError as error:
            if (code := no_space_errno(error)) is not None:
                raise no_space_error(lock_path, code) from error
            raise
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                logging.getLogger("ddb").warning(
                    f"{lock_path}: the file system does not support locks ({error.strerror}); {unnoticed} would "
                    "not be noticed")
                locked = False
            else:
                os.close(fd)
                if error.errno == errno.EBADF:  # NFS locks a read-only file for reading only
                    raise cannot_lock from error
                if error.errno == errno.ESTALE:  # NFS: the holder removed the file we opened; open the new one
                    time.sleep(0.05)
                    continue
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise LockHeld(_lock_holder(lock_path)) from None
        # a holder removes the file before it releases it: is ours still the one in place?
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except OSError:
            same = False
        if not same:
            os.close(fd)
            continue
        try:
            if judge_left is not None:
                judge_left(os.pread(fd, 4096, 0).decode(errors="replace"), locked)
            if not writable:  # nobody holds it: put a lock file of ours in its place
                with contextlib.suppress(FileNotFoundError):
                    lock_path.unlink()
        except BaseException as error:
            os.close(fd)
            if isinstance(error, OSError):
                raise cannot_lock from error
            raise
        if writable:
            return fd
        os.close(fd)


def _write_holder(fd: int) -> None:
    with contextlib.suppress(OSError):  # who holds it is for messages only (and a full disk shows later)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (LockHolder.this_process().line() + "\n").encode(), 0)


def _release(lock_path: Path, fd: int) -> None:
    try:
        ours = os.path.samestat(os.fstat(fd), os.stat(lock_path))
    except OSError:
        ours = False
    if ours:  # removed before it is released: a process waiting on this file then opens a new one
        with contextlib.suppress(OSError):
            lock_path.unlink()
    os.close(fd)


@contextlib.contextmanager
def shard_lock(tar_path: str | os.PathLike, wait: float | None = None) -> Iterator[None]:
    """Hold ``.{tar name}.lock`` beside ``tar_path`` while the block runs, so two jobs never work on one shard,
    and so on one ``<tar>.partial/`` folder: say a SLURM job kept running after ``snakemake --unlock`` while
    the shard was submitted again.

    The holder writes its pid, host, SLURM job, working directory and start time into the lock file. Another
    job waits up to ``wait`` seconds (default: :func:`shard_lock_wait`) for it to finish, then stops with a
    DDBError naming it. The lock file is removed when the block ends; a job killed with SIGKILL leaves it,
    and the next job takes it over (the kernel released the lock). On a file system without locks the
    block runs unlocked, after a warning.
    """
    tar_path = Path(tar_path)
    lock_path = tar_path.with_name(f".{tar_path.name}.lock")
    wait = shard_lock_wait() if wait is None else wait
    deadline = time.monotonic() + wait
    waiting = False
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    cannot_lock = DDBError(lock_path, "cannot open or lock the shard's lock file (it belongs to another user)",
                           "if no job is writing this shard any more, delete the lock file and rerun")
    while True:
        try:
            fd = _lock_file(lock_path, cannot_lock, "two jobs on this shard")
            break
        except LockHeld as held:
            if time.monotonic() >= deadline:
                raise DDBError(tar_path, f"another job is writing this shard: {held.holder} (lock file "
                               f"{lock_path.name}; waited {wait:g} s)",
                               "let that job finish, or cancel it (scancel / kill), then rerun; a job that no "
                               "longer runs releases the lock by itself (on NFS within a few minutes). "
                               f"To wait longer, set {SHARD_LOCK_WAIT_VARIABLE}=<seconds>") from None
            if not waiting:
                print(f"{tar_path}: another job is writing this shard ({held.holder}); waiting up to {wait:g} s",
                      flush=True)
                waiting = True
            time.sleep(max(0.0, min(0.5, deadline - time.monotonic())))
    try:
        _write_holder(fd)
        yield
    finally:
        _release(lock_path, fd)


# results folder (as the lock file's real path) -> (lock file, descriptor) of the run lock this process holds
_run_locks: dict[str, tuple[Path, int]] = {}


def _results_in_use(lock_path: Path, holder: str) -> DDBError:
    return DDBError(lock_path, f"another snakemake run uses this results folder: {holder}",
                    "wait for it to end, or stop it (Ctrl-C, kill <pid>, scancel <SLURM job>), then rerun; two runs "
                    "on one results folder redo each other's jobs and delete files the other is reading. To run "
                    "both at once, give this one its own results folder (config key `results`)")


def take_run_lock(results: str | os.PathLike) -> Path:
    """Hold ``<results>/.ddb-run.lock`` until :func:`release_run_lock` (or this process ends), so one Snakemake
    run at a time works on a results folder, whichever checkout or working directory it runs from: Snakemake's
    own lock covers its working directory only. Returns the lock file.

    The lock file names the holder's pid, host, SLURM job, working directory and start time; a second run
    stops at once with a DDBError naming it. A lock file left by a run that ended without releasing it
    (``kill -9``) is taken over where this host can tell that run is gone: a lock nobody holds, left by a
    process of this host that no longer runs. One left by another host's run is refused with how to remove it,
    since with a file system whose locks are local to each host (NFS mounted ``nolock``) nothing tells here
    whether it still runs.
    """
    lock_path = run_lock_path(results)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(lock_path)
    if key in _run_locks:
        return lock_path
    cannot_lock = DDBError(lock_path, "cannot open or lock the results folder's run lock (it belongs to another "
                                      "user)",
                           "if no snakemake run uses this results folder any more, delete the lock file and rerun")

    def judge_left(text: str, locked: bool) -> None:
        holder = LockHolder.parse(text)
        if holder is None:  # empty: a run that ended while it was starting
            return
        if not holder.is_here():
            raise DDBError(lock_path, f"a snakemake run on host {holder.host} holds this results folder "
                           f"({holder.line()}); from host {socket.gethostname()} it cannot be told whether it "
                           "still runs",
                           f"if it no longer runs (on {holder.host}: `ps -p {holder.pid}`"
                           + (f"; `squeue -j {holder.slurm_job}`" if holder.slurm_job else "")
                           + f"), delete {lock_path} and rerun")
        if not locked and holder.is_running():
            raise _results_in_use(lock_path, holder.line())
        logging.getLogger("ddb").warning(f"{lock_path}: taking over the lock of a run that ended without "
                                         f"releasing it ({holder.line()})")

    try:
        fd = _lock_file(lock_path, cannot_lock, "two runs on this results folder", judge_left)
    except LockHeld as held:
        raise _results_in_use(lock_path, held.holder) from None
    _write_holder(fd)
    _run_locks[key] = (lock_path, fd)
    return lock_path


def release_run_lock(results: str | os.PathLike) -> None:
    """Remove and release the run lock this process holds on ``results`` (nothing if it holds none)."""
    held = _run_locks.pop(os.path.realpath(run_lock_path(results)), None)
    if held is not None:
        _release(*held)


@atexit.register
def _release_run_locks() -> None:
    """A run that stops on an exception (no onsuccess / onerror hook) leaves no lock file behind."""
    for lock_path, fd in list(_run_locks.values()):
        _release(lock_path, fd)
    _run_locks.clear()
