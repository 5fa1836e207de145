"""A requested dataset's data are checked before anything is planned (ddb.datasets.roots): each format's
``check_root`` on a tree with its layout's key files (passes) and without one of them (the message names the
missing path, where to download and the docs section)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_datasets import (BEE, COCKROACH, dataset_cfg, make_celeba, make_imagenet, make_metashift,
                                make_waterbirds)

from ddb.datasets.roots import check_recorded_roots, check_requested_roots, check_root, requested_datasets
from ddb.errors import DDBError

WATERBIRDS_SOURCE = "https://nlp.stanford.edu/data/dro/waterbird_complete95_forest2water2.tar.gz"


def check_error(fmt: str, root: Path, **options) -> str:
    with pytest.raises(DDBError) as caught:
        check_root("x", dataset_cfg(fmt, root, **options))
    return str(caught.value)


# ---- Waterbirds -------------------------------------------------------------------------------------

@pytest.fixture
def waterbirds(tmp_path) -> Path:
    folder = tmp_path / "data" / "waterbird_complete95_forest2water2"
    make_waterbirds(folder)
    return folder


@pytest.mark.parametrize("point_at_parent", [False, True])
def test_waterbirds_with_its_key_files_passes(waterbirds, point_at_parent):
    check_root("x", dataset_cfg("waterbirds", waterbirds.parent if point_at_parent else waterbirds))


def test_waterbirds_missing_root_names_the_archive_and_the_docs(tmp_path):
    root = tmp_path / "data" / "waterbird_complete95_forest2water2"
    message = check_error("waterbirds", root)
    assert message.startswith(f"{root}: the dataset root does not exist (datasets.x.root)")
    assert WATERBIRDS_SOURCE in message
    assert f"tar -xzf waterbird_complete95_forest2water2.tar.gz -C {root.parent}" in message
    assert 'docs/datasets.md, "Waterbirds"' in message


def test_waterbirds_without_metadata(waterbirds):
    (waterbirds / "metadata.csv").unlink()
    message = check_error("waterbirds", waterbirds)
    assert message.startswith(f"{waterbirds / 'metadata.csv'}: the Waterbirds metadata file is neither here nor in "
                              "waterbird_complete95_forest2water2/ or waterbirds_v1.0/")
    assert f"(datasets.x.root: {waterbirds})" in message and WATERBIRDS_SOURCE in message


def test_waterbirds_without_image_folders(waterbirds):
    for folder in waterbirds.iterdir():
        if folder.is_dir():
            shutil.rmtree(folder)
    (waterbirds / "segmentations").mkdir()  # CUB's masks are no image folder
    message = check_error("waterbirds", waterbirds)
    assert message.startswith(f"{waterbirds}: no image folder (001.Black_footed_Albatross/ ...) beside metadata.csv")


# ---- CelebA -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["published", "mirror", "mirror_nested", "authors",
                                    "authors_with_kaggle_attributes"])
def test_celeba_each_layout_with_its_key_files_passes(tmp_path, layout):
    make_celeba(tmp_path, layout)
    check_root("x", dataset_cfg("celeba", tmp_path))


def test_celeba_missing_root(tmp_path):
    message = check_error("celeba", tmp_path / "celeba")
    assert message.startswith(f"{tmp_path / 'celeba'}: the dataset root does not exist")
    assert "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html" in message and 'docs/datasets.md, "CelebA"' in message


def test_celeba_without_any_metadata_file(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    message = check_error("celeba", tmp_path)
    assert message.startswith(f"{tmp_path / 'list_attr_celeba.txt'}: no CelebA metadata file: neither "
                              "list_attr_celeba.txt (official), list_attr_celeba.csv (Kaggle) nor one CSV")


@pytest.mark.parametrize("layout, partition", [("published", "list_eval_partition.txt"),
                                               ("mirror", "list_eval_partition.csv")])
def test_celeba_without_its_partition_file(tmp_path, layout, partition):
    make_celeba(tmp_path, layout)
    (tmp_path / partition).unlink()
    message = check_error("celeba", tmp_path)
    assert message.startswith(f"{tmp_path / partition}: the CelebA partition file is missing beside list_attr_celeba")


@pytest.mark.parametrize("layout", ["published", "authors"])
def test_celeba_without_its_image_folder(tmp_path, layout):
    make_celeba(tmp_path, layout)
    shutil.rmtree(tmp_path / "img_align_celeba")
    message = check_error("celeba", tmp_path)
    assert message.startswith(f"{tmp_path / 'img_align_celeba'}: the CelebA image folder does not exist")
    assert 'docs/datasets.md, "CelebA"' in message


# ---- MetaShift --------------------------------------------------------------------------------------

@pytest.mark.parametrize("nested", [False, True])
def test_metashift_with_its_folders_passes(tmp_path, nested):
    make_metashift(tmp_path / "MetaDatasetCatDog" if nested else tmp_path)
    check_root("x", dataset_cfg("metashift", tmp_path))


def test_metashift_without_test_folder(tmp_path):
    make_metashift(tmp_path)
    shutil.rmtree(tmp_path / "test")
    message = check_error("metashift", tmp_path)
    assert message.startswith(f"{tmp_path / 'test'}: the MetaShift split folder does not exist (nor in "
                              "MetaDatasetCatDog/)")
    assert "1WySOxBRkxAUlSokgZrC-0JaWZwcG5UMT" in message and 'docs/datasets.md, "MetaShift"' in message


def test_metashift_without_a_class_folder(tmp_path):
    make_metashift(tmp_path)
    shutil.rmtree(tmp_path / "train" / "dog")
    message = check_error("metashift", tmp_path)
    assert message.startswith(f"{tmp_path / 'train' / 'dog'}: the train folder of class 'dog' does not exist")


# ---- ImageNet / ImageNet-A --------------------------------------------------------------------------

def test_imagenet_with_its_class_folders_passes(tmp_path):
    make_imagenet(tmp_path)
    check_root("x", dataset_cfg("imagenet", tmp_path))


@pytest.mark.parametrize("folder, wnid, source", [("train", COCKROACH, "https://image-net.org/download.php"),
                                                  ("imagenet-a", BEE, "imagenet-a.tar")])
def test_imagenet_without_a_class_folder(tmp_path, folder, wnid, source):
    make_imagenet(tmp_path)
    shutil.rmtree(tmp_path / folder / wnid)
    message = check_error("imagenet", tmp_path)
    assert message.startswith(f"{tmp_path / folder / wnid}: the ")
    assert source in message and 'docs/datasets.md, "ImageNet-A"' in message


def test_the_drawn_demo_needs_no_data(tmp_path):
    check_root("demo", dataset_cfg("synthetic", tmp_path / "not-drawn-yet"))


# ---- which datasets a request needs -----------------------------------------------------------------

@pytest.mark.parametrize("targets, expected", [
    ([], ["demo"]),                                                  # `snakemake`: the `all` rule
    (["results/waterbirds/eval.json"], ["waterbirds"]),
    (["results/waterbirds/seed-3/erm/model.pt", "results/celeba/data/manifest.parquet"], ["waterbirds", "celeba"]),
    (["visualize_all"], ["demo"]),                                   # a rule name builds the config's targets
    (["results/logs/prepare_dataset/celeba.log"], ["demo"]),        # no dataset's run folder
])
def test_requested_datasets(targets, expected):
    names = ["demo", "waterbirds", "celeba"]
    assert requested_datasets(targets, results="results", datasets=names, default=["demo"]) == expected


def test_check_requested_roots_checks_the_datasets_the_targets_need(tmp_path):
    datasets = {"demo": dataset_cfg("synthetic", tmp_path / "synthetic"),
                "waterbirds": dataset_cfg("waterbirds", tmp_path / "missing")}
    check_requested_roots([], results="results", datasets=datasets, default=["demo"])
    with pytest.raises(DDBError) as caught:
        check_requested_roots(["results/waterbirds/eval.json"], results="results", datasets=datasets, default=["demo"])
    assert str(caught.value).startswith(f"{tmp_path / 'missing'}: the dataset root does not exist "
                                        f"(datasets.waterbirds.root)")


# ---- results of one results folder come from one root of each dataset ------------------------------------

def test_results_made_from_another_root_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "birds").mkdir(parents=True)
    recorded = tmp_path / "results" / "waterbirds" / "seed-1" / "data" / "root.txt"
    recorded.parent.mkdir(parents=True)
    recorded.write_text("data/birds\n")
    runs = {"waterbirds": {"root": "data/other"}, "waterbirds/seed-1": {"root": "data/other"}}
    with pytest.raises(DDBError) as caught:
        check_recorded_roots("results", runs)
    assert str(caught.value) == (
        "results/waterbirds/seed-1/data/root.txt: results of dataset 'waterbirds/seed-1' were made from root "
        "'data/birds', but the config now says 'data/other'\n  fix: use another results folder (config key "
        "`results`), or rerun with --config allow_root_change=True (capital T: Snakemake reads `true` as text) to "
        "rebuild them from the new root")
    check_recorded_roots("results", runs, allow_change=True)
    # the same folder spelled another way is the same root
    check_recorded_roots("results", {"waterbirds/seed-1": {"root": str(tmp_path / "data" / "birds")}})
    check_recorded_roots("results", {"demo": {"root": "anything"}})  # nothing recorded yet
