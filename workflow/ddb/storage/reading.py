"""Reading artifacts back: a missing, unreadable or damaged one is one DDBError naming the file, what is
wrong and the rule that remakes it (:func:`.remake.remake_hint`). Every artifact the package reads goes
through here: tables (Parquet, CSV), JSON records, model checkpoints, learned tokens and PNGs. torch is
imported only to load a checkpoint, so ``ddb inspect`` stays torch-free."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..errors import DDBError
from .remake import remake_hint


def read_parquet(path: str | os.PathLike, columns: Iterable[str] | None = None) -> pd.DataFrame:
    path = _existing(path, "the table")
    import pyarrow

    try:
        frame = pd.read_parquet(path)
    except PermissionError as error:
        raise _denied(path, "the table") from error
    except (pyarrow.ArrowException, OSError, ValueError) as error:  # truncated or corrupt (ArrowInvalid, OSError)
        raise DDBError(path, f"not a readable Parquet table, truncated or corrupt ({error})",
                       remake_hint(path)) from error
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DDBError(path, f"missing column(s) {missing}; found {list(frame.columns)}",
                           "regenerate it with this version of ddb-workflow")
    return frame



def _existing(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DDBError(path, f"{what} does not exist", "run the step that makes it (snakemake makes it for you)")
    return path


def _denied(path: Path, what: str) -> DDBError:
    return DDBError(path, f"{what} cannot be read: permission denied",
                    "ask its owner to make it readable (chmod g+r), or rerun into your own results/")


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV artifact (the report's tables)."""
    path = _existing(path, "the table")
    try:
        return pd.read_csv(path)
    except PermissionError as error:
        raise _denied(path, "the table") from error
    except (OSError, ValueError, UnicodeDecodeError) as error:  # ParserError and EmptyDataError are ValueErrors
        raise DDBError(path, f"not a readable CSV table, truncated or corrupt ({error})",
                       remake_hint(path)) from error


def read_json(path: str | os.PathLike, what: str = "the record"):
    """A JSON artifact (eval.json, selected.json, summary.json), parsed."""
    path = _existing(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except PermissionError as error:
        raise _denied(path, what) from error
    except (OSError, UnicodeDecodeError) as error:
        raise DDBError(path, f"{what} cannot be read ({error})", remake_hint(path)) from error
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError: cut short by a full disk, or edited by hand
        raise DDBError(path, f"not readable JSON, truncated or corrupt ({error})", remake_hint(path)) from error


# what torch.load raises for a file that is cut short or not a checkpoint at all (a truncated zip archive
# is a RuntimeError of its stream reader)
_CHECKPOINT_ERRORS = (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile,
                      pickle.UnpicklingError)


def load_checkpoint(path: str | os.PathLike, map_location="cpu"):
    """A checkpoint written with ``torch.save`` (a model, a training state), loaded with
    ``weights_only=True``: tensors and plain containers only, never code from the file.

    A file that pickles other objects is refused with torch's own ``pickle.UnpicklingError`` (the caller
    says what to do about a user's file, :func:`ddb.models.classifier.load_state_dict_file`); a file that
    is missing, cut short or corrupt is one DDBError naming it and the rule that remakes it.
    """
    path = _existing(path, "the checkpoint")
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as error:
        raise _denied(path, "the checkpoint") from error
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():  # a whole pickled object: readable, but refused
            raise
        raise _damaged_checkpoint(path, error) from error
    except _CHECKPOINT_ERRORS as error:
        raise _damaged_checkpoint(path, error) from error


def _damaged_checkpoint(path: Path, error: BaseException) -> DDBError:
    reason = " ".join(str(error).split())[:200]
    return DDBError(path, f"not a readable checkpoint, truncated or corrupt ({type(error).__name__}: {reason})",
                    remake_hint(path))


def safetensors_keys(path: str | os.PathLike) -> list[str]:
    """The tensor names of a safetensors artifact (a learned token), after checking that the file holds
    every byte its header names, so a truncated one fails here rather than inside the library that loads it."""
    from safetensors import SafetensorError, safe_open

    path = _existing(path, "the tensors")
    try:
        with safe_open(str(path), framework="np") as tensors:
            return list(tensors.keys())
    except PermissionError as error:
        raise _denied(path, "the tensors") from error
    except (SafetensorError, OSError, ValueError) as error:
        raise DDBError(path, f"not a readable safetensors file, truncated or corrupt ({error})",
                       remake_hint(path)) from error


def read_png(path: str | os.PathLike, mode: str | None = None):
    """A PNG artifact (a report figure), decoded fully so a truncated file fails here; ``mode`` converts it."""
    from PIL import Image

    from .images import IMAGE_ERRORS

    path = _existing(path, "the image")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode) if mode else image.copy()
    except PermissionError as error:
        raise _denied(path, "the image") from error
    except IMAGE_ERRORS as error:
        raise DDBError(path, f"not a readable PNG, truncated or corrupt ({error})", remake_hint(path)) from error
