"""The paper's setting on its datasets (docs/method.md, "Decisions where the paper is ambiguous"), checked from the method.

Unit tests for each decision (format defaults, minority groups, CelebA's class-balanced subsample, the
ERM checkpoints' preprocessing and the IG mask cropped like the image, generation from D_i, several draws
per source, generations at their source's size, retraining with patience, importing the paper's ERM
checkpoints)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision import transforms

from ddb.config import FORMAT_DEFAULTS, minority_group_name, validate_config
from ddb.datasets import build_manifest, format_group_table
from ddb.datasets.manifest import EXCLUDED, smallest_groups
from ddb.datasets.synthetic import draw_sample
from ddb.errors import DDBError
from ddb.models.classifier import IMAGENET_MEAN, IMAGENET_STD, build_classifier, eval_transform, import_classifier
from ddb.settings import dataset_settings
from ddb.textual_inversion import choose_images

CELEBA_NAMES = "Blond_Hair Male Young".split()
# (blond, male) -> images per split. Train: non-blond men are the smallest non-blond group, yet the paper's
# non-blond token learns from non-blond women; the non-blond class is larger than the blond one.
CELEBA_PLAN = {0: {(0, 0): 7, (0, 1): 4, (1, 0): 6, (1, 1): 3},
               1: {(0, 0): 2, (0, 1): 2, (1, 0): 2, (1, 1): 2},
               2: {(0, 0): 2, (0, 1): 2, (1, 0): 2, (1, 1): 2}}
# (y, place) -> images per split, Waterbirds-shaped (minority groups small).
WATERBIRDS_PLAN = {0: {(0, 0): 10, (0, 1): 3, (1, 0): 3, (1, 1): 8},
                   1: {(0, 0): 2, (0, 1): 2, (1, 0): 2, (1, 1): 2},
                   2: {(0, 0): 2, (0, 1): 2, (1, 0): 2, (1, 1): 2}}


def entry(fmt: str, root, **options) -> dict:
    config = {"datasets": {"x": {"format": fmt, "root": str(root), **options}}}
    return validate_config(config)["datasets"]["x"]


def picture(seed: str, y: int, background: int, width: int, height: int) -> np.ndarray:
    """A demo-style object (disk or triangle) on land or water, cropped to width x height."""
    image, _ = draw_sample(0, seed, y, ["land", "water"][background], max(width, height))
    return image[:height, :width]


def make_waterbirds(folder: Path, width: int = 40, height: int = 30) -> None:
    rows = []
    for split, groups in WATERBIRDS_PLAN.items():
        for (y, place), count in groups.items():
            for _ in range(count):
                img_id = len(rows) + 1
                name = f"{['047.American_Goldfinch', '001.Black_footed_Albatross'][y]}/bird_{img_id:04d}.jpg"
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(picture(f"wb{img_id}", y, place, width, height)).save(folder / name, quality=95)
                rows.append({"img_id": img_id, "img_filename": name, "y": y, "split": split, "place": place,
                             "place_filename": "/x/y.jpg"})
    pd.DataFrame(rows).to_csv(folder / "metadata.csv", index=False)


def make_celeba(root: Path, width: int = 36, height: int = 44) -> pd.DataFrame:
    """The published layout (list_attr_celeba.txt, list_eval_partition.txt, img_align_celeba/)."""
    rows = []
    for split, groups in CELEBA_PLAN.items():
        for (blond, male), count in groups.items():
            for _ in range(count):
                image_id = f"{len(rows) + 1:06d}.jpg"
                rows.append({"image_id": image_id, "split": split, "Blond_Hair": 1 if blond else -1,
                             "Male": 1 if male else -1, "Young": 1})
    table = pd.DataFrame(rows)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    for number, row in enumerate(table.to_dict("records")):
        Image.fromarray(picture(row["image_id"], int(row["Blond_Hair"] == 1), int(row["Male"] == 1), width,
                                height)).save(root / "img_align_celeba" / row["image_id"], quality=95)
    lines = [str(len(table)), " ".join(CELEBA_NAMES)]
    lines += [f"{r['image_id']} " + " ".join(str(r[n]) for n in CELEBA_NAMES) for r in table.to_dict("records")]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text(
        "\n".join(f"{r['image_id']} {r['split']}" for r in table.to_dict("records")) + "\n")
    return table


# ------------------------------------------------------------------------------------ settings by format

def test_format_and_root_give_the_papers_setting_and_the_demo_its_own():
    waterbirds, celeba, metashift, demo = (entry(f, "x") for f in ("waterbirds", "celeba", "metashift", "synthetic"))
    assert waterbirds["minority_groups"] == {"landbird": "water", "waterbird": "land"}
    assert celeba["minority_groups"] == {"non_blond": "female", "blond": "male"}
    assert metashift["minority_groups"] == {"cat": None, "dog": None}
    assert [e["classifier"]["transform"] for e in (waterbirds, celeba, metashift, demo)] == \
        ["resize_center_crop", "center_crop_resize", "resize_center_crop", "stretch"]
    assert [e["class_balance"] for e in (waterbirds, celeba, metashift)] == ["none", "subsample", "none"]
    for paper in (waterbirds, celeba, metashift):
        assert paper["generation"]["sources"] == "low_loss" and paper["generation"]["per_source"] == 1
        assert paper["inpainting"]["paste_back"] is False
        assert (paper["retrain"]["epochs"], paper["retrain"]["patience"]) == (200, None)
        assert (paper["masking"]["detector"], paper["masking"]["segmenter"], paper["masking"]["multimask"],
                paper["masking"]["boxes"]) == ("IDEA-Research/grounding-dino-base", "facebook/sam2.1-hiera-small",
                                               False, "first")
    # the authors' fifteen templates, the class noun after the token; the first is the inpainting prompt
    templates = [e["textual_inversion"]["templates"] for e in (waterbirds, celeba, metashift)]
    assert [len(t) for t in templates] == [15, 15, 15]
    assert [t[0] for t in templates] == [e["inpainting"]["prompt"] for e in (waterbirds, celeba, metashift)]
    assert templates[2][1] == "a cropped photo of the {} animal" and templates[0][-1] == "a good photo of a {} bird"
    assert templates[1][5] == "a photo of the cool person with {} hair"
    assert [e["inpainting"]["prompt"] for e in (waterbirds, celeba, metashift)] == \
        ["a photo of a {} bird", "a photo of a person with {} hair", "a photo of a {} animal"]
    assert (celeba["retrain"]["gammas"], celeba["prune"]["thresholds"]) == ([2, 7], [2, 0.3])  # Table 5
    assert (demo["generation"]["sources"], demo["inpainting"]["paste_back"]) == ("all", True)


def test_an_entry_overrides_its_formats_defaults_key_by_key():
    celeba = entry("celeba", "x", class_balance="reweight", retrain={"epochs": 20, "patience": 3},
                   minority_groups={"non_blond": "male", "blond": None}, low_loss={"k": [5, 7]})
    assert celeba["class_balance"] == "reweight" and celeba["minority_groups"] == {"non_blond": "male", "blond": None}
    assert (celeba["retrain"]["epochs"], celeba["retrain"]["patience"], celeba["retrain"]["lr"]) == (20, 3, 1e-5)
    assert celeba["low_loss"]["k"] == [5, 7]
    assert minority_group_name(celeba, 0) == "non_blond_male" and minority_group_name(celeba, 1) is None
    # another spurious attribute has no paper default: no minority group unless the entry names one
    young = entry("celeba", "x", celeba={"spurious_attribute": "Young"})
    assert young["minority_groups"] == {"non_blond": None, "blond": None}
    assert entry("waterbirds", "x", minority_groups=["land", None])["minority_groups"] == \
        {"landbird": "land", "waterbird": None}


@pytest.mark.parametrize("options, message", [
    ({"minority_groups": {"landbird": "water", "seabird": "land"}}, r"minority_groups: names \['seabird'\]"),
    ({"minority_groups": {"landbird": "water"}}, r"minority_groups: does not name class\(es\) \['waterbird'\]"),
    ({"minority_groups": ["water"]}, r"minority_groups: has 1 values but the dataset has 2 classes"),
    ({"low_loss": {"k": [3, 4, 5]}}, r"low_loss\.k: has 3 values but the dataset has 2 classes"),
    ({"class_balanced": True}, r"class_balanced: is no longer a key.*class_balance: reweight"),
    ({"classifier": {"transform": "squash"}}, r"classifier\.transform: 'squash' is not one of"),
])
def test_bad_paper_settings_are_named(options, message):
    with pytest.raises(DDBError, match=f"(?s){message}"):
        entry("waterbirds", "x", **options)


def test_a_minority_group_missing_from_training_is_refused_by_prepare_dataset(tmp_path):
    make_waterbirds(tmp_path / "wb")
    cfg = entry("waterbirds", tmp_path / "wb", minority_groups={"landbird": "sea", "waterbird": "land"})
    with pytest.raises(DDBError, match=r"(?s)datasets\.x\.minority_groups\.landbird: names spurious value 'sea'.*"
                                       r"\['land', 'water'\]"):
        build_manifest("x", cfg, seed=0)


# ------------------------------------------------------------------------------- minority groups, CelebA

@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    table = make_celeba(root)
    cfg = entry("celeba", root)
    return cfg, build_manifest("x", cfg, seed=0), table


def test_celeba_trains_on_a_class_balanced_subsample_and_keeps_every_row(celeba):
    cfg, manifest, table = celeba
    assert len(manifest) == len(table)  # nothing lost
    train = manifest[manifest["split"] == "train"]
    assert train.groupby("y").size().to_dict() == {0: 9, 1: 9}  # non-blond (11) drawn down to the blond count (9)
    excluded = manifest[manifest["split"] == EXCLUDED]
    assert len(excluded) == 2 and set(excluded["y"]) == {0}  # only the larger class loses rows
    # val and test are untouched
    for split, code in (("val", 1), ("test", 2)):
        assert manifest["split"].eq(split).sum() == (table["split"] == code).sum()
    # seeded: the same seed draws the same subsample, another seed another one
    again = build_manifest("x", cfg, seed=0)
    assert again["split"].tolist() == manifest["split"].tolist()
    others = [set(build_manifest("x", cfg, seed=s).query("split == @EXCLUDED")["sample_id"]) for s in range(1, 6)]
    assert any(o != set(excluded["sample_id"]) for o in others)


def test_the_group_table_shows_the_left_out_rows_and_marks_the_named_minority_groups(celeba):
    cfg, manifest, _ = celeba
    lines = {line.split()[0]: line.split()[1:] for line in format_group_table(manifest, cfg["minority_groups"])
             .splitlines()[1:]}
    header = format_group_table(manifest, cfg["minority_groups"]).splitlines()[0].split()
    assert header == ["train", "val", "test", "excluded", "minority"]
    assert lines["non_blond_female"][-2:] == ["<-", "minority"] and lines["blond_male"][-2:] == ["<-", "minority"]
    assert len(lines["non_blond_male"]) == 4 and len(lines["blond_female"]) == 4  # counts only, no mark
    assert sum(int(v) for v in lines["total"]) == len(manifest)


def test_non_blond_token_learns_from_non_blond_women_even_where_men_are_fewer(celeba):
    cfg, manifest, _ = celeba
    assert smallest_groups(manifest)[0] == "non_blond_male"  # what a smallest-group rule would have picked
    ti = replace(dataset_settings(cfg, "celeba").textual_inversion, num_images=3)
    for y, expected in ((0, "non_blond_female"), (1, "blond_male")):
        chosen = choose_images(manifest, y, ti, seed=0, name="x", minority_group=minority_group_name(cfg, y))
        assert set(chosen["group"]) == {expected} and len(chosen) == 3
        assert set(chosen["sample_id"]) <= set(manifest.loc[manifest["split"] == "train", "sample_id"])


# ------------------------------------------------------------------------------------------- preprocessing

def by_hand(*steps) -> transforms.Compose:
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


@pytest.mark.parametrize("recipe, size, width, height, expected", [
    # Waterbirds / MetaShift (DFR): Resize((256, 256)) then CenterCrop(224), scaled for other sizes
    ("resize_center_crop", 224, 300, 200, by_hand(transforms.Resize((256, 256)), transforms.CenterCrop(224))),
    ("resize_center_crop", 32, 40, 30, by_hand(transforms.Resize((36, 36)), transforms.CenterCrop(32))),
    # CelebA: CenterCrop(178) then Resize((224, 224)) on a 178 x 218 image
    ("center_crop_resize", 224, 178, 218, by_hand(transforms.CenterCrop(178), transforms.Resize((224, 224)))),
    ("resize_shorter_center_crop", 64, 90, 70, by_hand(transforms.Resize(73), transforms.CenterCrop(64))),
    ("stretch", 32, 40, 30, by_hand(transforms.Resize((32, 32)))),
])
def test_each_transform_maps_an_image_to_the_tensor_of_its_recipe_composed_by_hand(recipe, size, width, height,
                                                                                    expected):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    ours = eval_transform(size, recipe)(image)
    assert ours.shape == (3, size, size)
    torch.testing.assert_close(ours, expected(image), rtol=0, atol=0)


@pytest.mark.parametrize("recipe", ["resize_center_crop", "center_crop_resize", "resize_shorter_center_crop"])
def test_the_ig_mask_is_cropped_exactly_like_the_image(recipe):
    """A red object off-centre on black: after the transform the mask covers the red pixels; a mask stretched to
    the square (what the classifier's crop does not do) would not."""
    from ddb.ig_scoring import mask_tensor

    width, height, size = 44, 60, 32
    mask = np.zeros((height, width), bool)
    mask[2:20, 3:15] = True  # near a corner, partly outside the crop
    image = Image.fromarray(np.where(mask[..., None], [255, 0, 0], [0, 0, 0]).astype(np.uint8))
    seen = eval_transform(size, recipe)(image)
    red = (seen[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) > 0.5
    ours = mask_tensor(Image.fromarray(mask.astype(np.uint8) * 255), size, recipe)[0] > 0.5
    stretched = torch.from_numpy(np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size),
                                                                                               Image.NEAREST)) > 127)

    def iou(a, b):
        return (a & b).sum().item() / max((a | b).sum().item(), 1)

    assert ours.shape == (size, size) and red.any()
    assert iou(ours, red) > 0.85
    assert iou(stretched, red) < iou(ours, red) - 0.1


