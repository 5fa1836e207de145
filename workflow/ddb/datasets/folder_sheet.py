"""``ddb sheet ROOT``: a sample sheet (format: table) from a folder tree ``ROOT/<label>/<spurious>/<image>``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DDBError
from ..storage.atomic import atomic_path
from .common import list_folder, list_images, list_subfolders
from .table import CLASS_NAME, SHEET_SEPARATORS

DEFAULT_NAME = "samples.csv"


def sheet_from_folders(root: Path) -> pd.DataFrame:
    """One row per image (image relative to ``root``, label, spurious), sorted by image path."""
    root = Path(root)
    if not root.is_dir():
        raise DDBError(root, "does not exist" if not root.exists() else "is no folder",
                       "give the folder holding <label>/<spurious>/<image> folders")
    labels = list_subfolders(root)
    if not labels:
        raise DDBError(root, "holds no label folder", "lay the images out as ROOT/<label>/<spurious>/<image>")
    rows = []
    for label in labels:
        if not pd.Series([label]).str.fullmatch(CLASS_NAME).iloc[0]:
            raise DDBError(root / label, f"the label folder {label!r} is no plain class name (class names become "
                           "folders and wildcards)", "rename it with letters, digits, '_' and '-' only")
        stray = sorted(name for name in list_folder(root / label) if not name.startswith("."))
        if stray:
            raise DDBError(root / label / stray[0], "a file directly in a label folder has no spurious value",
                           f"move it into a {label}/<spurious>/ folder")
        spurious_folders = list_subfolders(root / label)
        if not spurious_folders:
            raise DDBError(root / label, "holds no <spurious> folder", f"put its images in {label}/<spurious>/")
        for spurious in spurious_folders:
            for name in list_images(root / label / spurious, "spurious value"):
                rows.append({"image": f"{label}/{spurious}/{name}", "label": label, "spurious": spurious})
    if not rows:
        raise DDBError(root, "holds no image", "lay the images out as ROOT/<label>/<spurious>/<image>")
    return pd.DataFrame(rows).sort_values("image", kind="stable").reset_index(drop=True)


def write_sheet(table: pd.DataFrame, path: Path) -> None:
    """CSV, TSV or Parquet by the file's extension, written to a temporary name and renamed into place."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SHEET_SEPARATORS:
        raise DDBError(path, f"the extension {path.suffix!r} is not one of {sorted(SHEET_SEPARATORS)}",
                       "name the output .csv, .tsv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        if suffix == ".parquet":
            table.to_parquet(temporary, index=False)
        else:
            table.to_csv(temporary, sep=SHEET_SEPARATORS[suffix], index=False)
