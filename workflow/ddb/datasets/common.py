"""Checks and helpers shared by the adapters of the paper's datasets (Waterbirds, CelebA, MetaShift, ImageNet).

Every problem with the user's files becomes one :class:`~ddb.errors.DDBError` that names the file,
the field or row, and the fix. Image existence is checked by listing each image folder once
(``os.scandir``) and comparing names, never by opening or stat-ing every file: CelebA's 202,599 images
then cost one directory listing. Images are opened only when the config asks (``check_images``).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from ..errors import DDBError
from .manifest import group_name

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Files that operating systems and archivers drop into folders; never images, never worth an error.
IGNORED_FILES = {"Thumbs.db", "desktop.ini"}
SPLIT_NAMES = ("train", "val", "test")
# How many offending values an error message quotes before it only counts the rest.
QUOTED = 5


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'Blond_Hair'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def quote_some(values: Iterable) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:QUOTED])
    return shown + (f" and {len(values) - QUOTED} more" if len(values) > QUOTED else "")


def dataset_root(cfg: dict, workdir: Path, fmt: str, expected: str) -> Path:
    """The root folder on disk (relative roots are relative to ``workdir``), checked to exist."""
    root = Path(workdir) / cfg["root"]
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise DDBError(f"config: root of the {fmt} dataset ({cfg['root']})", f"the dataset root {problem}",
                       f"download the dataset and set `root` to the folder that holds {expected}")
    return root


def manifest_path_prefix(cfg: dict, workdir: Path, folder: Path) -> str:
    """How manifest paths spell ``folder``: under the root exactly as the config writes it.

    Paths are then relative to ``workdir`` like the root itself (the synthetic adapter's convention),
    so a manifest written with ``workdir='.'`` holds paths readable from the working directory.
    """
    relative = os.path.relpath(folder, Path(workdir) / cfg["root"])
    return os.path.normpath(os.path.join(cfg["root"], relative))


def find_file(folders: Iterable[Path], names: Iterable[str]) -> Path | None:
    """The first of ``names`` that exists in the first folder holding one, else None."""
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def read_csv(path: Path, **options) -> pd.DataFrame:
    """``pandas.read_csv`` whose parse errors name the file and say how to fix it."""
    try:
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError as error:
        raise DDBError(path, "the file is empty", "re-extract it from the dataset's archive") from error
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DDBError(path, f"cannot parse the table ({error})",
                       "re-extract the file from the dataset's archive; an edited copy must keep one "
                       "row per image and the published columns") from error
    except ValueError as error:  # e.g. a value that does not fit the requested dtype
        raise DDBError(path, f"cannot read the table ({error})", "re-extract it from the dataset's archive") from error


def require_columns(columns: Iterable[str], required: Iterable[str], path: Path, fix: str | None = None) -> None:
    """Raise for the first required column the file lacks, suggesting its closest actual column."""
    columns = [str(c) for c in columns]
    for name in required:
        if name not in columns:
            raise DDBError(path, f"no column {name!r}{did_you_mean(name, columns)}; the file has columns {columns}",
                           fix or f"rename the column to {name!r} (the published layout's header)")


def require_filled(frame: pd.DataFrame, column: str, path: Path, *, first_line: int) -> None:
    """Raise naming the first line whose ``column`` is empty."""
    empty = (frame[column].isna() | (frame[column].astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        first = int(np.flatnonzero(empty)[0])
        raise DDBError(path, f"column {column!r}, line {first_line + first}: empty value "
                       f"({int(empty.sum())} empty in all)", "fill it in or remove the row")


def coded_column(frame: pd.DataFrame, column: str, codes: dict[int, str], path: Path, *,
                 id_column: str, first_line: int, fix: str, words: dict[str, int] | None = None) -> np.ndarray:
    """The integer codes of ``frame[column]``, each one of ``codes``; else a DDBError naming the line.

    ``first_line`` is the line of the file that holds the first data row (2 under a one-line header).
    ``words`` optionally accepts names for the codes (``{"train": 0}``), matched case-insensitively.
    Empty cells and other text are errors too.
    """
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    if words:
        named = raw.astype(str).str.strip().str.lower().map(words)
        values = values.where(named.isna(), named)
    valid = values.isin(list(codes)).to_numpy()
    if not valid.all():
        bad = np.flatnonzero(~valid)
        first = int(bad[0])
        value = raw.iloc[first]
        # numbers as the file spells them (3), text quoted ('water') so blanks and typos show
        shown = "an empty value" if pd.isna(value) else repr(value) if isinstance(value, str) else str(value)
        allowed = ", ".join(f"{code} ({meaning})" for code, meaning in codes.items())
        more = f"; {len(bad) - 1} more row(s) are out of range too" if len(bad) > 1 else ""
        raise DDBError(path, f"column {column!r}, line {first_line + first} ({id_column} "
                       f"{frame[id_column].iloc[first]!r}): {shown} is not one of {allowed}{more}", fix)
    return values.to_numpy().astype(np.int64)


def require_unique(ids: pd.Series, path: Path, column: str, *, first_line: int) -> None:
    """Raise naming the duplicated ids of ``column`` and the lines that hold them."""
    duplicated = ids.duplicated(keep=False).to_numpy()
    if duplicated.any():
        positions = np.flatnonzero(duplicated)
        values = ids.iloc[positions]
        shown = values.iloc[:QUOTED]
        lines = ", ".join(f"{value!r} (line {first_line + int(position)})"
                          for value, position in zip(shown, positions[:QUOTED]))
        raise DDBError(path, f"duplicated {column}: {lines}; {values.nunique()} id(s) listed more than once",
                       "every image must be listed once; remove the duplicate rows (re-extract the file "
                       "from the dataset's archive if you did not edit it)")


def list_folder(folder: Path) -> set[str]:
    """Names of the files in ``folder`` (one ``os.scandir``, no stat per file); empty if it is absent."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if not entry.is_dir()}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def list_subfolders(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder``; empty if it is absent."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def present_files(folder: Path, relative: pd.Series) -> np.ndarray:
    """Whether each ``folder/relative`` file exists, listing every sub-folder named in ``relative`` once."""
    names = pa.array(relative.astype(str), type=pa.string())
    if pc.any(pc.match_substring(names, "/")).as_py():
        subfolders = relative.astype(str).str.rpartition("/")[0].unique()
        existing = [f"{sub}/{name}" if sub else name for sub in subfolders for name in list_folder(folder / sub)]
    else:  # one flat folder (CelebA's 202,599 files): no per-row path splitting
        existing = list(list_folder(folder))
    # pyarrow's hash lookup: a Python-level set lookup per row costs ~1 s at CelebA scale
    return pc.is_in(names, value_set=pa.array(existing, type=pa.string())).to_numpy(zero_copy_only=False)


def require_listed_images_present(folder: Path, relative: pd.Series, listing: Path, what: str = "image") -> None:
    """Raise when files listed in ``listing`` are absent from ``folder`` (names compared, none opened)."""
    present = present_files(folder, relative)
    if not present.all():
        missing = relative[~present]
        raise DDBError(listing, f"{len(missing)} {what}(s) listed here are not in {folder}: "
                       f"{quote_some(missing)}",
                       f"restore the missing files (re-extract the dataset's archive into {folder}), "
                       "or point `root` at the complete copy")


def open_images(paths: Iterable[str | Path], workdir: Path) -> None:
    """Decode every image fully (``load``, which catches truncation; ``verify`` does not for JPEG)."""
    for path in paths:
        try:
            with Image.open(Path(workdir) / path) as image:
                image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DDBError(path, f"the image cannot be read ({error})",
                           "replace it with an intact copy from the dataset's archive; `check_images: "
                           "false` skips this check (the image then fails later, when it is read)") from error


def list_images(folder: Path, listing_of: str) -> list[str]:
    """Sorted names of the images in ``folder``; any other visible file is an error, never a silent skip."""
    names = sorted(name for name in list_folder(folder) if not name.startswith(".") and name not in IGNORED_FILES)
    others = [name for name in names if Path(name).suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise DDBError(folder / others[0], f"not an image ({len(others)} such file(s) in this {listing_of} folder: "
                       f"{quote_some(others)})",
                       f"move non-image files out of the dataset; images end in {sorted(IMAGE_SUFFIXES)}")
    return names


def safe_id(text: pd.Series) -> pd.Series:
    """Sample ids as the manifest requires (letters, digits, ``_``, ``-``: they name files in image
    shards): every run of other characters, dots included, becomes one ``_``."""
    return text.astype(str).str.replace(r"[^A-Za-z0-9_-]+", "_", regex=True)


def strip_suffix(names: pd.Series) -> pd.Series:
    return names.astype(str).str.replace(r"\.[^./]*$", "", regex=True)


def group_names(class_names: pd.Series, spurious: pd.Series) -> pd.Series:
    """``group_name`` for every row, called once per distinct (class, spurious) pair."""
    class_codes, class_values = pd.factorize(class_names)
    spurious_codes, spurious_values = pd.factorize(spurious)
    names = np.array([group_name(c, s) for c in class_values for s in spurious_values], dtype=object)
    return pd.Series(names[class_codes * len(spurious_values) + spurious_codes], index=class_names.index, dtype=str)


def stratified_val(groups: pd.Series, order_key: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask choosing ``fraction`` of each group, seeded and independent of row order.

    Each group's rows are sorted by ``order_key`` (file listings come in arbitrary order) and a
    permutation seeded by (seed, group) picks round(fraction * n) of them (halves up); a group of two or more rows
    always keeps at least one row on each side, so every group is scored on both splits.
    """
    from ..seeding import numpy_rng  # imports torch; only the adapters that split need it

    chosen = np.zeros(len(groups), dtype=bool)
    frame = pd.DataFrame({"group": groups.to_numpy(), "key": order_key.to_numpy(),
                          "position": np.arange(len(groups))})
    for group, rows in frame.sort_values(["group", "key"], kind="stable").groupby("group", sort=True):
        n = len(rows)
        n_val = int(np.floor(fraction * n + 0.5))
        if n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        picked = numpy_rng(seed, "val_split", group).permutation(n)[:n_val]
        chosen[rows["position"].to_numpy()[picked]] = True
    return chosen


def train_test_split_val(count: int, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask choosing val among ``count`` rows as the authors' MetaShift loader does:
    ``train_test_split(np.arange(count), test_size=1 - fraction, random_state=seed)``'s first part
    (unstratified, so each group's share of val is left to the draw)."""
    from sklearn.model_selection import train_test_split

    chosen = np.zeros(count, dtype=bool)
    val_rows, _ = train_test_split(np.arange(count), test_size=1 - fraction, random_state=seed)
    chosen[val_rows] = True
    return chosen


def folder_manifest(table: pd.DataFrame, sample_ids: pd.Series, paths: pd.Series, *, val_from: str, options: dict,
                    where: Path, check_images: bool, workdir: Path) -> pd.DataFrame:
    """The shared end of the folder-layout adapters (MetaShift, ImageNet): refuse ids that clash, move
    ``options["val_fraction"]`` of split ``val_from`` to val (seeded by ``options["val_seed"]``: stratified
    per group, or with ``options["val_split"]`` ``train_test_split`` as :func:`train_test_split_val`), and
    build the manifest.

    ``table`` has columns split, y, class_name, spurious (one row per image, in listing order).
    """
    duplicated = sample_ids.duplicated(keep=False)
    if duplicated.any():
        clash = paths[duplicated].head(4).tolist()
        raise DDBError(where, f"files share a sample id (same name up to the extension or punctuation): {clash}",
                       "rename or remove one of each pair")
    group = group_names(table["class_name"], table["spurious"])
    source = (table["split"] == val_from).to_numpy()
    to_val = np.zeros(len(table), dtype=bool)
    if options.get("val_split", "stratified") == "train_test_split":
        # the rows in class order, then group, then sample id (the authors': cat(shelf)'s files, then dog(shelf)'s)
        rows = np.flatnonzero(source)
        order = pd.DataFrame({"y": table["y"].to_numpy()[rows], "group": group.to_numpy()[rows],
                              "key": sample_ids.to_numpy()[rows]}).sort_values(["y", "group", "key"], kind="stable")
        to_val[rows[order.index.to_numpy()]] = train_test_split_val(len(rows), options["val_fraction"],
                                                                    options["val_seed"])
    else:
        to_val[source] = stratified_val(group[source], sample_ids[source], options["val_fraction"],
                                        options["val_seed"])
    manifest = pd.DataFrame({
        "sample_id": sample_ids,
        "path": paths,
        "split": np.where(to_val, "val", table["split"].to_numpy()),
        "y": table["y"].astype("int64"),
        "class_name": table["class_name"],
        "spurious": table["spurious"],
        "group": group,
    })
    if check_images:
        open_images(manifest["path"], workdir)
    return manifest
