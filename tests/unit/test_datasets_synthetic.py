import numpy as np
from PIL import Image

from ddb.config import validate_config
from ddb.datasets import build_manifest
from ddb.datasets.manifest import group_split_table, smallest_groups
from ddb.datasets.synthetic import draw_sample, split_counts


def demo_cfg(root, **synthetic):
    config = validate_config({"datasets": {"demo": {"format": "synthetic", "root": str(root), "synthetic": synthetic}}})
    return config["datasets"]["demo"]


def test_split_counts_follow_waterbirds_proportions():
    assert split_counts(4756, [3498, 184, 56, 1018]) == [3498, 184, 56, 1018]
    counts = split_counts(400, [3498, 184, 56, 1018])
    assert sum(counts) == 400 and counts == [294, 15, 5, 86]
    assert min(split_counts(20, [3498, 184, 56, 1018])) == 1  # every group keeps at least one image


def test_manifest_groups_splits_and_masks(tmp_path):
    cfg = demo_cfg(tmp_path / "demo", n_train=400, n_val_per_group=5, n_test_per_group=7, image_size=48)
    manifest = build_manifest("demo", cfg, seed=0)
    table = group_split_table(manifest)
    assert table["train"].to_dict() == {"landbird_land": 294, "landbird_water": 15,
                                          "waterbird_land": 5, "waterbird_water": 86}
    assert set(table["val"]) == {5} and set(table["test"]) == {7}
    assert smallest_groups(manifest) == {0: "landbird_water", 1: "waterbird_land"}
    row = manifest.iloc[0]
    image, mask = np.asarray(Image.open(row["path"])), np.asarray(Image.open(row["mask_path"]))
    assert image.shape == (48, 48, 3) and mask.shape == (48, 48)
    assert set(np.unique(mask)) == {0, 255}
    # the mask is exactly the drawn object: redrawing the sample gives the same pixels
    redrawn, exact = draw_sample(0, row["sample_id"], int(row["y"]), row["spurious"], 48)
    assert np.array_equal(redrawn, image) and np.array_equal(exact, mask > 0)


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = build_manifest("demo", demo_cfg(tmp_path / "a", n_train=40), seed=3)
    b = build_manifest("demo", demo_cfg(tmp_path / "b", n_train=40), seed=3)
    c = build_manifest("demo", demo_cfg(tmp_path / "c", n_train=40), seed=4)
    first = lambda m: open(m.iloc[0]["path"], "rb").read()
    assert first(a) == first(b) and first(a) != first(c)
    assert a.drop(columns=["path", "mask_path"]).equals(b.drop(columns=["path", "mask_path"]))


def test_object_shape_is_the_class_and_background_the_spurious_attribute():
    disk_image, disk = draw_sample(0, "x", 0, "water", 64)
    triangle_image, triangle = draw_sample(0, "x", 1, "land", 64)
    assert disk.sum() > 0 and triangle.sum() > 0
    # water is blue, land is green, away from the object
    assert disk_image[~disk].mean(0)[2] > disk_image[~disk].mean(0)[1]
    assert triangle_image[~triangle].mean(0)[1] > triangle_image[~triangle].mean(0)[2]
