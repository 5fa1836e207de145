"""Waterbirds (Sagawa et al.) as published: ``metadata.csv`` beside the CUB image folders.

Accepted layouts (``root`` may point at any of them):

* ``waterbird_complete95_forest2water2/`` (the original release) or ``waterbirds_v1.0/`` (the WILDS
  copy): both hold ``metadata.csv`` with columns ``img_id,img_filename,y,split,place,place_filename``
  and the images at ``<folder>/<img_filename>``;
* a parent folder holding exactly one of the two.

``split`` 0/1/2 is train/val/test, ``y`` 1 is waterbird, ``place`` 1 is water (docs/method.md). The sample id
is ``img_id``. When the CUB-200 segmentations are extracted as ``segmentations/`` in the dataset folder
or beside it, each row gets the matching mask as ``mask_path`` (``masking.masker: files`` uses it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DDBError
from .common import (SPLIT_NAMES, coded_column, dataset_root, list_subfolders, manifest_path_prefix, open_images,
                     present_files, quote_some, read_csv, require_columns, require_filled, require_listed_images_present,
                     require_unique, group_names)
from .roots import missing_data, missing_root

FOLDER_NAMES = ("waterbird_complete95_forest2water2", "waterbirds_v1.0")
METADATA = "metadata.csv"
REQUIRED_COLUMNS = ["img_id", "img_filename", "y", "split", "place"]
PLACES = ("land", "water")
FIRST_DATA_LINE = 2  # under the one-line header
REDOWNLOAD = "the published file has this layout; re-extract metadata.csv from the dataset's archive"
SOURCE = "https://nlp.stanford.edu/data/dro/waterbird_complete95_forest2water2.tar.gz"
SEGMENTATIONS = "segmentations"


def find_dataset_folder(root: Path) -> Path:
    """The folder holding ``metadata.csv``: ``root`` itself or its one Waterbirds sub-folder."""
    if (root / METADATA).is_file():
        return root
    subfolders = [root / name for name in FOLDER_NAMES if (root / name).is_dir()]
    with_metadata = [folder for folder in subfolders if (folder / METADATA).is_file()]
    if len(with_metadata) > 1:
        raise DDBError(root, f"holds two Waterbirds copies: {[f.name for f in with_metadata]}",
                       "set `root` to the one to use")
    if with_metadata:
        return with_metadata[0]
    looked_in = subfolders[0] if subfolders else root
    raise DDBError(looked_in / METADATA, "the Waterbirds metadata file does not exist",
                   f"set `root` to the folder holding {METADATA} (waterbird_complete95_forest2water2/ or "
                   "waterbirds_v1.0/, or their parent), or restore the file from the dataset's archive")


def check_root(cfg: dict, workdir: Path) -> None:
    """The key files, before anything is planned: ``metadata.csv`` in the root (or in its one Waterbirds
    folder) and the CUB image folders beside it."""
    root = Path(workdir) / cfg["root"]
    # the archive holds waterbird_complete95_forest2water2/; a root that is its parent is read too
    into = root.parent if root.name in FOLDER_NAMES else root
    hints = {"dataset": "Waterbirds", "source": SOURCE, "section": "Waterbirds",
             "unpack": f"extract it with `tar -xzf {SOURCE.rsplit('/', 1)[1]} -C {into}`"}
    if not root.is_dir():
        raise missing_root(root, **hints)
    if not any((folder / METADATA).is_file() for folder in (root, *(root / name for name in FOLDER_NAMES))):
        raise missing_data(root / METADATA, "the Waterbirds metadata file is neither here nor in "
                           f"{' or '.join(f'{name}/' for name in FOLDER_NAMES)}", **hints)
    folder = find_dataset_folder(root)
    if not [name for name in list_subfolders(folder) if name != SEGMENTATIONS]:
        raise missing_data(folder, f"no image folder (001.Black_footed_Albatross/ ...) beside {METADATA}", **hints)


def find_segmentations(folder: Path) -> Path | None:
    for candidate in (folder / SEGMENTATIONS, folder.parent / SEGMENTATIONS):
        if candidate.is_dir():
            return candidate
    return None


def source_paths(cfg: dict, workdir: Path) -> list[Path]:
    """What the manifest is built from, found without reading it: ``metadata.csv``, the image folders
    beside it, and the CUB segmentations with their folders (a folder's time changes when files are added,
    removed or replaced in it)."""
    folder = find_dataset_folder(dataset_root(cfg, workdir, "waterbirds", METADATA))
    paths = [folder / METADATA, *(folder / name for name in list_subfolders(folder))]
    segmentations = find_segmentations(folder)
    if segmentations is not None:
        paths += [segmentations, *(segmentations / name for name in list_subfolders(segmentations))]
    return list(dict.fromkeys(paths))


def read_metadata(path: Path, class_names: list[str]) -> pd.DataFrame:
    """``metadata.csv`` checked column by column; returns img_id, img_filename and integer codes."""
    require_columns(read_csv(path, nrows=0).columns, REQUIRED_COLUMNS, path)
    table = read_csv(path, usecols=REQUIRED_COLUMNS, dtype={"img_id": str, "img_filename": str})
    for column in ("img_id", "img_filename"):
        require_filled(table, column, path, first_line=FIRST_DATA_LINE)
    require_unique(table["img_id"], path, "img_id", first_line=FIRST_DATA_LINE)
    require_unique(table["img_filename"], path, "img_filename", first_line=FIRST_DATA_LINE)
    codes = {
        "y": dict(enumerate(class_names)),
        "split": dict(enumerate(SPLIT_NAMES)),
        "place": dict(enumerate(PLACES)),
    }
    for column, allowed in codes.items():
        table[column] = coded_column(table, column, allowed, path, id_column="img_id",
                                     first_line=FIRST_DATA_LINE, fix=REDOWNLOAD)
    return table


def build_manifest(cfg: dict, *, seed: int, workdir: Path) -> pd.DataFrame:
    """One row per line of ``metadata.csv``; the published splits are kept as they are (``seed`` unused)."""
    root = dataset_root(cfg, workdir, "waterbirds", f"{METADATA} (or a parent of {' / '.join(FOLDER_NAMES)})")
    folder = find_dataset_folder(root)
    metadata_path = folder / METADATA
    classes = list(cfg["classes"])
    table = read_metadata(metadata_path, classes)
    filenames = table["img_filename"].str.strip().str.lstrip("/")
    require_listed_images_present(folder, filenames, metadata_path)

    prefix = manifest_path_prefix(cfg, workdir, folder)
    class_name = pd.Series(np.asarray(classes, dtype=object)[table["y"].to_numpy()], dtype=str)
    spurious = pd.Series(np.asarray(PLACES, dtype=object)[table["place"].to_numpy()], dtype=str)
    manifest = pd.DataFrame({
        "sample_id": table["img_id"].str.strip(),
        "path": prefix + "/" + filenames,
        "split": np.asarray(SPLIT_NAMES, dtype=object)[table["split"].to_numpy()],
        "y": table["y"].astype("int64"),
        "class_name": class_name,
        "spurious": spurious,
        "group": group_names(class_name, spurious),
    })

    segmentations = find_segmentations(folder)
    if segmentations is not None:
        mask_files = filenames.str.replace(r"\.[^./]*$", ".png", regex=True)
        present = present_files(segmentations, mask_files)
        if not present.all():
            raise DDBError(segmentations, f"{int((~present).sum())} image(s) of {metadata_path} have no mask "
                           f"here: {quote_some(mask_files[~present])}",
                           "extract the complete CUB-200-2011 segmentations archive here, or remove the "
                           "folder to build the manifest without masks")
        manifest["mask_path"] = manifest_path_prefix(cfg, workdir, segmentations) + "/" + mask_files

    if cfg["check_images"]:
        open_images(manifest["path"], workdir)
    return manifest
