"""MetaShift's cat/dog subset (the spurious-correlation literature's) from its folder layout.

``root`` holds (directly, or in a ``MetaDatasetCatDog/`` sub-folder)::

    train/cat/cat(sofa)/*.jpg   train/cat/cat(bed)/*.jpg   train/dog/dog(bench)/*.jpg   train/dog/dog(bike)/*.jpg
    test/cat/cat(shelf)/*.jpg   test/dog/dog(shelf)/*.jpg

The class is the folder under the split (one of the config's ``classes``), the spurious attribute the
context in parentheses. MetaShift ships no validation split: ``metashift.val_fraction`` of the test folder
becomes ``val`` and the rest stays ``test``, drawn as the authors' loader draws it (``metashift.val_split``
``train_test_split``: scikit-learn's ``train_test_split(test_size=0.85, random_state=0)`` over every test
image, unstratified: 34 cat(shelf) and 47 dog(shelf) images in val, 201 and 259 in test, the paper's
Table 3), or ``stratified``: that share of each test group, seeded by ``metashift.val_seed``. The sample id
is ``<split folder>_<class>_<context>_<file stem>``, so it also says where the image lies.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import DDBError
from .common import (dataset_root, did_you_mean, folder_manifest, list_folder, list_images, list_subfolders,
                     manifest_path_prefix, safe_id, strip_suffix)
from .roots import missing_data, missing_root

SPLIT_FOLDERS = ("train", "test")
NESTED_FOLDER = "MetaDatasetCatDog"
# The cat/dog subset that DISC, DaC and the DDB authors use (a Google Drive archive, metashifts.zip)
SOURCE = "https://drive.google.com/uc?id=1WySOxBRkxAUlSokgZrC-0JaWZwcG5UMT"
GROUP_FOLDER = re.compile(r"^(?P<class_name>[^()]+)\((?P<context>[^()]+)\)$")


def find_dataset_folder(root: Path) -> Path:
    for folder in (root, root / NESTED_FOLDER):
        if all((folder / split).is_dir() for split in SPLIT_FOLDERS):
            return folder
    missing = next(split for split in SPLIT_FOLDERS if not (root / split).is_dir())
    raise DDBError(root / missing, "the MetaShift split folder does not exist",
                   "set `root` to the folder holding train/ and test/ (each with cat/cat(sofa)/-style folders)")


def check_root(cfg: dict, workdir: Path) -> None:
    """The key folders, before anything is planned: train/ and test/ (in the root or its
    MetaDatasetCatDog/), each with a folder per class."""
    root = Path(workdir) / cfg["root"]
    hints = {"dataset": "MetaShift's cat/dog subset", "source": SOURCE, "section": "MetaShift",
             "unpack": f"unzip it so that {root}/{NESTED_FOLDER}/train/ and test/ exist"}
    if not root.is_dir():
        raise missing_root(root, **hints)
    try:
        folder = find_dataset_folder(root)
    except DDBError as error:
        raise missing_data(error.where, f"{error.problem} (nor in {NESTED_FOLDER}/)", **hints) from None
    for split in SPLIT_FOLDERS:
        for class_name in cfg["classes"]:
            if not (folder / split / class_name).is_dir():
                raise missing_data(folder / split / class_name, f"the {split} folder of class {class_name!r} does "
                                   "not exist", **hints)


def source_paths(cfg: dict, workdir: Path) -> list[Path]:
    """What the manifest is built from: the folder listings of ``<split>/<class>/<class>(<context>)/`` (a
    folder's time changes when images or group folders are added, removed or replaced in it)."""
    folder = find_dataset_folder(dataset_root(cfg, workdir, "metashift", "train/ and test/"))
    paths = []
    for split in SPLIT_FOLDERS:
        paths.append(folder / split)
        for class_name in list_subfolders(folder / split):
            class_folder = folder / split / class_name
            paths += [class_folder, *(class_folder / name for name in list_subfolders(class_folder))]
    return paths


def list_split(folder: Path, split: str, classes: list[str]) -> pd.DataFrame:
    """One row per image under ``<split>/<class>/<class>(<context>)/``."""
    class_folders = list_subfolders(folder)
    for name in class_folders:
        if name not in classes:
            raise DDBError(folder / name, f"folder {name!r} is not a class of the config {classes}"
                           f"{did_you_mean(name, classes)}",
                           "rename the folder, or set the dataset's `classes` to the class folders' names")
    for name in classes:
        if name not in class_folders:
            raise DDBError(folder / name, f"the {split} folder of class {name!r} does not exist",
                           f"MetaShift needs {split}/<class>/<class>(<context>)/ for every class {classes}")
    frames = []
    for y, class_name in enumerate(classes):
        class_folder = folder / class_name
        stray = sorted(n for n in list_folder(class_folder) if not n.startswith("."))
        if stray:
            raise DDBError(class_folder / stray[0], "a file directly in a class folder has no context",
                           f"move images into a {class_name}(<context>)/ folder, e.g. {class_name}(sofa)/")
        group_folders = list_subfolders(class_folder)
        if not group_folders:
            raise DDBError(class_folder, "holds no <class>(<context>) folder",
                           f"put the images of class {class_name!r} in folders such as {class_name}(sofa)/")
        for group_folder in group_folders:
            match = GROUP_FOLDER.match(group_folder)
            if not match or match["class_name"] != class_name:
                raise DDBError(class_folder / group_folder, f"expected a folder named {class_name}(<context>)",
                               f"rename it, e.g. {class_name}(sofa); the context is the spurious attribute")
            names = list_images(class_folder / group_folder, "MetaShift group")
            if not names:
                raise DDBError(class_folder / group_folder, "holds no image",
                               "remove the empty folder or restore its images")
            frames.append(pd.DataFrame({"file": [f"{split}/{class_name}/{group_folder}/{n}" for n in names],
                                        "stem": strip_suffix(pd.Series(names, dtype=str)).to_numpy(),
                                        "split": split, "y": y, "class_name": class_name,
                                        "spurious": match["context"]}))
    return pd.concat(frames, ignore_index=True)


def build_manifest(cfg: dict, *, seed: int, workdir: Path) -> pd.DataFrame:
    """Train and test from the folders; val drawn from test by ``metashift.val_seed`` (``seed`` unused)."""
    options = cfg["metashift"]
    classes = list(cfg["classes"])
    root = dataset_root(cfg, workdir, "metashift", "train/ and test/")
    folder = find_dataset_folder(root)
    table = pd.concat([list_split(folder / split, split, classes) for split in SPLIT_FOLDERS], ignore_index=True)
    sample_ids = safe_id(table["split"] + "_" + table["class_name"] + "_" + table["spurious"] + "_" + table["stem"])
    paths = manifest_path_prefix(cfg, workdir, folder) + "/" + table["file"]
    return folder_manifest(table, sample_ids, paths, val_from="test", options=options, where=folder,
                           check_images=cfg["check_images"], workdir=workdir)
