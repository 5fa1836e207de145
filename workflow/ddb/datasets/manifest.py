"""The manifest: one row per image, the contract between ``prepare_dataset`` and every later step."""

from __future__ import annotations

import pandas as pd

from ..errors import DDBError

MANIFEST_COLUMNS = ["sample_id", "path", "split", "y", "class_name", "spurious", "group"]
OPTIONAL_COLUMNS = ["mask_path"]
SPLITS = ("train", "val", "test")
# Training rows left out of a class-balanced subsample (class_balance: subsample): kept in the manifest
# so nothing is lost and the counts can be checked, but no step reads them.
EXCLUDED = "excluded"
SAFE_ID = r"[A-Za-z0-9_-]+"


def group_name(class_name: str, spurious: str) -> str:
    """Readable group id, unique per (class, spurious attribute): ``waterbird_land``."""
    return f"{class_name}_{spurious}"


def validate_manifest(frame: pd.DataFrame, where: str, class_names: list[str] | None = None) -> pd.DataFrame:
    """Check the manifest contract; return the frame with canonical dtypes and column order."""
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise DDBError(where, f"manifest lacks column(s) {missing}", "the dataset adapter must provide them")
    duplicated = frame["sample_id"][frame["sample_id"].duplicated()]
    if len(duplicated):
        raise DDBError(where, f"duplicated sample_id(s): {sorted(duplicated.astype(str).unique())[:5]}",
                       "every image needs a unique id; remove the duplicate rows")
    unsafe = frame["sample_id"].astype(str)[~frame["sample_id"].astype(str).str.fullmatch(SAFE_ID)]
    if len(unsafe):
        raise DDBError(where, f"sample_id(s) {unsafe.head(3).tolist()} contain characters other than letters, "
                       "digits, '_' and '-'", "derive ids from file names without folders or extensions "
                       "(they name files in image shards, where '/' and '.' have a meaning)")
    bad_split = sorted(set(frame["split"].unique()) - set(SPLITS) - {EXCLUDED})
    if bad_split:
        raise DDBError(where, f"unknown split value(s) {bad_split}", f"use one of {list(SPLITS)}")
    if class_names is not None:
        by_index = frame.groupby("y")["class_name"].unique()
        for y, names in by_index.items():
            if not 0 <= int(y) < len(class_names) or list(names) != [class_names[int(y)]]:
                raise DDBError(where, f"class index {y} is named {list(names)} in the data but the config "
                               f"lists classes {class_names}",
                               "set the dataset's `classes` in the config to the dataset's class names, "
                               "in class-index order")
    columns = MANIFEST_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in frame.columns]
    out = frame[columns].copy()
    out["sample_id"] = out["sample_id"].astype(str)
    out["path"] = out["path"].astype(str)
    out["y"] = out["y"].astype("int64")
    return out.sort_values(["split", "sample_id"], kind="stable").reset_index(drop=True)


def group_split_table(manifest: pd.DataFrame, minority_groups: dict[str, str | None] | None = None) -> pd.DataFrame:
    """Counts per group (rows) and split (columns), in the layout of the paper's Tables 1-3; with
    ``minority_groups`` ({class: spurious value}) a boolean column ``minority`` marks each class's."""
    table = pd.crosstab([manifest["y"], manifest["group"]], manifest["split"])
    table = table.reindex(columns=[s for s in (*SPLITS, EXCLUDED) if s in table.columns], fill_value=0)
    table = table.droplevel(0)
    table.columns.name = None
    if minority_groups is not None:
        named = {group_name(c, v) for c, v in minority_groups.items() if v is not None}
        table["minority"] = table.index.isin(named)
    return table


def check_minority_groups(manifest: pd.DataFrame, classes: list[str], minority_groups: dict[str, str | None],
                          where: str) -> None:
    """Each named minority group must exist in the training split, or its token would learn from nothing."""
    train = manifest[manifest["split"] == "train"]
    for class_name, spurious in minority_groups.items():
        if spurious is None:
            continue
        values = sorted(train.loc[train["class_name"] == class_name, "spurious"].astype(str).unique())
        if spurious not in values:
            raise DDBError(f"{where}.minority_groups.{class_name}",
                           f"names spurious value {spurious!r}, but the training images of {class_name} have "
                           f"{values}", f"set it to one of {values} (the value that goes with the other class), "
                           "or null if the class has no minority group")


def check_splits(manifest: pd.DataFrame, classes: list[str], where: str, fix: str) -> None:
    """Refuse data that cannot be trained or scored: a split with no image, or a class with no image in a
    split (training counts split ``train`` only, not the rows a class-balanced subsample left out)."""
    counts = pd.crosstab(manifest["class_name"], manifest["split"]).reindex(index=classes, columns=list(SPLITS),
                                                                            fill_value=0)
    totals = ", ".join(f"{split} {int(counts[split].sum())}" for split in SPLITS)
    for split in SPLITS:
        if counts[split].sum() == 0:
            raise DDBError(where, f"split {split!r} has no image ({totals})", fix)
    for split in SPLITS:
        for class_name in classes:
            if counts.loc[class_name, split] == 0:
                per_class = ", ".join(f"{c} {int(counts.loc[c, split])}" for c in classes)
                raise DDBError(where, f"class {class_name!r} has no {split} image ({split}: {per_class})", fix)


def check_group_coverage(manifest: pd.DataFrame, splits: tuple[str, ...], where: str, fix: str) -> None:
    """Every training group must be in each of ``splits``: one missing from test would silently drop out of
    worst-group accuracy (and from val, out of model selection)."""
    sizes = pd.crosstab(manifest["group"], manifest["split"])
    training = sizes.index[sizes["train"] > 0] if "train" in sizes else []
    for split in splits:
        missing = [group for group in training if split not in sizes or sizes.loc[group, split] == 0]
        if missing:
            shown = ", ".join(f"{group!r} ({int(sizes.loc[group, 'train'])} training images)" for group in missing)
            raise DDBError(where, f"{len(missing)} group(s) of the training split have no {split} image: {shown}; "
                           f"worst-group accuracy would leave them out without a word", fix)


def fewer_than_k(manifest: pd.DataFrame, classes: list[str], k: list[int]) -> list[tuple[str, int, int]]:
    """(class, training images, K) of each class with fewer training images than its K (low_loss.k)."""
    train = manifest[manifest["split"] == "train"]
    sizes = train["class_name"].value_counts()
    return [(name, int(sizes.get(name, 0)), int(limit)) for name, limit in zip(classes, k)
            if int(sizes.get(name, 0)) < int(limit)]


def smallest_groups(manifest: pd.DataFrame) -> dict[int, str]:
    """The smallest training group of each class (not always the minority: CelebA's non-blond men)."""
    train = manifest[manifest["split"] == "train"]
    sizes = train.groupby(["y", "group"]).size()
    return {int(y): sizes.loc[y].idxmin() for y in sizes.index.get_level_values(0).unique()}
