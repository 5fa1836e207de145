"""Reading artifacts back: a missing, unreadable or damaged one is one DDBError naming the file and the
rule that remakes it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..errors import DDBError
from .remake import remake_hint


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

