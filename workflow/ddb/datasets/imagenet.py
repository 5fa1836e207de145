"""ImageNet-1k → ImageNet-A (bee / cockroach): class folders named by WordNet id, one per source.

``root/<imagenet.train_dir>/<wnid>/`` (e.g. ImageNet-1k's ``train/n02206856/``) gives the ``train``
split, of which a seeded stratified ``imagenet.val_fraction`` per class becomes ``val``;
``root/<imagenet.test_dir>/<wnid>/`` (ImageNet-A's own folders are named by wnid too) gives ``test``.
``imagenet.wnids`` maps each class name to its WordNet id; other wnid folders are ignored, so ``root``
can be a full ImageNet copy. Either directory may be absolute, for sources stored apart.

The spurious attribute is the source (``imagenet.train_source`` / ``test_source``), so a group is a
class within a source (``bee_imagenet_a``): worst-group accuracy on test is then the worst class
accuracy on ImageNet-A. The sample id is ``<source>_<file stem>``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DDBError
from .common import (dataset_root, did_you_mean, folder_manifest, list_images, manifest_path_prefix, safe_id,
                     strip_suffix)
from .roots import missing_data, missing_root

# Where each default source comes from (the config names them imagenet.train_source / test_source)
SOURCES = {"train_dir": ("ImageNet-1k (ILSVRC2012) training images", "https://image-net.org/download.php",
                         "extract the class's folder from ILSVRC2012_img_train.tar"),
           "test_dir": ("ImageNet-A", "https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar",
                        "extract imagenet-a.tar")}


def class_wnids(classes: list[str], wnids: dict[str, str]) -> list[str]:
    missing = [name for name in classes if name not in wnids]
    if missing:
        name = missing[0]
        raise DDBError("config: imagenet.wnids", f"no WordNet id for class {name!r}{did_you_mean(name, wnids)}; "
                       f"it maps {sorted(wnids)}", f"add `{name}: n........` (the class's ImageNet folder name) "
                       "to the dataset's imagenet.wnids")
    return [wnids[name] for name in classes]


def check_root(cfg: dict, workdir: Path) -> None:
    """The key folders, before anything is planned: each class's wnid folder in both sources."""
    options = cfg["imagenet"]
    wnids = class_wnids(list(cfg["classes"]), options["wnids"])
    root = Path(workdir) / cfg["root"]
    for option in ("train_dir", "test_dir"):
        dataset, source, unpack = SOURCES[option]
        folder = root / options[option]
        hints = {"dataset": dataset, "source": source, "section": "ImageNet-A",
                 "unpack": f"{unpack} so that {folder}/<wnid>/ holds the class's images (imagenet.{option})"}
        if not root.is_dir():
            raise missing_root(root, **hints)
        for class_name, wnid in zip(cfg["classes"], wnids):
            if not (folder / wnid).is_dir():
                raise missing_data(folder / wnid, f"the {options[option.replace('dir', 'source')]} folder of "
                                   f"class {class_name!r} does not exist", **hints)


def source_paths(cfg: dict, workdir: Path) -> list[Path]:
    """What the manifest is built from: the class folders of both sources (a folder's time changes when
    images are added, removed or replaced in it); other wnid folders are never read."""
    options = cfg["imagenet"]
    wnids = class_wnids(list(cfg["classes"]), options["wnids"])
    root = dataset_root(cfg, workdir, "imagenet", f"{options['train_dir']}/ and {options['test_dir']}/")
    return [root / directory / wnid for directory in (options["train_dir"], options["test_dir"]) for wnid in wnids]


def list_source(root: Path, directory: str, source: str, split: str, classes: list[str],
                wnids: list[str]) -> pd.DataFrame:
    """One row per image of each class folder ``root/directory/<wnid>/``."""
    folder = root / directory
    option = "train_dir" if split == "train" else "test_dir"
    if not folder.is_dir():
        raise DDBError(folder, f"the {source} folder ({split} source) does not exist",
                       f"set imagenet.{option} to the folder (under root, or absolute) holding one folder per "
                       "WordNet id")
    frames = []
    for y, (class_name, wnid) in enumerate(zip(classes, wnids)):
        class_folder = folder / wnid
        if not class_folder.is_dir():
            raise DDBError(class_folder, f"the {source} folder of class {class_name!r} does not exist",
                           f"check imagenet.wnids.{class_name} ({wnid}) and imagenet.{option}")
        names = list_images(class_folder, f"{source} class")
        if not names:
            raise DDBError(class_folder, f"holds no image of class {class_name!r}", "restore its images")
        frames.append(pd.DataFrame({"file": [f"{wnid}/{n}" for n in names],
                                    "stem": strip_suffix(pd.Series(names, dtype=str)).to_numpy(),
                                    "split": split, "y": y, "class_name": class_name, "spurious": source}))
    return pd.concat(frames, ignore_index=True)


def build_manifest(cfg: dict, *, seed: int, workdir: Path) -> pd.DataFrame:
    """Train (+ val drawn by ``imagenet.val_seed``) from the training source, test from the test source."""
    options = cfg["imagenet"]
    classes = list(cfg["classes"])
    if options["train_source"] == options["test_source"]:
        raise DDBError("config: imagenet", f"train_source and test_source are both {options['train_source']!r}",
                       "name the two sources differently (they name the groups)")
    wnids = class_wnids(classes, options["wnids"])
    root = dataset_root(cfg, workdir, "imagenet", f"{options['train_dir']}/ and {options['test_dir']}/")
    parts = []
    for directory, source, split in ((options["train_dir"], options["train_source"], "train"),
                                     (options["test_dir"], options["test_source"], "test")):
        part = list_source(root, directory, source, split, classes, wnids)
        part["path"] = manifest_path_prefix(cfg, workdir, root / directory) + "/" + part["file"]
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    sample_ids = safe_id(table["spurious"] + "_" + table["stem"])
    return folder_manifest(table, sample_ids, table["path"], val_from="train", options=options, where=root,
                           check_images=cfg["check_images"], workdir=workdir)
