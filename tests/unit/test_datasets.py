"""Adapters of the paper's datasets (Waterbirds, CelebA, MetaShift, ImageNet → ImageNet-A).

Every test builds a tiny copy of a published layout in ``tmp_path`` (real PNG/JPEG files written with
PIL, exact counts known), builds the manifest through ``ddb.datasets.build_manifest`` with a config
validated like the pipeline's, and checks it row by row; the bad-input tests check the message.
"""

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from ddb.config import load_config, validate_config  # noqa: E402
from ddb.datasets import build_manifest, format_group_table  # noqa: E402
from ddb.datasets.balancing import class_balanced_weights  # noqa: E402
from ddb.errors import DDBError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SPLITS = ["train", "val", "test"]
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


def dataset_cfg(fmt: str, root: Path, **options) -> dict:
    """The dataset entry exactly as the pipeline sees it: defaults filled, classes resolved."""
    config = {"datasets": {"x": {"format": fmt, "root": str(root), **options}}, "targets": ["x"]}
    return validate_config(config)["datasets"]["x"]


def build(fmt: str, root: Path, **options) -> pd.DataFrame:
    return build_manifest("x", dataset_cfg(fmt, root, **options), seed=0)


def write_image(path: Path, shade: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((6, 6, 3), (shade * 37) % 256, dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix.lower() in {".jpg", ".jpeg"} else "PNG")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def rows_of(manifest: pd.DataFrame, columns=("sample_id", "path", "split", "y", "class_name", "spurious", "group")):
    return manifest[list(columns)].to_dict("records")


def sorted_rows(rows: list[dict]) -> list[dict]:
    """The manifest's own order: by split name, then sample id."""
    return sorted(rows, key=lambda row: (row["split"], row["sample_id"]))


# ------------------------------------------------------------------------------------------------ Waterbirds

# (y, place) -> images per split: every group in every split, minority groups small like the real data.
WATERBIRDS_PLAN = {"train": {(0, 0): 3, (0, 1): 1, (1, 0): 1, (1, 1): 2},
                   "val": {(0, 0): 1, (0, 1): 1, (1, 0): 1, (1, 1): 1},
                   "test": {(0, 0): 2, (0, 1): 2, (1, 0): 1, (1, 1): 1}}
BIRD_FOLDERS = {0: "047.American_Goldfinch", 1: "001.Black_footed_Albatross"}


def make_waterbirds(folder: Path) -> list[dict]:
    """Write metadata.csv and the images; return the expected manifest rows."""
    lines, expected, img_id = [], [], 0
    for split_code, split in enumerate(SPLITS):
        for (y, place), count in WATERBIRDS_PLAN[split].items():
            for _ in range(count):
                img_id += 1
                filename = f"{BIRD_FOLDERS[y]}/{BIRD_FOLDERS[y].split('.')[1]}_{img_id:04d}_{img_id * 7}.jpg"
                write_image(folder / filename, img_id)
                place_filename = f"{'bamboo_forest' if place == 0 else 'ocean'}/x.jpg"
                lines.append(f"{img_id},{filename},{y},{split_code},{place},{place_filename}")
                class_name = ["landbird", "waterbird"][y]
                spurious = ["land", "water"][place]
                expected.append({"sample_id": str(img_id), "path": str(folder / filename), "split": split, "y": y,
                                 "class_name": class_name, "spurious": spurious, "group": f"{class_name}_{spurious}"})
    (folder / "metadata.csv").write_text("img_id,img_filename,y,split,place,place_filename\n" + "\n".join(lines) + "\n")
    return expected


def edit_metadata(folder: Path, line: int, column: str, value) -> None:
    table = pd.read_csv(folder / "metadata.csv", dtype=str)
    table.loc[line - 2, column] = str(value)
    table.to_csv(folder / "metadata.csv", index=False)


@pytest.fixture
def waterbirds(tmp_path):
    folder = tmp_path / "waterbird_complete95_forest2water2"
    return folder, make_waterbirds(folder)


@pytest.mark.parametrize("folder_name", ["waterbird_complete95_forest2water2", "waterbirds_v1.0"])
@pytest.mark.parametrize("point_at_parent", [False, True])
def test_waterbirds_rows(tmp_path, folder_name, point_at_parent):
    folder = tmp_path / "waterbirds" / folder_name
    expected = make_waterbirds(folder)
    manifest = build("waterbirds", folder.parent if point_at_parent else folder)
    assert rows_of(manifest) == sorted_rows(expected)
    assert "mask_path" not in manifest.columns
    for path in manifest["path"]:
        assert Path(path).is_file()


def test_waterbirds_group_table_matches_the_plan(waterbirds):
    folder, _ = waterbirds
    manifest = build("waterbirds", folder)
    printed = {line.split()[0]: line.split()[1:] for line in format_group_table(manifest).splitlines()}
    assert printed["landbird_land"] == ["3", "1", "2"] and printed["waterbird_land"] == ["1", "1", "1"]
    assert printed["total"] == ["7", "4", "6"]
    counts = manifest.groupby(["group", "split"]).size()
    assert counts[("landbird_land", "train")] == 3 and counts[("waterbird_land", "train")] == 1
    assert counts[("landbird_water", "test")] == 2 and counts[("waterbird_water", "val")] == 1
    assert len(manifest) == sum(sum(plan.values()) for plan in WATERBIRDS_PLAN.values())


def test_waterbirds_relative_root_gives_relative_paths(waterbirds, monkeypatch):
    folder, expected = waterbirds
    monkeypatch.chdir(folder.parent)
    manifest = build("waterbirds", Path(folder.name))
    first = sorted_rows(expected)[0]
    assert manifest["path"].iloc[0] == str(Path(first["path"]).relative_to(folder.parent))


def test_waterbirds_cub_segmentations_become_mask_paths(waterbirds):
    folder, expected = waterbirds
    for row in expected:
        relative = Path(row["path"]).relative_to(folder).with_suffix(".png")
        write_image(folder.parent / "segmentations" / relative)
    manifest = build("waterbirds", folder)
    masks = manifest["mask_path"].tolist()
    assert masks == [str(folder.parent / "segmentations" / Path(p).relative_to(folder).with_suffix(".png"))
                     for p in manifest["path"]]


def test_waterbirds_incomplete_segmentations(waterbirds):
    folder, _ = waterbirds
    write_image(folder / "segmentations" / BIRD_FOLDERS[0] / "only_one.png")
    with pytest.raises(DDBError, match=r"segmentations: 17 image\(s\) of .*metadata.csv have no mask here"):
        build("waterbirds", folder)


def test_waterbirds_two_copies_under_one_parent(tmp_path):
    make_waterbirds(tmp_path / "waterbird_complete95_forest2water2")
    make_waterbirds(tmp_path / "waterbirds_v1.0")
    with pytest.raises(DDBError, match="holds two Waterbirds copies"):
        build("waterbirds", tmp_path)


def test_waterbirds_missing_metadata(waterbirds):
    folder, _ = waterbirds
    (folder / "metadata.csv").unlink()
    with pytest.raises(DDBError, match=r"metadata.csv: the Waterbirds metadata file does not exist"):
        build("waterbirds", folder.parent)


def test_waterbirds_misspelt_column(waterbirds):
    folder, _ = waterbirds
    text = (folder / "metadata.csv").read_text()
    (folder / "metadata.csv").write_text(text.replace(",place,", ",palce,", 1))
    with pytest.raises(DDBError, match=r"metadata.csv: no column 'place' \(did you mean 'palce'\?\)"):
        build("waterbirds", folder)


@pytest.mark.parametrize("column, value, message", [
    ("split", 3, r"column 'split', line 5 \(img_id '4'\): 3 is not one of 0 \(train\), 1 \(val\), 2 \(test\)"),
    ("y", 2, r"column 'y', line 5 \(img_id '4'\): 2 is not one of 0 \(landbird\), 1 \(waterbird\)"),
    ("place", "water", r"column 'place', line 5 \(img_id '4'\): 'water' is not one of 0 \(land\), 1 \(water\)"),
    ("y", "", r"column 'y', line 5 \(img_id '4'\): an empty value"),
])
def test_waterbirds_value_out_of_range(waterbirds, column, value, message):
    folder, _ = waterbirds
    edit_metadata(folder, 5, column, value)
    with pytest.raises(DDBError, match=message):
        build("waterbirds", folder)


def test_waterbirds_duplicated_id(waterbirds):
    folder, _ = waterbirds
    edit_metadata(folder, 6, "img_id", 3)
    with pytest.raises(DDBError, match=r"duplicated img_id: '3' \(line 4\), '3' \(line 6\)"):
        build("waterbirds", folder)


def test_waterbirds_image_listed_but_absent(waterbirds):
    folder, expected = waterbirds
    gone = Path(expected[4]["path"])
    gone.unlink()
    relative = gone.relative_to(folder).as_posix()
    with pytest.raises(DDBError, match=rf"metadata.csv: 1 image\(s\) listed here are not in .*'{relative}'"):
        build("waterbirds", folder)


def test_waterbirds_corrupt_image_only_caught_when_checking(waterbirds):
    folder, expected = waterbirds
    broken = Path(expected[2]["path"])
    truncate(broken)
    assert len(build("waterbirds", folder)) == len(expected)  # not opened by default
    with pytest.raises(DDBError, match=rf"{broken.name}: the image cannot be read"):
        build("waterbirds", folder, check_images=True)


# ------------------------------------------------------------------------------------------------ CelebA

# (blond, male) -> images per partition, as in Table 1 the blond males are the smallest group.
CELEBA_PLAN = {0: {(0, 0): 3, (0, 1): 3, (1, 0): 2, (1, 1): 1},
               1: {(0, 0): 1, (0, 1): 1, (1, 0): 1, (1, 1): 1},
               2: {(0, 0): 2, (0, 1): 1, (1, 0): 1, (1, 1): 1}}


def celeba_table() -> pd.DataFrame:
    """One row per image: image_id, partition, the 40 attributes (±1), in file order."""
    rows, number = [], 0
    rng = np.random.default_rng(0)
    # interleave partitions like the published files do not, so the order is not the split order
    plan = [(partition, blond, male) for partition, groups in CELEBA_PLAN.items()
            for (blond, male), count in groups.items() for _ in range(count)]
    for index in rng.permutation(len(plan)):
        partition, blond, male = plan[index]
        number += 1
        values = dict(zip(CELEBA_ATTRIBUTES, rng.choice([-1, 1], len(CELEBA_ATTRIBUTES)).tolist()))
        values.update(Blond_Hair=1 if blond else -1, Male=1 if male else -1)
        rows.append({"image_id": f"{number:06d}.jpg", "partition": partition, **values})
    return pd.DataFrame(rows)


def celeba_expected(table: pd.DataFrame, image_folder: Path) -> list[dict]:
    rows = []
    for record in table.to_dict("records"):
        y = int(record["Blond_Hair"] == 1)
        class_name, spurious = ["non_blond", "blond"][y], ["female", "male"][int(record["Male"] == 1)]
        rows.append({"sample_id": record["image_id"][:-4], "path": str(image_folder / record["image_id"]),
                     "split": SPLITS[record["partition"]], "y": y, "class_name": class_name,
                     "spurious": spurious, "group": f"{class_name}_{spurious}"})
    return sorted_rows(rows)


def write_published(root: Path, table: pd.DataFrame) -> None:
    """The official text files: count, names, then aligned ±1 values (two spaces before positives)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [str(len(table)), " ".join(CELEBA_ATTRIBUTES) + " "]
    for record in table.to_dict("records"):
        lines.append(record["image_id"] + " " + " ".join(f"{record[a]:2d}" for a in CELEBA_ATTRIBUTES))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{i} {p}\n" for i, p in zip(table["image_id"], table["partition"])))


def write_mirror(root: Path, table: pd.DataFrame) -> None:
    root.mkdir(parents=True, exist_ok=True)
    table[["image_id", *CELEBA_ATTRIBUTES]].to_csv(root / "list_attr_celeba.csv", index=False)
    table[["image_id", "partition"]].to_csv(root / "list_eval_partition.csv", index=False)


def write_single(root: Path, table: pd.DataFrame, split_words: bool = False) -> None:
    root.mkdir(parents=True, exist_ok=True)
    single = pd.DataFrame({"image_id": table["image_id"], "Male": (table["Male"] == 1).astype(int),
                           "Blond_Hair": (table["Blond_Hair"] == 1).astype(int),
                           "split": [SPLITS[p] for p in table["partition"]] if split_words else table["partition"]})
    single.to_csv(root / "metadata.csv", index=False)


def write_authors(root: Path, table: pd.DataFrame, kaggle_beside: bool) -> None:
    """The DDB authors' layout: celeba_split.csv (image_id, Blond_Hair, Male as 0/1, split 0/1/2), with
    Kaggle's attribute CSV beside it or not (never Kaggle's partition file)."""
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": table["image_id"], "Blond_Hair": (table["Blond_Hair"] == 1).astype(int),
                  "Male": (table["Male"] == 1).astype(int), "split": table["partition"]}).to_csv(
        root / "celeba_split.csv", index=False)
    if kaggle_beside:
        table[["image_id", *CELEBA_ATTRIBUTES]].to_csv(root / "list_attr_celeba.csv", index=False)


def write_celeba_images(folder: Path, table: pd.DataFrame) -> None:
    for number, image_id in enumerate(table["image_id"]):
        write_image(folder / image_id, number)


CELEBA_LAYOUTS = {
    # layout -> (writer, image folder under root)
    "published": (write_published, "img_align_celeba"),
    "mirror": (write_mirror, "img_align_celeba"),
    "mirror_nested": (write_mirror, "img_align_celeba/img_align_celeba"),
    "single_csv": (write_single, "img_align_celeba"),
    "single_csv_split_words": (lambda root, table: write_single(root, table, split_words=True), "img_align_celeba"),
    "authors": (lambda root, table: write_authors(root, table, kaggle_beside=False),
                "img_align_celeba/img_align_celeba"),
    "authors_with_kaggle_attributes": (lambda root, table: write_authors(root, table, kaggle_beside=True),
                                       "img_align_celeba/img_align_celeba"),
}


def make_celeba(root: Path, layout: str) -> tuple[pd.DataFrame, Path]:
    writer, image_folder = CELEBA_LAYOUTS[layout]
    table = celeba_table()
    writer(root, table)
    write_celeba_images(root / image_folder, table)
    return table, root / image_folder


@pytest.mark.parametrize("layout", sorted(CELEBA_LAYOUTS))
def test_celeba_rows(tmp_path, layout):
    table, image_folder = make_celeba(tmp_path / "celeba", layout)
    manifest = build("celeba", tmp_path / "celeba", class_balance="none")  # the published splits, as read
    assert rows_of(manifest) == celeba_expected(table, image_folder)
    sizes = manifest.groupby(["split", "group"]).size()
    assert sizes[("train", "blond_male")] == 1 and sizes[("train", "non_blond_female")] == 3
    assert sizes[("test", "non_blond_female")] == 2 and sizes.sum() == len(table)


def test_celeba_official_archive_subfolders(tmp_path):
    """The official download: Anno/, Eval/, Img/img_align_celeba/."""
    root = tmp_path / "CelebA"
    table = celeba_table()
    write_published(root / "Anno", table)
    (root / "Eval").mkdir()
    (root / "Anno" / "list_eval_partition.txt").rename(root / "Eval" / "list_eval_partition.txt")
    write_celeba_images(root / "Img" / "img_align_celeba", table)
    manifest = build("celeba", root, class_balance="none")
    assert rows_of(manifest) == celeba_expected(table, root / "Img" / "img_align_celeba")


def test_celeba_partition_in_another_order(tmp_path):
    table, image_folder = make_celeba(tmp_path, "published")
    lines = (tmp_path / "list_eval_partition.txt").read_text().splitlines()
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(reversed(lines)) + "\n")
    assert rows_of(build("celeba", tmp_path, class_balance="none")) == celeba_expected(table, image_folder)


def test_celeba_other_attributes(tmp_path):
    """Any attribute pair: the spurious names become <attr> / not_<attr>."""
    table = celeba_table()
    # the plan's groups under other names (random values would leave a training group out of val or test)
    table["Eyeglasses"], table["Young"] = table["Blond_Hair"], -table["Male"]
    write_mirror(tmp_path, table)
    write_celeba_images(tmp_path / "img_align_celeba", table)
    manifest = build("celeba", tmp_path, classes=["no_glasses", "glasses"],
                     celeba={"label_attribute": "Eyeglasses", "spurious_attribute": "Young"})
    row = manifest.set_index("sample_id").loc["000001"]
    source = table.set_index("image_id").loc["000001.jpg"]
    assert row["y"] == int(source["Eyeglasses"] == 1)
    assert row["spurious"] == ("young" if source["Young"] == 1 else "not_young")
    assert row["group"] == f"{row['class_name']}_{row['spurious']}"


def test_celeba_missing_root(tmp_path):
    with pytest.raises(DDBError, match=r"root of the celeba dataset .*: the dataset root does not exist"):
        build("celeba", tmp_path / "nowhere")


def test_celeba_no_metadata(tmp_path):
    write_celeba_images(tmp_path / "img_align_celeba", celeba_table())
    with pytest.raises(DDBError, match=r"list_attr_celeba.txt: no CelebA metadata file found"):
        build("celeba", tmp_path)


def test_celeba_missing_partition_file(tmp_path):
    make_celeba(tmp_path, "published")
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(DDBError, match=r"list_eval_partition.txt: the CelebA partition file does not exist"):
        build("celeba", tmp_path)


def test_celeba_missing_image_folder(tmp_path):
    write_published(tmp_path, celeba_table())
    with pytest.raises(DDBError, match=r"img_align_celeba: the CelebA image folder does not exist"):
        build("celeba", tmp_path)


@pytest.mark.parametrize("layout", ["published", "mirror", "single_csv"])
def test_celeba_misspelt_attribute_in_config(tmp_path, layout):
    make_celeba(tmp_path, layout)
    with pytest.raises(DDBError, match=r"no attribute 'Blonde_Hair' \(did you mean 'Blond_Hair'\?\) "
                                       r"\(the config's celeba.label_attribute\)"):
        build("celeba", tmp_path, celeba={"label_attribute": "Blonde_Hair"})


def test_celeba_misspelt_partition_column(tmp_path):
    make_celeba(tmp_path, "mirror")
    text = (tmp_path / "list_eval_partition.csv").read_text()
    (tmp_path / "list_eval_partition.csv").write_text(text.replace("partition", "partiton", 1))
    with pytest.raises(DDBError, match=r"list_eval_partition.csv: no column 'partition' \(did you mean 'partiton'\?\)"):
        build("celeba", tmp_path)


def test_celeba_misspelt_split_column_of_single_csv(tmp_path):
    make_celeba(tmp_path, "single_csv")
    text = (tmp_path / "metadata.csv").read_text()
    (tmp_path / "metadata.csv").write_text(text.replace(",split", ",splits", 1))
    with pytest.raises(DDBError, match=r"metadata.csv: no column 'split' \(did you mean 'splits'\?\)"):
        build("celeba", tmp_path)


def test_celeba_attribute_value_out_of_range(tmp_path):
    make_celeba(tmp_path, "published")
    path = tmp_path / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    fields = lines[4].split()
    fields[1 + CELEBA_ATTRIBUTES.index("Male")] = "2"
    lines[4] = fields[0] + " " + " ".join(f"{value:>2}" for value in fields[1:])  # keep the alignment
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DDBError, match=r"list_attr_celeba.txt: column 'Male', line 5 \(image_id '000003.jpg'\): "
                                       r"2 is not one of -1 \(absent\), 0 \(absent\), 1 \(present\)"):
        build("celeba", tmp_path)


def test_celeba_attribute_mixing_minus_one_and_zero(tmp_path):
    table, _ = make_celeba(tmp_path, "mirror")
    table.loc[2, "Blond_Hair"] = 0
    table[["image_id", *CELEBA_ATTRIBUTES]].to_csv(tmp_path / "list_attr_celeba.csv", index=False)
    with pytest.raises(DDBError, match=r"column 'Blond_Hair' mixes -1 and 0 \(first 0 on line 4\)"):
        build("celeba", tmp_path)


def test_celeba_partition_out_of_range(tmp_path):
    make_celeba(tmp_path, "published")
    path = tmp_path / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    lines[6] = lines[6].split()[0] + " 3"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DDBError, match=r"list_eval_partition.txt: column 'partition', line 7 "
                                       r"\(image_id '000007.jpg'\): "
                                       r"3 is not one of 0 \(train\), 1 \(val\), 2 \(test\)"):
        build("celeba", tmp_path)


def test_celeba_split_word_out_of_range(tmp_path):
    table, _ = make_celeba(tmp_path, "single_csv_split_words")
    text = (tmp_path / "metadata.csv").read_text()
    (tmp_path / "metadata.csv").write_text(text.replace(",val\n", ",dev\n", 1))
    with pytest.raises(DDBError, match=r"column 'split', line \d+ \(image_id '\d+.jpg'\): 'dev' is not one of"):
        build("celeba", tmp_path)


def test_celeba_count_line_disagrees(tmp_path):
    make_celeba(tmp_path, "published")
    path = tmp_path / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n")  # a truncated download
    with pytest.raises(DDBError, match=r"line 1 declares 18 images but the file lists 16"):
        build("celeba", tmp_path)


def test_celeba_partition_lists_other_images(tmp_path):
    make_celeba(tmp_path, "published")
    path = tmp_path / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[1:] + ["999999.jpg 0"]) + "\n")
    with pytest.raises(DDBError, match=r"list_attr_celeba.txt: 1 image\(s\) listed here are not in "
                                       r"list_eval_partition.txt: \['000001.jpg'\]"):
        build("celeba", tmp_path)


@pytest.mark.parametrize("layout", ["published", "mirror", "single_csv"])
def test_celeba_duplicated_image_id(tmp_path, layout):
    table, _ = make_celeba(tmp_path, layout)
    table.loc[5, "image_id"] = table.loc[2, "image_id"]
    CELEBA_LAYOUTS[layout][0](tmp_path, table)
    with pytest.raises(DDBError, match=r"duplicated image_id: '000003.jpg' \(line \d\), '000003.jpg' \(line \d\)"):
        build("celeba", tmp_path)


@pytest.mark.parametrize("layout", ["published", "mirror_nested", "single_csv"])
def test_celeba_image_listed_but_absent(tmp_path, layout):
    _, image_folder = make_celeba(tmp_path, layout)
    (image_folder / "000004.jpg").unlink()
    (image_folder / "000009.jpg").unlink()
    with pytest.raises(DDBError, match=r"2 image\(s\) listed here are not in .*img_align_celeba: "
                                       r"'000004.jpg', '000009.jpg'"):
        build("celeba", tmp_path)


def test_celeba_truncated_image_with_check_images(tmp_path):
    _, image_folder = make_celeba(tmp_path, "mirror")
    truncate(image_folder / "000011.jpg")
    build("celeba", tmp_path)  # names only: a truncated file passes
    with pytest.raises(DDBError, match=r"000011.jpg: the image cannot be read"):
        build("celeba", tmp_path, check_images=True)


def test_celeba_reweight_option_leaves_manifest_unchanged(tmp_path):
    make_celeba(tmp_path, "published")
    plain = build("celeba", tmp_path, class_balance="none")
    balanced = build("celeba", tmp_path, class_balance="reweight")
    pd.testing.assert_frame_equal(plain, balanced)


# ------------------------------------------------------------------------------------------------ MetaShift

METASHIFT_PLAN = {"train": {"cat": {"sofa": 3, "bed": 2}, "dog": {"bench": 2, "bike": 3}},
                  "test": {"cat": {"shelf": 7}, "dog": {"shelf": 13}}}


def make_metashift(root: Path) -> list[dict]:
    """Folders train/cat/cat(sofa)/... with Visual-Genome-like numeric file names; expected rows (val as test)."""
    rows, number = [], 2300000
    for split, classes in METASHIFT_PLAN.items():
        for y, (class_name, contexts) in enumerate(classes.items()):
            for context, count in contexts.items():
                for _ in range(count):
                    number += 17
                    path = root / split / class_name / f"{class_name}({context})" / f"{number}.jpg"
                    write_image(path, number)
                    rows.append({"sample_id": f"{split}_{class_name}_{context}_{number}", "path": str(path),
                                 "split": split, "y": y, "class_name": class_name, "spurious": context,
                                 "group": f"{class_name}_{context}"})
    return rows


def test_metashift_rows_and_stratified_val(tmp_path):
    expected = make_metashift(tmp_path)
    manifest = build("metashift", tmp_path, metashift={"val_split": "stratified"})
    # val rows came from test: compare with the split folded back, then check the draw itself
    folded = manifest.assign(split=manifest["split"].replace({"val": "test"}))
    assert sorted_rows(rows_of(folded)) == sorted_rows(expected)
    val = manifest[manifest["split"] == "val"]
    # 15 % of each test group, rounded: cat(shelf) 7 -> 1, dog(shelf) 13 -> 2; train untouched
    assert val.groupby("group").size().to_dict() == {"cat_shelf": 1, "dog_shelf": 2}
    assert manifest.groupby("split").size().to_dict() == {"test": 17, "train": 10, "val": 3}
    assert set(val["sample_id"]) <= {row["sample_id"] for row in expected if row["split"] == "test"}


def test_metashift_val_fraction_option(tmp_path):
    make_metashift(tmp_path)
    manifest = build("metashift", tmp_path, metashift={"val_fraction": 0.3, "val_split": "stratified"})
    val = manifest[manifest["split"] == "val"]
    assert val.groupby("group").size().to_dict() == {"cat_shelf": 2, "dog_shelf": 4}


def test_metashift_val_is_deterministic_and_seeded(tmp_path):
    make_metashift(tmp_path)

    def val_ids(**options):
        manifest = build("metashift", tmp_path, metashift=options)
        return sorted(manifest.loc[manifest["split"] == "val", "sample_id"])

    assert val_ids(val_seed=0) == val_ids(val_seed=0) == val_ids()
    assert val_ids(val_seed=0) != val_ids(val_seed=1)
    # the global seed does not move the split: results of several seeds share one val set
    cfg = dataset_cfg("metashift", tmp_path)
    assert build_manifest("x", cfg, seed=0).equals(build_manifest("x", cfg, seed=5))


def test_metashift_nested_folder(tmp_path):
    expected = make_metashift(tmp_path / "MetaDatasetCatDog")
    manifest = build("metashift", tmp_path)
    assert len(manifest) == len(expected) and manifest["path"].str.contains("MetaDatasetCatDog").all()


def test_metashift_missing_split_folder(tmp_path):
    make_metashift(tmp_path)
    (tmp_path / "test").rename(tmp_path / "tset")
    with pytest.raises(DDBError, match=r"test: the MetaShift split folder does not exist"):
        build("metashift", tmp_path)


def test_metashift_misspelt_class_folder(tmp_path):
    make_metashift(tmp_path)
    (tmp_path / "train" / "dog").rename(tmp_path / "train" / "dgo")
    with pytest.raises(DDBError, match=r"dgo: folder 'dgo' is not a class of the config \['cat', 'dog'\] "
                                       r"\(did you mean 'dog'\?\)"):
        build("metashift", tmp_path)


def test_metashift_badly_named_group_folder(tmp_path):
    make_metashift(tmp_path)
    (tmp_path / "train" / "cat" / "cat(bed)").rename(tmp_path / "train" / "cat" / "cat_bed")
    with pytest.raises(DDBError, match=r"cat_bed: expected a folder named cat\(<context>\)"):
        build("metashift", tmp_path)


def test_metashift_non_image_file(tmp_path):
    make_metashift(tmp_path)
    (tmp_path / "train" / "cat" / "cat(sofa)" / "notes.txt").write_text("x")
    (tmp_path / "train" / "cat" / "cat(sofa)" / ".DS_Store").write_text("x")  # ignored, as Finder makes them
    with pytest.raises(DDBError, match=r"notes.txt: not an image"):
        build("metashift", tmp_path)


def test_metashift_corrupt_image_with_check_images(tmp_path):
    expected = make_metashift(tmp_path)
    truncate(Path(expected[0]["path"]))
    with pytest.raises(DDBError, match=rf"{Path(expected[0]['path']).name}: the image cannot be read"):
        build("metashift", tmp_path, check_images=True)


def test_metashift_duplicated_ids(tmp_path):
    expected = make_metashift(tmp_path)
    first = Path(expected[0]["path"])
    write_image(first.with_suffix(".png"))  # 2300017.jpg and 2300017.png: one id
    with pytest.raises(DDBError, match=r"files share a sample id"):
        build("metashift", tmp_path)


# ------------------------------------------------------------------------------------------------ ImageNet

BEE, COCKROACH = "n02206856", "n02233338"


def make_imagenet(root: Path) -> list[dict]:
    rows = []
    for y, (class_name, wnid) in enumerate([("bee", BEE), ("cockroach", COCKROACH)]):
        for number in range(10):
            path = root / "train" / wnid / f"{wnid}_{1000 + number}.JPEG"
            write_image(path, number)
            rows.append({"sample_id": f"imagenet_{wnid}_{1000 + number}", "path": str(path), "split": "train",
                         "y": y, "class_name": class_name, "spurious": "imagenet", "group": f"{class_name}_imagenet"})
        for number in range(3 if y == 0 else 2):
            # ImageNet-A's file names: the score and the wrongly predicted class, with spaces
            name = f"0.00{number}116_digital clock _ digital clock_0.86566{y}.jpg"
            path = root / "imagenet-a" / wnid / name
            write_image(path, number)
            sample_id = f"imagenet_a_0_00{number}116_digital_clock___digital_clock_0_86566{y}"
            rows.append({"sample_id": sample_id, "path": str(path), "split": "test", "y": y,
                         "class_name": class_name, "spurious": "imagenet_a", "group": f"{class_name}_imagenet_a"})
    write_image(root / "train" / "n01440764" / "n01440764_1.JPEG")  # another ImageNet class: ignored
    return rows


def test_imagenet_rows_and_val(tmp_path):
    expected = make_imagenet(tmp_path)
    manifest = build("imagenet", tmp_path)
    folded = manifest.assign(split=manifest["split"].replace({"val": "train"}))
    assert sorted_rows(rows_of(folded)) == sorted_rows(expected)
    sizes = manifest.groupby(["split", "group"]).size().to_dict()
    assert sizes == {("test", "bee_imagenet_a"): 3, ("test", "cockroach_imagenet_a"): 2,
                     ("train", "bee_imagenet"): 9, ("train", "cockroach_imagenet"): 9,
                     ("val", "bee_imagenet"): 1, ("val", "cockroach_imagenet"): 1}
    again = build("imagenet", tmp_path)
    other = build("imagenet", tmp_path, imagenet={"val_seed": 3})
    val = lambda m: sorted(m.loc[m["split"] == "val", "sample_id"])  # noqa: E731
    assert val(manifest) == val(again) and val(manifest) != val(other)


def test_imagenet_sources_stored_apart(tmp_path):
    expected = make_imagenet(tmp_path / "everything")
    manifest = build("imagenet", tmp_path / "everything" / "train", imagenet={
        "train_dir": ".", "test_dir": str(tmp_path / "everything" / "imagenet-a")})
    assert sorted(manifest["path"]) == sorted(row["path"] for row in expected)


def test_imagenet_missing_test_source(tmp_path):
    make_imagenet(tmp_path)
    with pytest.raises(DDBError, match=r"imagenet-adv: the imagenet_a folder \(test source\) does not exist\n"
                                       r"  fix: set imagenet.test_dir"):
        build("imagenet", tmp_path, imagenet={"test_dir": "imagenet-adv"})


def test_imagenet_missing_class_folder(tmp_path):
    make_imagenet(tmp_path)
    shutil.rmtree(tmp_path / "imagenet-a" / COCKROACH)
    with pytest.raises(DDBError, match=rf"imagenet-a/{COCKROACH}: the imagenet_a folder of class 'cockroach'"):
        build("imagenet", tmp_path)


def test_imagenet_class_without_wnid(tmp_path):
    make_imagenet(tmp_path)
    with pytest.raises(DDBError, match=r"imagenet.wnids: no WordNet id for class 'cockroach'"):
        build("imagenet", tmp_path, imagenet={"wnids": {"bee": BEE, "cockroaches": COCKROACH}})


def test_imagenet_corrupt_image_with_check_images(tmp_path):
    expected = make_imagenet(tmp_path)
    broken = Path(expected[-1]["path"])
    truncate(broken)
    with pytest.raises(DDBError, match="the image cannot be read"):
        build("imagenet", tmp_path, check_images=True)


# ------------------------------------------------------------------------------------------------ every format

@pytest.mark.parametrize("fmt", ["waterbirds", "celeba", "metashift", "imagenet"])
def test_missing_root(tmp_path, fmt):
    with pytest.raises(DDBError, match=rf"root of the {fmt} dataset \(.*nowhere\): the dataset root does not exist"):
        build(fmt, tmp_path / "nowhere")


def test_class_balanced_weights():
    rows = pd.DataFrame({"y": [0, 0, 0, 1, 0, 1]})
    weights = class_balanced_weights(rows)
    assert np.allclose(weights, [0.25, 0.25, 0.25, 0.5, 0.25, 0.5])
    # each class is drawn with the same total probability
    assert np.isclose(weights[rows["y"] == 0].sum(), weights[rows["y"] == 1].sum())
    assert class_balanced_weights(rows.iloc[:0]).shape == (0,)
    with pytest.raises(DDBError, match="no column 'y'"):
        class_balanced_weights(pd.DataFrame({"label": [0]}))


def test_paper_dataset_entries_validate():
    """config.yaml ships the four datasets with the paper's hyperparameters (docs/method.md, Table 5 of the supplementary)."""
    config = load_config(REPO / "config.yaml")
    datasets = config["datasets"]
    waterbirds, celeba, metashift, imagenet_a = (datasets[name] for name in
                                                 ("waterbirds", "celeba", "metashift", "imagenet_a"))
    assert (waterbirds["retrain"]["batch_size"], waterbirds["retrain"]["lr"], waterbirds["retrain"]["gammas"],
            waterbirds["prune"]["thresholds"]) == (32, 5e-6, [6, 10], [1, 1])
    assert (celeba["retrain"]["batch_size"], celeba["retrain"]["lr"], celeba["retrain"]["gammas"],
            celeba["prune"]["thresholds"], celeba["class_balance"]) == (64, 1e-5, [2, 7], [2, 0.3], "subsample")
    assert (metashift["retrain"]["batch_size"], metashift["retrain"]["lr"], metashift["retrain"]["gammas"],
            metashift["prune"]["thresholds"]) == (16, 5e-5, [1, 4], [0.3, 2])
    assert (imagenet_a["retrain"]["batch_size"], imagenet_a["retrain"]["lr"], imagenet_a["retrain"]["gammas"],
            imagenet_a["prune"]["enabled"]) == (32, 5e-4, [1, 1], False)
    erm = imagenet_a["erm"]
    assert (erm["optimizer"], erm["lr"], erm["batch_size"]) == ("sgd", 1e-3, 32)
    assert celeba["inpainting"]["prompt"] == "a photo of a person with {} hair"
    assert [d["masking"]["prompt"] for d in (waterbirds, celeba, metashift)] == ["bird.", "hair", "animal."]
    assert [d["textual_inversion"]["initializer_token"] for d in (waterbirds, celeba, metashift)] == \
        ["bird", "hair", "animal"]
    assert [d["format"] for d in (waterbirds, celeba, metashift, imagenet_a)] == \
        ["waterbirds", "celeba", "metashift", "imagenet"]
