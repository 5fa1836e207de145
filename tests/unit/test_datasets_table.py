"""Bring your own dataset: a sample sheet (format: table) read into the manifest, checked before any job,
written from a folder tree by `ddb sheet`, and run through the whole DAG with tiny models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import REPO
from ddb.config import validate_config
from ddb.datasets import build_manifest
from ddb.datasets.folder_sheet import sheet_from_folders
from ddb.datasets.synthetic import draw_sample
from ddb.datasets.table import split_sizes
from ddb.errors import DDBError
from ddb.sharding import shard_counts

CLASSES = ["cat", "dog"]
BACKGROUNDS = {"indoor": "land", "outdoor": "water"}  # the demo's drawing code's two backgrounds
# (label, spurious) -> images per split: cats mostly indoors, dogs mostly outdoors; two val images a group
# (DFR fits on one half of val and scores the other)
PLAN = {"train": {("cat", "indoor"): 6, ("cat", "outdoor"): 2, ("dog", "indoor"): 2, ("dog", "outdoor"): 6},
        "val": {("cat", "indoor"): 2, ("cat", "outdoor"): 2, ("dog", "indoor"): 2, ("dog", "outdoor"): 2},
        "test": {("cat", "indoor"): 2, ("cat", "outdoor"): 2, ("dog", "indoor"): 2, ("dog", "outdoor"): 2}}


def draw_collection(root: Path, plan: dict = PLAN, size: int = 24, masks: bool = False) -> pd.DataFrame:
    """Demo-style pictures (a disk for cat, a triangle for dog; land for indoor, water for outdoor) under
    root/<label>/<spurious>/, a different size per class; the sheet's rows in drawing order."""
    rows = []
    for split, groups in plan.items():
        for (label, spurious), count in groups.items():
            for _ in range(count):
                name = f"{label}/{spurious}/img{len(rows):03d}.png"
                image, mask = draw_sample(0, name, CLASSES.index(label), BACKGROUNDS[spurious], size)
                image = image[:, : size - 4 * CLASSES.index(label)]  # any size: dogs are narrower
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / name)
                row = {"image": name, "label": label, "spurious": spurious, "split": split, "note": "ignored"}
                if masks:
                    mask_name = f"masks/img{len(rows):03d}.png"
                    (root / mask_name).parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray((mask[:, : size - 4 * CLASSES.index(label)] * 255).astype(np.uint8)).save(
                        root / mask_name)
                    row["mask"] = mask_name
                rows.append(row)
    return pd.DataFrame(rows)


