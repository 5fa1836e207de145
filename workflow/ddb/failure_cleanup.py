"""What a failing job does after its error: clean up without hiding the error, and remove what it wrote.

A full disk fails a job once with a DDBError naming the file; everything that runs after it (closing a
checkpoint, writing the job's log, removing a temporary file) may hit the same full disk. Those second
failures say nothing new, so they are dropped: the user reads the one line, never an ``OSError`` that
replaced it. And a job that fails leaves nothing that looks finished: the files it drew are removed,
the files that were there before it are left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DDBError
from .storage.atomic import NO_SPACE, no_space_errno


def quietly(cleanup, *args, **kwargs) -> None:
    """Run one clean-up step of a job that is already failing: an OSError it raises (the same full disk
    again) is dropped, so the error being raised stays the one reported."""
    try:
        cleanup(*args, **kwargs)
    except OSError:
        pass


def as_ddb_error(error: BaseException, where: str | os.PathLike) -> DDBError | None:
    """A full disk or an exceeded quota behind ``error`` as one DDBError naming the file it hit (else
    ``where``); None for any other error."""
    if isinstance(error, DDBError) or (code := no_space_errno(error)) is None:
        return None
    cause = error
    while cause is not None and not (isinstance(cause, OSError) and cause.errno == code):
        cause = cause.__cause__ or cause.__context__
    problem, fix = NO_SPACE[code]
    return DDBError(getattr(cause, "filename", None) or where, problem, fix)


class JobFiles:
    """The files a job creates, removed if the job fails.

    :meth:`add` a path before writing it: only one that did not exist then is recorded, so a failure
    removes what this job wrote and never a file that was there before (a previous run's images). Folders
    the job created and left empty go too. Used as a context manager around the writing::

        with JobFiles() as written:
            written.add(path)
            write_png(image, path)

    Scopes nest: ``ddb.scripting.run_step`` opens one for the whole job, so files whose writing block
    succeeded are still removed when the job fails later (the demo's images, when its manifest cannot
    be written).
    """

    def __init__(self):
        self.files: list[Path] = []
        self.folders: list[Path] = []

    def add(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        if not path.exists():
            missing = []
            for folder in path.parents:
                if folder.exists():
                    break
                missing.append(folder)
            self.folders.extend(missing)
            self.files.append(path)
        return path

    def remove(self) -> None:
        for path in self.files:
            quietly(path.unlink, True)
        # the deepest first; a folder that holds a file from outside this job stays
        for folder in sorted(set(self.folders), key=lambda f: len(f.parts), reverse=True):
            quietly(folder.rmdir)
        self.files, self.folders = [], []

    def __enter__(self) -> "JobFiles":
        _OPEN.append(self)
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        _OPEN.remove(self)
        if kind is not None:
            self.remove()
        elif _OPEN:  # the enclosing scope (the job's) removes them if the job fails later
            _OPEN[-1].files.extend(self.files)
            _OPEN[-1].folders.extend(self.folders)
        return False


_OPEN: list[JobFiles] = []  # the scopes open now, the innermost last