# ------------------------------------------------------------------------------------ ERM checkpoints

def test_the_papers_erm_checkpoints_load_and_a_pickled_model_is_refused_with_the_conversion(tmp_path):
    model = build_classifier("tiny", 2, None, seed=3)
    state = model.state_dict()
    torch.save(state, tmp_path / "dfr.pt")  # DFR: a plain torchvision state dict
    torch.save({f"model.{k}": v for k, v in state.items()}, tmp_path / "authors.pth")  # the DDB authors' wrapper
    for name in ("dfr.pt", "authors.pth"):
        loaded = import_classifier(tmp_path / name, "tiny", 2, "datasets.x.erm.checkpoint").state_dict()
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(DDBError, match=r"(?s)datasets\.x\.erm\.checkpoint.*whole\.pt.*pickles a whole model.*"
                                       r"torch\.save\(torch\.load\('.*whole\.pt', weights_only=False\)\.state_dict\(\), "
                                       r"'whole\.state_dict\.pt'\)"):
        import_classifier(tmp_path / "whole.pt", "tiny", 2, "datasets.x.erm.checkpoint")


# ------------------------------------------------------------------------------------- retraining schedule

def test_retraining_stops_after_patience_epochs_without_a_better_val_wga_and_keeps_the_best(tmp_path, monkeypatch):
    import ddb.retrain as retrain_module
    from test_step_computations import retrain_cfg, tiny_manifest

    scores = iter([0.4, 0.6, 0.5, 0.55, 0.9, 0.95])

    def fake_evaluate(*args, **kwargs):
        wga = next(scores)
        return {"worst_group_accuracy": wga, "mean_accuracy": wga}, None

    monkeypatch.setattr(retrain_module, "evaluate_groups", fake_evaluate)
    manifest = tiny_manifest(tmp_path)
    model = build_classifier("tiny", 2, None, seed=0)
    _, history = retrain_module.retrain(model, manifest, {}, dataset_settings(retrain_cfg(epochs=6, patience=2), "d"),
                                        seed=0, device="cpu")
    assert history["epoch"].tolist() == [1, 2, 3, 4]  # epochs 3 and 4 brought nothing better than 0.6
    assert history.loc[history["selected"], "epoch"].item() == 2
    scores = iter([0.4, 0.6, 0.5, 0.55, 0.9, 0.95])
    _, history = retrain_module.retrain(model, manifest, {}, dataset_settings(retrain_cfg(epochs=6), "d"), seed=0,
                                        device="cpu")
    assert len(history) == 6 and history.loc[history["selected"], "epoch"].item() == 6  # no patience: every epoch


def test_every_format_default_is_a_valid_entry():
    for fmt in FORMAT_DEFAULTS:
        if fmt == "table":  # a sample sheet's entry reads its sheet: tests/test_table_dataset.py
            continue
        assert entry(fmt, "x")["format"] == fmt