def write(table: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def entry(root: Path, table: str, **options) -> dict:
    config = {"datasets": {"pets": {"format": "table", "root": str(root), "table": table, "object": "pet",
                                    **options}}}
    return validate_config(config)["datasets"]["pets"]


@pytest.fixture
def collection(tmp_path) -> tuple[Path, pd.DataFrame]:
    root = tmp_path / "pets"
    return root, draw_collection(root)


# ------------------------------------------------------------------------------------ the manifest


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_a_sheet_gives_the_exact_manifest_whatever_its_file_type(collection, suffix):
    root, table = collection
    write(table, root / f"samples{suffix}")
    cfg = entry(root, f"samples{suffix}")
    assert cfg["classes"] == ["cat", "dog"]
    manifest = build_manifest("pets", cfg, seed=0)
    expected = pd.DataFrame({
        "sample_id": [f"{r.label}_{r.spurious}_{Path(r.image).stem}" for r in table.itertuples()],
        "path": [f"{root}/{r.image}" for r in table.itertuples()],
        "split": table["split"], "y": table["label"].map({"cat": 0, "dog": 1}).astype("int64"),
        "class_name": table["label"], "spurious": table["spurious"],
        "group": table["label"] + "_" + table["spurious"]})
    expected = expected.sort_values(["split", "sample_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(manifest, expected)
    assert manifest.loc[0, "sample_id"] == "cat_indoor_img024" and manifest.loc[0, "split"] == "test"


def test_classes_keep_the_entrys_order_and_masks_and_absolute_paths_are_read(tmp_path):
    root = tmp_path / "pets"
    table = draw_collection(root, masks=True)
    table.loc[0, "image"] = str(root / table.loc[0, "image"])  # absolute under the root
    table.loc[1, "mask"] = ""  # no mask for this one
    write(table, tmp_path / "elsewhere.csv")
    cfg = entry(root, str(tmp_path / "elsewhere.csv"), classes=["dog", "cat"])
    manifest = build_manifest("pets", cfg, seed=0).set_index("sample_id")
    assert manifest.loc["cat_indoor_img000", "path"] == str(root / "cat/indoor/img000.png")
    assert manifest.loc["cat_indoor_img002", "y"] == 1 and manifest.loc["dog_outdoor_img010", "y"] == 0
    assert manifest.loc["cat_indoor_img002", "mask_path"] == str(root / "masks/img002.png")
    assert pd.isna(manifest.loc["cat_indoor_img001", "mask_path"])
    assert cfg["minority_groups"] == {"dog": "indoor", "cat": "outdoor"}


def test_object_fills_the_prompts_and_each_stays_overridable(collection):
    root, table = collection
    write(table, root / "samples.csv")
    cfg = entry(root, "samples.csv", object="sports car", inpainting={"prompt": "a {} on a road"})
    assert cfg["masking"]["prompt"] == "sports car."
    assert cfg["inpainting"]["prompt"] == "a {} on a road"
    assert cfg["textual_inversion"]["initializer_token"] == "car"
    assert cfg["textual_inversion"]["templates"][0] == "a photo of a {} sports car"
    assert len(cfg["textual_inversion"]["templates"]) == 15
    assert cfg["masking"]["boxes"] == "first"  # the paper formats' masker


def test_minority_groups_default_to_the_smallest_training_group_and_a_mapping_overrides_one_class(collection):
    root, table = collection
    plan = {**PLAN, "train": {**PLAN["train"], ("dog", "indoor"): 7}}  # dogs indoors outnumber dogs outdoors
    table = draw_collection(root, plan)
    write(table, root / "samples.csv")
    assert entry(root, "samples.csv")["minority_groups"] == {"cat": "outdoor", "dog": "outdoor"}
    assert entry(root, "samples.csv", minority_groups={"dog": "indoor"})["minority_groups"] == \
        {"cat": "outdoor", "dog": "indoor"}
    assert entry(root, "samples.csv", minority_groups=None)["minority_groups"] == {"cat": None, "dog": None}
    with pytest.raises(DDBError, match=r"minority_groups.dog: names spurious value 'garden'.*\['indoor', 'outdoor'\]"):
        entry(root, "samples.csv", minority_groups={"dog": "garden"})


def test_shards_of_all_or_majority_sources_are_counted_from_the_sheet(collection):
    root, table = collection
    write(table, root / "samples.csv")
    # training: cat 6 indoor + 2 outdoor, dog 2 indoor + 6 outdoor; 3 sources a shard
    generation = {"images_per_shard": 3}
    assert shard_counts(entry(root, "samples.csv", generation={**generation, "sources": "all"})) == \
        {"cat": 3, "dog": 3}
    assert shard_counts(entry(root, "samples.csv", generation={**generation, "sources": "majority"})) == \
        {"cat": 2, "dog": 2}  # the minority groups (cat_outdoor, dog_indoor) left out: 6 sources each
    assert shard_counts(entry(root, "samples.csv", generation={**generation, "sources": "all"},
                              minority_groups={"cat": "indoor"})) == {"cat": 3, "dog": 3}
    assert shard_counts(entry(root, "samples.csv", generation={**generation, "sources": "majority"},
                              minority_groups={"cat": "indoor"})) == {"cat": 1, "dog": 2}


# ------------------------------------------------------------------------------------ the drawn split


def test_the_drawn_split_is_stratified_by_group_seeded_and_independent_of_row_order(tmp_path):
    root = tmp_path / "pets"
    sizes = {("cat", "indoor"): 40, ("cat", "outdoor"): 7, ("dog", "indoor"): 3, ("dog", "outdoor"): 21}
    table = draw_collection(root, {"train": sizes}, size=16).drop(columns="split")
    write(table, root / "samples.csv")
    split = {"val_fraction": 0.2, "test_fraction": 0.25}
    cfg = entry(root, "samples.csv", table_split=split, dfr=False)  # DFR needs two val images a group
    manifest = build_manifest("pets", cfg, seed=0)
    counts = pd.crosstab(manifest["group"], manifest["split"])[["train", "val", "test"]]
    assert counts.loc["cat_indoor"].tolist() == [22, 8, 10]
    assert counts.loc["cat_outdoor"].tolist() == [4, 1, 2]  # 1.4 -> 1, 1.75 -> 2
    assert counts.loc["dog_indoor"].tolist() == [1, 1, 1]  # at least one in each split
    assert counts.loc["dog_outdoor"].tolist() == [12, 4, 5]  # 4.2 -> 4, 5.25 -> 5
    # the minority groups of the config count the drawn training split
    assert cfg["minority_groups"] == {"cat": "outdoor", "dog": "indoor"}
    again = build_manifest("pets", cfg, seed=7)  # the global seed does not move the split
    pd.testing.assert_frame_equal(again, manifest)
    write(table.sample(frac=1, random_state=3), root / "shuffled.csv")
    shuffled = build_manifest("pets", entry(root, "shuffled.csv", table_split=split, dfr=False), seed=0)
    pd.testing.assert_frame_equal(shuffled, manifest)
    other = build_manifest("pets", entry(root, "samples.csv", table_split={**split, "seed": 1}, dfr=False), seed=0)
    by_id = manifest.set_index("sample_id")["split"]
    changed = (other.set_index("sample_id")["split"].reindex(by_id.index) != by_id).sum()
    assert changed > 0  # another seed draws other images, as many per group and split
    assert pd.crosstab(other["group"], other["split"]).equals(pd.crosstab(manifest["group"], manifest["split"]))


def test_a_group_with_one_validation_image_is_refused_at_config_load_unless_dfr_is_off(collection):
    root, table = collection
    write(table.drop(columns="split"), root / "drawn.csv")  # groups of 10, 6, 6, 10: 0.15 x 6 -> 1 val image
    with pytest.raises(DDBError, match=r"2 group\(s\) have one validation image: 'cat_outdoor', 'dog_indoor'; the "
                                       r"DFR baseline needs two.*\n  fix: raise table_split.val_fraction"):
        entry(root, "drawn.csv")
    assert entry(root, "drawn.csv", table_split={"val_fraction": 0.3})["classes"] == CLASSES
    assert entry(root, "drawn.csv", dfr=False)["classes"] == CLASSES
    table.loc[(table["label"] == "dog") & (table["spurious"] == "indoor") & (table["split"] == "val"), "split"] = \
        ["val", "test"]
    write(table, root / "given.csv")
    with pytest.raises(DDBError, match=r"1 group\(s\) have one validation image: 'dog_indoor'[\s\S]*mark a "
                                       r"second image"):
        entry(root, "given.csv")


def test_split_sizes_round_halves_up_and_keep_one_image_in_each_split():
    assert split_sizes(10, 0.15, 0.15) == (6, 2, 2)  # 1.5 -> 2
    assert split_sizes(3, 0.15, 0.15) == (1, 1, 1)
    assert split_sizes(4, 0.5, 0.5) == (1, 1, 2)
    assert split_sizes(100, 0.1, 0.2) == (70, 10, 20)


# ------------------------------------------------------------------------------------ bad input


def broken(table: pd.DataFrame, case: str) -> pd.DataFrame:
    table = table.copy()
    if case == "missing column":
        return table.rename(columns={"spurious": "context"})
    if case == "unknown split":
        table.loc[5, "split"] = "validation"
    elif case == "one class":
        table["label"] = "cat"
    elif case == "duplicate rows":
        table = pd.concat([table, table.iloc[[3]]], ignore_index=True)
    elif case == "group absent from test":
        table.loc[(table["label"] == "dog") & (table["spurious"] == "indoor") & (table["split"] == "test"),
                  "split"] = "train"
    elif case == "group too small to draw":
        table = table.drop(columns="split")
        table = table[~((table["label"] == "dog") & (table["spurious"] == "indoor"))].copy()
        table = pd.concat([table, pd.DataFrame([{"image": "dog/indoor/img008.png", "label": "dog",
                                                 "spurious": "indoor"}])], ignore_index=True)
    return table


@pytest.mark.parametrize("case, message", [
    ("missing column", r"no column 'spurious'.*columns \['image', 'label', 'context', 'split', 'note'\]"),
    ("unknown split", r"column 'split', line 7: 'validation' is not one of \['train', 'val', 'test'\] \(1 such"),
    ("one class", r"column 'label': every row has the one class 'cat'; DDB needs two classes"),
    ("duplicate rows", r"column 'image': 1 image\(s\) listed more than once: 'cat/indoor/img003.png' \(line 5\), "
                       r"'cat/indoor/img003.png' \(line 34\)"),
    ("group absent from test", r"column 'split': 1 training group\(s\) have no test image: 'dog_indoor'"),
    ("group too small to draw", r"group\(s\) are too small to reach train, val and test.*'dog_indoor' \(1 image\)"),
])
def test_a_bad_sheet_stops_config_loading_naming_the_file_field_and_fix(collection, case, message):
    root, table = collection
    write(broken(table, case), root / "samples.csv")
    with pytest.raises(DDBError, match=message) as caught:
        entry(root, "samples.csv")
    assert caught.value.where == str(root / "samples.csv")
    assert "datasets.pets.table" in str(caught.value) and caught.value.fix
    # a sheet broken after the config loaded stops prepare_dataset's build_manifest with the same message
    write(table, root / "samples.csv")
    cfg = entry(root, "samples.csv")
    write(broken(table, case), root / "samples.csv")
    if case == "one class":  # the loaded config already names both classes
        message = r"class\(es\) \['dog'\] of the entry's `classes` have no row"
    with pytest.raises(DDBError, match=message) as caught:
        build_manifest("pets", cfg, seed=0)
    assert caught.value.where == str(root / "samples.csv")


def test_a_parquet_sheet_names_rows_not_lines(collection):
    root, table = collection
    write(broken(table, "unknown split"), root / "samples.parquet")
    with pytest.raises(DDBError, match=r"column 'split', row 5: 'validation'"):
        entry(root, "samples.parquet")


@pytest.mark.parametrize("options, where, message", [
    ({"object": None}, "datasets.pets.object", "is missing"),
    ({"table": "samples.xlsx"}, "samples.xlsx", r"extension '.xlsx' is not one of"),
    ({"table": "nowhere.csv"}, "nowhere.csv", "the sample sheet does not exist"),
    ({"classes": ["cat", "dog", "bird"]}, "samples.csv",
     r"class\(es\) \['bird'\] of the entry's `classes` have no row"),
    ({"classes": ["cat", "dgo"]}, "samples.csv", r"line 10: 'dog' is not one of the entry's classes \['cat', 'dgo'\] "
                                                 r"\(did you mean 'dgo'\?\)"),
])
def test_a_bad_entry_is_named_at_config_load(collection, options, where, message):
    root, table = collection
    write(table, root / "samples.csv")
    cfg = {"format": "table", "root": str(root), "table": "samples.csv", "object": "pet", **options}
    cfg = {key: value for key, value in cfg.items() if value is not None}
    with pytest.raises(DDBError, match=message) as caught:
        validate_config({"datasets": {"pets": cfg}})
    assert where in caught.value.where or where in str(caught.value)


def test_table_keys_are_refused_on_another_format():
    with pytest.raises(DDBError, match=r"datasets.wb.object: is a key of a sample sheet"):
        validate_config({"datasets": {"wb": {"format": "waterbirds", "root": "x", "object": "bird"}}})




# ------------------------------------------------------------------------------------ ddb sheet


def test_ddb_sheet_writes_a_sheet_from_label_and_spurious_folders(collection, tmp_path):
    root, table = collection
    out = tmp_path / "pets.parquet"
    result = subprocess.run([sys.executable, "-m", "ddb", "sheet", str(root), "-o", str(out)], capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO / "workflow")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{out}: 32 images, 2 classes, 4 groups"
    sheet = pd.read_parquet(out)
    assert list(sheet.columns) == ["image", "label", "spurious"]
    assert sorted(sheet["image"]) == sorted(table["image"]) == sheet["image"].tolist()
    assert (sheet["label"] + "/" + sheet["spurious"] == sheet["image"].str.rsplit("/", n=1).str[0]).all()
    result = subprocess.run([sys.executable, "-m", "ddb", "sheet", str(root)], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO / "workflow")})
    assert result.returncode == 0 and (root / "samples.csv").is_file()
    cfg = entry(root, "samples.csv", dfr=False)  # the default sheet reads back as a dataset, its split drawn
    # groups of 10, 6, 6 and 10 images: 0.15 x 10 = 1.5 -> 2 each to val and test, 0.15 x 6 = 0.9 -> 1
    assert build_manifest("pets", cfg, seed=0)["split"].value_counts().to_dict() == {"train": 20, "val": 6,
                                                                                    "test": 6}


def test_ddb_sheet_refuses_an_image_without_a_spurious_folder(collection):
    root, _ = collection
    (root / "cat" / "stray.png").write_bytes(b"")
    with pytest.raises(DDBError, match="a file directly in a label folder has no spurious value"):
        sheet_from_folders(root)


# ------------------------------------------------------------------------------------ the whole DAG

TINY = {
    "classifier": {"arch": "tiny", "weights": None, "image_size": 32},
    "erm": {"epochs": 2, "batch_size": 8, "lr": 0.01, "augment": False},
    "textual_inversion": {"model": "tiny", "num_images": 2, "steps": 2, "batch_size": 2, "resolution": 32},
    "low_loss": {"k": 4},
    "masking": {"masker": "files", "batch_size": 4},
    "generation": {"images_per_shard": 4},
    "inpainting": {"model": "tiny", "steps": 2, "resolution": 32, "batch_size": 4},
    "ig": {"n_steps": 4, "internal_batch_size": 32, "batch_size": 4},
    "retrain": {"epochs": 2, "batch_size": 8, "generated_batch_size": 4},
}
RESOURCES = {rule: {"threads": 1} for rule in ("train_erm", "textual_inversion", "select_low_loss", "mask",
                                                  "inpaint", "ig_score", "retrain", "evaluate")}


