"""Any labelled image collection with a known spurious attribute, described by a sample sheet.

A dataset entry ``{format: table, root: DIR, table: FILE, object: NOUN}`` points at a CSV, TSV or Parquet
file (told apart by its extension; relative to ``root`` or absolute) with one row per image:

* ``image``: the image's path, relative to ``root`` or absolute;
* ``label``: its class name; the classes' order (the ``y`` index) is the entry's ``classes`` or the labels
  sorted;
* ``spurious``: the value of the spurious attribute (the group is ``<label>_<spurious>``);
* ``split`` (optional): ``train``, ``val`` or ``test``. Without it, ``table_split`` draws one, stratified by
  group and seeded by ``table_split.seed`` (independent of the global seed, like MetaShift's val draw);
* ``mask`` (optional): a binary mask of the causal object (``masking.masker: files``), relative to ``root``
  or absolute; an empty cell means no mask for that image.

Other columns are ignored. The sample id is the image's path under ``root`` without its extension, every
run of characters other than letters, digits, ``_`` and ``-`` becoming one ``_`` (``cats/sofa/001.jpg`` ->
``cats_sofa_001``). :func:`read_sheet` checks everything that the sheet alone can show; config loading
calls it (through :func:`sheet_summary`) so that a bad sheet stops the run before any job, and
``check_root`` adds what needs the file system (the images and masks exist).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DDBError
from .common import (QUOTED, did_you_mean, group_names, list_folder, open_images, quote_some, read_csv, safe_id,
                     strip_suffix)
from .manifest import SPLITS
from .roots import DOCS

SHEET_SEPARATORS = {".csv": ",", ".tsv": "\t", ".parquet": None}
REQUIRED_COLUMNS = ("image", "label", "spurious")
OPTIONAL_COLUMNS = ("split", "mask")
SECTION = "Your own dataset (a sample sheet)"
# A drawn split needs one image of a group in each of train, val and test.
SMALLEST_DRAWN_GROUP = len(SPLITS)
CLASS_NAME = r"[A-Za-z0-9_-]+"


@dataclass
class Sheet:
    """A checked sample sheet: ``rows`` has image, label, spurious, split, mask (or None) and position
    (the row's place in the file as an error message names it); ``classes`` in ``y`` order."""

    path: Path
    rows: pd.DataFrame
    classes: list[str]
    drawn_split: bool


def sheet_path(cfg: dict, workdir: Path) -> Path:
    """The sheet on disk: ``table`` under the root, or as written when absolute."""
    return Path(workdir) / cfg["root"] / cfg["table"]


def _fix(text: str) -> str:
    return f"{text}; see {DOCS}, \"{SECTION}\""


def _position(path: Path, index: int) -> str:
    """How an error names data row ``index`` (0-based): the line of a text file (under its header), the row
    of a Parquet file (0-based, as pandas and pyarrow count)."""
    return f"row {index}" if path.suffix.lower() == ".parquet" else f"line {index + 2}"


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in SHEET_SEPARATORS:
        raise DDBError(path, f"the sample sheet's extension {path.suffix!r} is not one of "
                       f"{sorted(SHEET_SEPARATORS)}", _fix("save it as CSV, TSV or Parquet with that extension"))
    if not path.is_file():
        raise DDBError(path, "the sample sheet does not exist" if not path.exists() else "the sample sheet is no file",
                       _fix("set the dataset's `table` to the sheet's path (relative to `root`, or absolute); "
                            "`ddb sheet ROOT` writes one from ROOT/<label>/<spurious>/<image> folders"))
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise DDBError(path, f"cannot read the Parquet file ({error})",
                           "write the sheet again (pandas: DataFrame.to_parquet)") from error
    else:
        frame = read_csv(path, sep=SHEET_SEPARATORS[suffix], dtype=str, keep_default_na=False)
    frame.columns = [str(column).strip() for column in frame.columns]
    return frame


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    """The column as stripped text, empty cells (NaN, None, blank) as ''."""
    values = frame[column]
    return values.where(values.notna(), "").astype(str).str.strip()


def _require_filled(values: pd.Series, column: str, path: Path) -> None:
    empty = np.flatnonzero((values == "").to_numpy())
    if len(empty):
        raise DDBError(path, f"column {column!r}, {_position(path, int(empty[0]))}: empty value ({len(empty)} "
                       "empty in all)", _fix("fill it in or remove the row"))


def read_sheet(cfg: dict, workdir: Path = Path(".")) -> Sheet:
    """The sample sheet of entry ``cfg``, checked: its columns, values, classes, duplicates and splits (the
    given ones: every training group in val and test; none given: every group large enough to be drawn)."""
    path = sheet_path(cfg, workdir)
    frame = _read(path)
    columns = list(frame.columns)
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            raise DDBError(path, f"no column {name!r}{did_you_mean(name, columns)}; the sheet has columns {columns}",
                           _fix(f"add the column {name!r} (required: {', '.join(REQUIRED_COLUMNS)}; optional: "
                                f"{', '.join(OPTIONAL_COLUMNS)})"))
    if frame.empty:
        raise DDBError(path, "the sample sheet has no row", _fix("list one image per row"))
    rows = pd.DataFrame({name: _text(frame, name) for name in REQUIRED_COLUMNS})
    for name in REQUIRED_COLUMNS:
        _require_filled(rows[name], name, path)
    rows["position"] = [_position(path, index) for index in range(len(rows))]

    duplicated = np.flatnonzero(rows["image"].duplicated(keep=False).to_numpy())
    if len(duplicated):
        shown = ", ".join(f"{rows['image'].iloc[i]!r} ({rows['position'].iloc[i]})" for i in duplicated[:QUOTED])
        raise DDBError(path, f"column 'image': {rows['image'].iloc[duplicated].nunique()} image(s) listed more than "
                       f"once: {shown}", _fix("list every image once; remove the duplicate rows"))

    bad_names = np.flatnonzero(~rows["label"].str.fullmatch(CLASS_NAME).to_numpy())
    if len(bad_names):
        first = int(bad_names[0])
        raise DDBError(path, f"column 'label', {rows['position'].iloc[first]}: {rows['label'].iloc[first]!r} is no "
                       "plain class name (class names become folders and wildcards)",
                       _fix("use letters, digits, '_' and '-' only, e.g. 'water_bird'"))
    classes = _classes(rows, cfg.get("classes"), path)

    if "split" in frame.columns:
        rows["split"] = _text(frame, "split").str.lower()
        unknown = np.flatnonzero(~rows["split"].isin(SPLITS).to_numpy())
        if len(unknown):
            first = int(unknown[0])
            value = _text(frame, "split").iloc[first]
            raise DDBError(path, f"column 'split', {rows['position'].iloc[first]}: {value!r} is not one of "
                           f"{list(SPLITS)} ({len(unknown)} such row(s))",
                           _fix("write train, val or test in every row, or drop the column to have the split drawn "
                                "(table_split)"))
    else:
        rows["split"] = None
    if "mask" in frame.columns:
        masks = _text(frame, "mask")
        rows["mask"] = masks.where(masks != "", None)
    else:
        rows["mask"] = None
    rows["group"] = group_names(rows["label"], rows["spurious"])
    sheet = Sheet(path, rows, classes, drawn_split="split" not in frame.columns)
    if sheet.drawn_split:
        _check_drawable(sheet)
    else:
        _check_groups_reach(sheet, ("val", "test"))
    return sheet


def _classes(rows: pd.DataFrame, given: list[str] | None, path: Path) -> list[str]:
    labels = sorted(rows["label"].unique())
    if given is None:
        if len(labels) < 2:
            raise DDBError(path, f"column 'label': every row has the one class {labels[0]!r}; DDB needs two "
                           "classes or more", _fix("add the images of the other class(es)"))
        return labels
    given = list(given)
    unknown = np.flatnonzero(~rows["label"].isin(given).to_numpy())
    if len(unknown):
        first = int(unknown[0])
        label = rows["label"].iloc[first]
        raise DDBError(path, f"column 'label', {rows['position'].iloc[first]}: {label!r} is not one of the entry's "
                       f"classes {given}{did_you_mean(label, given)}",
                       _fix("add it to the dataset's `classes`, or remove the key to take the sheet's labels"))
    absent = [name for name in given if name not in labels]
    if absent:
        raise DDBError(path, f"column 'label': class(es) {absent} of the entry's `classes` have no row (the sheet's "
                       f"labels: {labels})", _fix("add their images, or remove them from `classes`"))
    return given


def split_sizes(count: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) sizes of a drawn group of ``count`` images: round(fraction x count), halves up, at
    least one in each split (a group of fewer than three images cannot be drawn)."""
    n_val = max(int(np.floor(val_fraction * count + 0.5)), 1)
    n_test = max(int(np.floor(test_fraction * count + 0.5)), 1)
    while n_val + n_test > count - 1:  # training keeps one image: shrink the larger held-out share
        if n_val >= n_test and n_val > 1:
            n_val -= 1
        elif n_test > 1:
            n_test -= 1
        else:
            break
    return count - n_val - n_test, n_val, n_test


def _check_drawable(sheet: Sheet) -> None:
    sizes = sheet.rows.groupby("group").size()
    small = sizes[sizes < SMALLEST_DRAWN_GROUP]
    if len(small):
        shown = ", ".join(f"{group!r} ({count} image{'s' if count > 1 else ''})" for group, count in small.items())
        raise DDBError(sheet.path, f"column 'spurious': {len(small)} group(s) are too small to reach train, val and "
                       f"test when the split is drawn: {shown}",
                       _fix(f"give every (label, spurious) group {SMALLEST_DRAWN_GROUP} images or more, or add a "
                            "`split` column"))


def _check_groups_reach(sheet: Sheet, splits: tuple[str, ...]) -> None:
    """Every training group in each of ``splits``: one missing would drop out of worst-group accuracy."""
    counts = pd.crosstab(sheet.rows["group"], sheet.rows["split"])
    training = counts.index[counts["train"] > 0] if "train" in counts else []
    for split in splits:
        missing = [group for group in training if split not in counts or counts.loc[group, split] == 0]
        if missing:
            raise DDBError(sheet.path, f"column 'split': {len(missing)} training group(s) have no {split} image: "
                           f"{quote_some(missing)}; worst-group accuracy would leave them out",
                           _fix(f"mark some of their images `{split}`, or drop the `split` column to have a "
                                "stratified split drawn"))


def group_split_counts(cfg: dict, workdir: Path = Path(".")) -> pd.DataFrame:
    """Images per (label, spurious) group (columns label, spurious, train, val, test): the given split, or the
    drawn one's sizes. Checks the sheet (:func:`read_sheet`); read once per sheet version and settings, as
    config loading, runtime estimates and shard counts all ask for it."""
    path = sheet_path(cfg, workdir)
    stamp = (path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else None
    options = cfg.get("table_split") or {}
    return _group_split_counts(str(workdir), cfg["root"], cfg["table"], tuple(cfg.get("classes") or ()), stamp,
                               options.get("val_fraction"), options.get("test_fraction")).copy()


@lru_cache(maxsize=16)
def _group_split_counts(workdir: str, root: str, table: str, classes: tuple, stamp: tuple | None,
                        val_fraction: float | None, test_fraction: float | None) -> pd.DataFrame:
    sheet = read_sheet({"root": root, "table": table, "classes": list(classes) or None}, Path(workdir))
    rows = sheet.rows
    if sheet.drawn_split:
        sizes = rows.groupby(["label", "spurious"]).size()
        counts = pd.DataFrame([split_sizes(int(n), val_fraction, test_fraction) for n in sizes], index=sizes.index,
                              columns=list(SPLITS))
    else:
        counts = pd.crosstab([rows["label"], rows["spurious"]], rows["split"]).reindex(columns=list(SPLITS),
                                                                                          fill_value=0)
        counts.columns.name = None
    counts = counts.reset_index()
    counts.attrs["classes"] = sheet.classes
    return counts


def sheet_summary(cfg: dict, workdir: Path = Path(".")) -> tuple[list[str], pd.DataFrame]:
    """The classes (``y`` order) and the training images per group (columns label, spurious, count), for
    config loading: the class names and the minority groups' default come from the sheet."""
    counts = group_split_counts(cfg, workdir)
    return list(counts.attrs["classes"]), counts[["label", "spurious", "train"]].rename(columns={"train": "count"})


def check_dfr_validation(cfg: dict, workdir: Path = Path(".")) -> None:
    """The DFR baseline fits on one half of val and scores the other: every group with validation images
    needs two (found here, before any job, rather than by the dfr job after ERM)."""
    counts = group_split_counts(cfg, workdir)
    small = counts[(counts["val"] > 0) & (counts["val"] < 2)]
    if len(small):
        groups = quote_some(small["label"] + "_" + small["spurious"])
        drawn = "split" not in read_header(sheet_path(cfg, workdir))
        raise DDBError(sheet_path(cfg, workdir), f"{len(small)} group(s) have one validation image: {groups}; the DFR "
                       "baseline needs two a group (one in each half of val)",
                       _fix(("raise table_split.val_fraction or give those groups more images" if drawn
                             else "mark a second image of each such group `val`") + ", or set `dfr: false`"))


def read_header(path: Path) -> list[str]:
    """The sheet's column names, nothing else read."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return [str(c).strip() for c in read_csv(path, sep=SHEET_SEPARATORS[path.suffix.lower()], nrows=0).columns]


def split_counts(cfg: dict, workdir: Path = Path(".")) -> dict[str, int]:
    """Images of each split: what runtime estimates count (ddb.sizing)."""
    counts = group_split_counts(cfg, workdir)
    return {split: int(counts[split].sum()) for split in SPLITS}


def training_sources(cfg: dict, class_name: str, *, leave_out: str | None = None) -> int:
    """Training images of ``class_name`` (without its group of spurious value ``leave_out``): the sources
    generation can redraw, for shard counts (ddb.sharding). With ``class_balance: subsample`` every class
    keeps at most the smallest class's count."""
    counts = group_split_counts(cfg)
    train = counts[counts["label"] == class_name]
    sources = int(train.loc[train["spurious"] != leave_out, "train"].sum())
    if cfg.get("class_balance") == "subsample":
        sources = min(sources, int(counts.groupby("label")["train"].sum().min()))
    return sources


def smallest_training_groups(classes: list[str], training: pd.DataFrame) -> dict[str, str | None]:
    """{class: spurious value of its smallest training group} (ties to the first value in sorted order);
    None for a class without training images."""
    smallest = {}
    for name in classes:
        groups = training[(training["label"] == name) & (training["count"] > 0)].sort_values(
            ["count", "spurious"], kind="stable")
        smallest[name] = groups["spurious"].iloc[0] if len(groups) else None
    return smallest


def draw_split(rows: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """The split of each row, stratified by group: each group's rows sorted by image path (so the sheet's row
    order does not matter), permuted by a generator seeded by (seed, group); the first ``val`` of them go to
    val, the next ``test`` to test (sizes from :func:`split_sizes`), the rest to train."""
    from ..seeding import numpy_rng  # imports torch: only building the manifest needs it

    split = np.full(len(rows), "train", dtype=object)
    frame = pd.DataFrame({"group": rows["group"].to_numpy(), "key": rows["image"].to_numpy(),
                          "position": np.arange(len(rows))})
    for group, members in frame.sort_values(["group", "key"], kind="stable").groupby("group", sort=True):
        _, n_val, n_test = split_sizes(len(members), val_fraction, test_fraction)
        order = members["position"].to_numpy()[numpy_rng(seed, "table_split", group).permutation(len(members))]
        split[order[:n_val]] = "val"
        split[order[n_val:n_val + n_test]] = "test"
    return split


def _manifest_path(cfg: dict, relative: pd.Series) -> pd.Series:
    """A sheet path as the manifest spells it: joined to the root as the config writes it (so relative to the
    working directory, like the other adapters'), or as written when absolute."""
    root = cfg["root"]
    return relative.map(lambda value: value if os.path.isabs(value) else os.path.normpath(os.path.join(root, value)))


def _on_disk(cfg: dict, workdir: Path, paths: pd.Series) -> pd.Series:
    return paths.map(lambda value: value if os.path.isabs(value) else str(Path(workdir) / value))


def _require_present(cfg: dict, workdir: Path, sheet: Sheet, column: str) -> None:
    """Every file the column names exists: each folder listed once, no file opened."""
    values = sheet.rows[column] if column == "image" else sheet.rows[column].dropna()
    on_disk = _on_disk(cfg, workdir, _manifest_path(cfg, values))
    folders = on_disk.map(lambda value: os.path.dirname(value))
    listings = {folder: list_folder(Path(folder)) for folder in folders.unique()}
    present = np.array([os.path.basename(path) in listings[folder] for path, folder in zip(on_disk, folders)],
                       dtype=bool)
    if not present.all():
        missing = values[~present]
        first = sheet.rows.loc[missing.index[0], "position"]
        what = "image" if column == "image" else "mask"
        raise DDBError(sheet.path, f"column {column!r}: {len(missing)} {what}(s) listed do not exist (under root "
                       f"{cfg['root']}), the first at {first}: {quote_some(missing)}",
                       _fix("restore the files, or correct the paths (relative to `root`, or absolute)"))


def check_root(cfg: dict, workdir: Path) -> None:
    """Before anything is planned: the root, the sheet and every image and mask it lists exist."""
    root = Path(workdir) / cfg["root"]
    if not root.is_dir():
        raise DDBError(root, "the dataset root does not exist" if not root.exists() else "the dataset root is no "
                       "folder", _fix("set `root` to the folder the sheet's image paths start from"))
    sheet = read_sheet(cfg, workdir)
    _require_present(cfg, workdir, sheet, "image")
    _require_present(cfg, workdir, sheet, "mask")


def source_paths(cfg: dict, workdir: Path) -> list[Path]:
    """What the manifest is built from: the sheet, and the folders of its images and masks (a folder's time
    changes when files are added, removed or replaced in it)."""
    sheet = read_sheet(cfg, workdir)
    files = pd.concat([sheet.rows["image"], sheet.rows["mask"].dropna()])
    folders = _on_disk(cfg, workdir, _manifest_path(cfg, files)).map(os.path.dirname).unique()
    return [sheet.path, *(Path(folder) for folder in sorted(folders))]


def sample_ids(cfg: dict, images: pd.Series, workdir: Path = Path(".")) -> pd.Series:
    """Each image's path under the root without its extension, made safe (``cats/sofa/001.jpg`` ->
    ``cats_sofa_001``); an absolute path outside the root keeps its whole path."""
    root = os.path.abspath(Path(workdir) / cfg["root"])

    def under_root(value: str) -> str:
        if not os.path.isabs(value):
            return os.path.normpath(value)
        relative = os.path.relpath(value, root)
        return value if relative.startswith("..") else relative

    return safe_id(strip_suffix(images.map(under_root))).str.strip("_")


def build_manifest(cfg: dict, *, seed: int, workdir: Path) -> pd.DataFrame:
    """One row per sheet row; the split as given, or drawn by ``table_split`` (``seed`` unused: the data are
    the same for every seed of a run)."""
    check_root(cfg, workdir)
    sheet = read_sheet(cfg, workdir)
    rows = sheet.rows
    ids = sample_ids(cfg, rows["image"], workdir)
    clash = np.flatnonzero(ids.duplicated(keep=False).to_numpy())
    if len(clash):
        shown = ", ".join(f"{rows['image'].iloc[i]!r} ({rows['position'].iloc[i]})" for i in clash[:4])
        raise DDBError(sheet.path, f"column 'image': images share a sample id (the same path up to the extension "
                       f"or punctuation): {shown}", _fix("rename or remove one of each pair"))
    if sheet.drawn_split:
        options = cfg["table_split"]
        split = draw_split(rows, options["val_fraction"], options["test_fraction"], options["seed"])
    else:
        split = rows["split"].to_numpy()
    manifest = pd.DataFrame({
        "sample_id": ids,
        "path": _manifest_path(cfg, rows["image"]),
        "split": split,
        "y": rows["label"].map({name: y for y, name in enumerate(sheet.classes)}).astype("int64"),
        "class_name": rows["label"],
        "spurious": rows["spurious"],
        "group": rows["group"],
    })
    if rows["mask"].notna().any():
        manifest["mask_path"] = _manifest_path(cfg, rows["mask"].fillna("")).where(rows["mask"].notna(), None)
    if cfg["check_images"]:
        open_images(manifest["path"], workdir)
    return manifest
