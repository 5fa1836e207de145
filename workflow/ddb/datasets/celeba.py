"""CelebA (Liu et al.) in the three layouts users have, detected automatically.

1. **Published** (the official release, torchvision's download): ``list_attr_celeba.txt`` (line 1 the
   number of images, line 2 the 40 attribute names, then ``<file> ±1 ...``), ``list_eval_partition.txt``
   (``<file> <0|1|2>``), images in ``img_align_celeba/``. The official archive's ``Anno/``, ``Eval/``
   and ``Img/`` sub-folders and torchvision's ``celeba/`` sub-folder are searched too.
2. **CSV mirror** (Kaggle's): ``list_attr_celeba.csv`` (``image_id`` and the 40 attributes) and
   ``list_eval_partition.csv`` (``image_id,partition``), images in ``img_align_celeba/`` or nested in
   ``img_align_celeba/img_align_celeba/``.
3. **Single CSV**: one ``*.csv`` with ``image_id``, the two attributes and ``split`` (0/1/2 or
   train/val/test), images in ``img_align_celeba/`` or nested in ``img_align_celeba/img_align_celeba/``:
   the DDB authors' ``celeba_split.csv`` (attributes 0/1), with or without Kaggle's
   ``list_attr_celeba.csv`` beside it (without Kaggle's partition file, the single CSV is read).

The label is ``celeba.label_attribute`` (default ``Blond_Hair``: class 1 when present), the spurious
attribute ``celeba.spurious_attribute`` (default ``Male``: ``male`` / ``female``). Attribute values are
±1 as published or 0/1. The sample id is the file name without its extension. Everything is vectorised
and no image is opened unless ``check_images`` is set: the 202,599 rows take about a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DDBError
from .common import (SPLIT_NAMES, coded_column, dataset_root, did_you_mean, find_file, manifest_path_prefix,
                     open_images, read_csv, require_columns, require_filled, require_listed_images_present,
                     require_unique, group_names, strip_suffix)
from .roots import missing_data, missing_root

ATTRIBUTES_TXT, PARTITION_TXT = "list_attr_celeba.txt", "list_eval_partition.txt"
ATTRIBUTES_CSV, PARTITION_CSV = "list_attr_celeba.csv", "list_eval_partition.csv"
IMAGE_FOLDER = "img_align_celeba"
# (absent, present) names of the spurious attribute; others become not_<attr> / <attr>.
SPURIOUS_NAMES = {"Male": ("female", "male")}
PARTITION_CODES = dict(enumerate(SPLIT_NAMES))
SPLIT_WORDS = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
ATTRIBUTE_CODES = {-1: "absent", 0: "absent", 1: "present"}
REDOWNLOAD = "re-extract the file from the CelebA archive"
SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, or Kaggle's jessicali9530/celeba-dataset"


@dataclass
class Attributes:
    """What every layout reduces to: one entry per listed image."""

    image_ids: pd.Series       # file names as listed, e.g. 000001.jpg
    label: np.ndarray          # bool, label attribute present
    spurious: np.ndarray       # bool, spurious attribute present
    split_codes: np.ndarray    # 0/1/2
    listing: Path              # the file that lists the images (named by errors about images)
    first_line: int            # line of ``listing`` holding the first image


def spurious_names(attribute: str) -> tuple[str, str]:
    return SPURIOUS_NAMES.get(attribute, (f"not_{attribute.lower()}", attribute.lower()))


def search_folders(root: Path) -> list[Path]:
    return [root, root / "celeba", root / "Anno", root / "Eval"]


def require_attributes(columns: list[str], attributes: dict[str, str], path: Path) -> None:
    """Both configured attributes must be columns of ``path``; suggest the closest on a typo."""
    for key, name in attributes.items():
        if name not in columns:
            raise DDBError(path, f"no attribute {name!r}{did_you_mean(name, columns)} (the config's "
                           f"celeba.{key}); the file has {len(columns)} attributes",
                           f"set celeba.{key} to one of the file's attribute names, e.g. "
                           f"{[c for c in columns if c != 'image_id'][:6]} ...")


def attribute_flags(table: pd.DataFrame, column: str, path: Path, first_line: int) -> np.ndarray:
    """True where the attribute is present; values must be ±1 (published) or 0/1, not a mix of -1 and 0."""
    codes = coded_column(table, column, ATTRIBUTE_CODES, path, id_column="image_id", first_line=first_line,
                         fix=f"CelebA attributes are 1 (present) and -1 or 0 (absent); {REDOWNLOAD}")
    if (codes == -1).any() and (codes == 0).any():
        first_zero = int(np.flatnonzero(codes == 0)[0])
        raise DDBError(path, f"column {column!r} mixes -1 and 0 (first 0 on line {first_line + first_zero}), "
                       "so 'absent' is ambiguous", f"use either ±1 or 0/1 throughout; {REDOWNLOAD}")
    return codes == 1


def split_codes_of(table: pd.DataFrame, column: str, path: Path, first_line: int) -> np.ndarray:
    require_filled(table, "image_id", path, first_line=first_line)
    return coded_column(table, column, PARTITION_CODES, path, id_column="image_id", first_line=first_line,
                        fix=f"partitions are 0 (train), 1 (val), 2 (test); {REDOWNLOAD}", words=SPLIT_WORDS)


def align_partition(ids: pd.Series, partition_ids: pd.Series, codes: np.ndarray,
                    attributes_path: Path, partition_path: Path) -> np.ndarray:
    """The split code of each id in ``ids``; both files must list the same images (any order)."""
    if len(ids) == len(partition_ids) and (ids.to_numpy() == partition_ids.to_numpy()).all():
        return codes  # the published files list the images in the same order: no join needed
    for listed, path, other, other_path in ((ids, attributes_path, partition_ids, partition_path),
                                            (partition_ids, partition_path, ids, attributes_path)):
        unmatched = listed[~listed.isin(other)]
        if len(unmatched):
            raise DDBError(path, f"{len(unmatched)} image(s) listed here are not in {other_path.name}: "
                           f"{unmatched.head(5).tolist()}",
                           "both files must list the same images; re-extract them from the same CelebA release")
    return pd.Series(codes, index=partition_ids.to_numpy()).reindex(ids.to_numpy()).to_numpy()


def read_published(attributes_path: Path, root: Path, attributes: dict[str, str]) -> Attributes:
    partition_path = partition_file(root, attributes_path, "published")
    if partition_path is None:
        raise DDBError(attributes_path.parent / PARTITION_TXT, "the CelebA partition file does not exist",
                       f"put {PARTITION_TXT} (Eval/ in the official release) beside {ATTRIBUTES_TXT}")
    with open(attributes_path) as handle:
        count_line, names_line = handle.readline(), handle.readline()
    try:
        declared = int(count_line.strip())
    except ValueError:
        raise DDBError(attributes_path, f"line 1 should be the number of images, found {count_line.strip()!r}",
                       REDOWNLOAD) from None
    names = names_line.split()
    require_attributes(names, attributes, attributes_path)
    wanted = sorted(set(attributes.values()))
    # Whitespace-separated with aligned columns: the C parser's r"\s+" path reads only the needed columns.
    table = read_csv(attributes_path, sep=r"\s+", header=None, skiprows=2, names=["image_id", *names],
                     usecols=["image_id", *wanted], dtype={"image_id": str})
    if len(table) != declared:
        raise DDBError(attributes_path, f"line 1 declares {declared} images but the file lists {len(table)}",
                       f"the file is incomplete or edited; {REDOWNLOAD}")
    partition = read_csv(partition_path, sep=r"\s+", header=None, names=["image_id", "partition"],
                         dtype={"image_id": str})
    return combine(table, attributes_path, 3, partition, partition_path, 1, attributes)


def read_csv_mirror(attributes_path: Path, root: Path, attributes: dict[str, str]) -> Attributes:
    partition_path = partition_file(root, attributes_path, "mirror")
    if partition_path is None:
        raise DDBError(attributes_path.parent / PARTITION_CSV, "the CelebA partition file does not exist",
                       f"put {PARTITION_CSV} (columns image_id,partition) beside {ATTRIBUTES_CSV}")
    columns = [str(c) for c in read_csv(attributes_path, nrows=0).columns]
    require_columns(columns, ["image_id"], attributes_path)
    require_attributes(columns, attributes, attributes_path)
    table = read_csv(attributes_path, usecols=["image_id", *sorted(set(attributes.values()))],
                     dtype={"image_id": str})
    if partition_path.suffix == ".txt":
        partition = read_csv(partition_path, sep=r"\s+", header=None, names=["image_id", "partition"],
                             dtype={"image_id": str})
        partition_first_line = 1
    else:
        require_columns(read_csv(partition_path, nrows=0).columns, ["image_id", "partition"], partition_path)
        partition = read_csv(partition_path, usecols=["image_id", "partition"], dtype={"image_id": str})
        partition_first_line = 2
    return combine(table, attributes_path, 2, partition, partition_path, partition_first_line, attributes)


def combine(table: pd.DataFrame, attributes_path: Path, first_line: int, partition: pd.DataFrame,
            partition_path: Path, partition_first_line: int, attributes: dict[str, str]) -> Attributes:
    """Check both files and join the partition onto the attributes."""
    require_filled(table, "image_id", attributes_path, first_line=first_line)
    require_unique(table["image_id"], attributes_path, "image_id", first_line=first_line)
    codes = split_codes_of(partition, "partition", partition_path, partition_first_line)
    require_unique(partition["image_id"], partition_path, "image_id", first_line=partition_first_line)
    return Attributes(
        image_ids=table["image_id"],
        label=attribute_flags(table, attributes["label_attribute"], attributes_path, first_line),
        spurious=attribute_flags(table, attributes["spurious_attribute"], attributes_path, first_line),
        split_codes=align_partition(table["image_id"], partition["image_id"], codes, attributes_path,
                                    partition_path),
        listing=attributes_path,
        first_line=first_line,
    )


def find_single_csv(root: Path) -> Path | None:
    """The one CSV of the single-file layout (``image_id``, the attributes, ``split``), if any."""
    candidates = sorted(path for folder in (root, root / "celeba") if folder.is_dir()
                        for path in folder.glob("*.csv") if not path.name.startswith("list_"))
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    matching = [path for path in candidates
                if {"image_id", "split"} <= set(map(str, read_csv(path, nrows=0).columns))]
    if len(matching) != 1:
        raise DDBError(root, f"cannot tell which CSV lists the images: {[p.name for p in candidates]}",
                       "keep only the CelebA metadata CSV (columns image_id, the attributes, split) in root")
    return matching[0]


def read_single_csv(path: Path, attributes: dict[str, str]) -> Attributes:
    columns = [str(c) for c in read_csv(path, nrows=0).columns]
    require_columns(columns, ["image_id"], path)
    require_attributes(columns, attributes, path)
    require_columns(columns, ["split"], path)
    table = read_csv(path, usecols=["image_id", "split", *sorted(set(attributes.values()))],
                     dtype={"image_id": str})
    require_filled(table, "image_id", path, first_line=2)
    require_unique(table["image_id"], path, "image_id", first_line=2)
    return Attributes(
        image_ids=table["image_id"],
        label=attribute_flags(table, attributes["label_attribute"], path, 2),
        spurious=attribute_flags(table, attributes["spurious_attribute"], path, 2),
        split_codes=split_codes_of(table, "split", path, 2),
        listing=path,
        first_line=2,
    )


def partition_file(root: Path, attributes_path: Path, layout: str) -> Path | None:
    """The partition file of the published or CSV-mirror layout, if any (the single CSV has none)."""
    names = {"published": [PARTITION_TXT], "mirror": [PARTITION_CSV, PARTITION_TXT]}.get(layout)
    return find_file(search_folders(root) + [attributes_path.parent], names) if names else None


def detect_layout(root: Path) -> tuple[str, Path] | None:
    """The layout under ``root`` (published, mirror or single) and the file that lists its images."""
    published = find_file(search_folders(root), [ATTRIBUTES_TXT])
    if published is not None:
        return "published", published
    mirror = find_file(search_folders(root), [ATTRIBUTES_CSV])
    single = find_single_csv(root)
    # The DDB authors' layout keeps Kaggle's attribute CSV beside their celeba_split.csv (attributes and
    # split in one file) without Kaggle's partition file: the single CSV then holds everything.
    if mirror is not None and (single is None or partition_file(root, mirror, "mirror") is not None):
        return "mirror", mirror
    if single is not None:
        return "single", single
    return None


def source_paths(cfg: dict, workdir: Path) -> list[Path]:
    """What the manifest is built from, found without reading it: the attribute and partition files (or
    the single CSV) and the image folder (one stat: its time changes when images are added or removed)."""
    root = dataset_root(cfg, workdir, "celeba", f"{ATTRIBUTES_TXT} and {IMAGE_FOLDER}/")
    found = detect_layout(root)
    if found is None:
        return []
    layout, listing = found
    partition = partition_file(root, listing, layout)
    return [listing, *([partition] if partition is not None else []), find_image_folder(root, listing)]


def check_root(cfg: dict, workdir: Path) -> None:
    """The key files of one of the three layouts, before anything is planned: the attribute file (or the
    single CSV), the partition file it needs, and the image folder."""
    root = Path(workdir) / cfg["root"]
    hints = {"dataset": "CelebA", "source": SOURCE, "section": "CelebA",
             "unpack": f"put the attribute and partition files and {IMAGE_FOLDER}/ (img_align_celeba.zip "
                       f"extracted) in {root}"}
    if not root.is_dir():
        raise missing_root(root, **hints)
    found = detect_layout(root)
    if found is None:
        raise missing_data(root / ATTRIBUTES_TXT, f"no CelebA metadata file: neither {ATTRIBUTES_TXT} (official), "
                           f"{ATTRIBUTES_CSV} (Kaggle) nor one CSV with image_id, the attributes and split (the DDB "
                           "authors' celeba_split.csv)", **hints)
    layout, listing = found
    if layout != "single" and partition_file(root, listing, layout) is None:
        partition = PARTITION_TXT if layout == "published" else PARTITION_CSV
        raise missing_data(listing.parent / partition, f"the CelebA partition file is missing beside {listing.name}",
                           **hints)
    try:
        find_image_folder(root, listing)
    except DDBError as error:
        raise missing_data(error.where, error.problem, **hints) from None


def read_attributes(root: Path, attributes: dict[str, str]) -> Attributes:
    """Detect the layout under ``root`` and read it."""
    found = detect_layout(root)
    if found is not None:
        layout, listing = found
        if layout == "published":
            return read_published(listing, root, attributes)
        if layout == "mirror":
            return read_csv_mirror(listing, root, attributes)
        return read_single_csv(listing, attributes)
    raise DDBError(root / ATTRIBUTES_TXT, "no CelebA metadata file found",
                   f"put the published {ATTRIBUTES_TXT} + {PARTITION_TXT}, the mirror's {ATTRIBUTES_CSV} + "
                   f"{PARTITION_CSV}, or one CSV with columns image_id,{attributes['spurious_attribute']},"
                   f"{attributes['label_attribute']},split in root (or set `root` to the folder holding them)")


def find_image_folder(root: Path, listing: Path) -> Path:
    for base in dict.fromkeys([root, listing.parent, root / "celeba", root / "Img"]):
        for candidate in (base / IMAGE_FOLDER / IMAGE_FOLDER, base / IMAGE_FOLDER):
            if candidate.is_dir():
                return candidate
    raise DDBError(root / IMAGE_FOLDER, "the CelebA image folder does not exist",
                   f"extract img_align_celeba.zip into {root} (images in {IMAGE_FOLDER}/)")


def build_manifest(cfg: dict, *, seed: int, workdir: Path) -> pd.DataFrame:
    """One row per listed image, with the published partition (``seed`` unused)."""
    options = cfg["celeba"]
    attributes = {"label_attribute": options["label_attribute"],
                  "spurious_attribute": options["spurious_attribute"]}
    if attributes["label_attribute"] == attributes["spurious_attribute"]:
        raise DDBError("config: celeba", f"label_attribute and spurious_attribute are both "
                       f"{attributes['label_attribute']!r}", "choose two different attributes")
    root = dataset_root(cfg, workdir, "celeba", f"{ATTRIBUTES_TXT} and {IMAGE_FOLDER}/")
    table = read_attributes(root, attributes)
    image_folder = find_image_folder(root, table.listing)
    image_ids = table.image_ids.str.strip()
    require_listed_images_present(image_folder, image_ids, table.listing)
    sample_ids = strip_suffix(image_ids)
    # 000001.jpg and 000001.png would share a sample id (and an output file name)
    require_unique(sample_ids, table.listing, "image name (without extension)", first_line=table.first_line)

    classes = list(cfg["classes"])
    if len(classes) != 2:
        raise DDBError("config: classes", f"CelebA's label is one attribute (two classes), not {classes}",
                       "give two class names: absent, present (default non_blond, blond)")
    label = table.label.astype(np.int64)
    class_name = pd.Series(np.asarray(classes, dtype=object)[label], dtype=str)
    absent, present = spurious_names(attributes["spurious_attribute"])
    spurious = pd.Series(np.where(table.spurious, present, absent), dtype=str)
    manifest = pd.DataFrame({
        "sample_id": sample_ids.to_numpy(),
        "path": (manifest_path_prefix(cfg, workdir, image_folder) + "/" + image_ids).to_numpy(),
        "split": np.asarray(SPLIT_NAMES, dtype=object)[table.split_codes],
        "y": label,
        "class_name": class_name,
        "spurious": spurious,
        "group": group_names(class_name, spurious),
    })
    if cfg["check_images"]:
        open_images(manifest["path"], workdir)
    return manifest
