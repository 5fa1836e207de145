"""Hardening for shared clusters, in process: degenerate data refused before any model trains, source files
found without reading them, prompt placeholders, and job fingerprints that name the device and thread count."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from helpers import REPO, small_config


def waterbirds_tree(folder: Path, segmentations: bool) -> None:
    from test_datasets import make_waterbirds, write_image

    expected = make_waterbirds(folder)
    if segmentations:  # CUB's masks in the dataset folder: the manifest gets mask_path
        for row in expected:
            write_image(folder / "segmentations" / Path(row["path"]).relative_to(folder).with_suffix(".png"))


def test_source_files_of_each_format_are_found_without_reading_them(tmp_path, monkeypatch):
    from test_datasets import dataset_cfg, make_celeba, make_imagenet, make_metashift

    from ddb.datasets import source_paths

    monkeypatch.chdir(tmp_path)
    waterbirds_tree(Path("wbirds/waterbird_complete95_forest2water2"), segmentations=True)
    assert source_paths(dataset_cfg("waterbirds", Path("wbirds"))) == [
        "wbirds/waterbird_complete95_forest2water2/metadata.csv",
        "wbirds/waterbird_complete95_forest2water2/001.Black_footed_Albatross",
        "wbirds/waterbird_complete95_forest2water2/047.American_Goldfinch",
        "wbirds/waterbird_complete95_forest2water2/segmentations",
        "wbirds/waterbird_complete95_forest2water2/segmentations/001.Black_footed_Albatross",
        "wbirds/waterbird_complete95_forest2water2/segmentations/047.American_Goldfinch"]

    for layout, files in (("published", ["list_attr_celeba.txt", "list_eval_partition.txt"]),
                          ("mirror", ["list_attr_celeba.csv", "list_eval_partition.csv"])):
        make_celeba(Path(layout), layout)
        found = source_paths(dataset_cfg("celeba", Path(layout)))
        assert [Path(p).name for p in found] == [*files, "img_align_celeba"]  # the folder, never its images

    make_metashift(Path("metashift"))
    found = source_paths(dataset_cfg("metashift", Path("metashift")))
    assert "metashift/train/cat/cat(sofa)" in found and "metashift/test/dog/dog(shelf)" in found
    assert all(Path(p).is_dir() for p in found)

    make_imagenet(Path("imagenet"))
    cfg = dataset_cfg("imagenet", Path("imagenet"))
    assert source_paths(cfg) == [f"imagenet/{d}/{w}" for d in (cfg["imagenet"]["train_dir"], cfg["imagenet"]["test_dir"])
                                 for w in (cfg["imagenet"]["wnids"]["bee"], cfg["imagenet"]["wnids"]["cockroach"])]

    assert source_paths(dataset_cfg("waterbirds", Path("absent"))) == []  # prepare_dataset says why
    assert source_paths(dataset_cfg("synthetic", Path("drawn"))) == []


# ---- degenerate data is refused before any model trains


def waterbirds_manifest(folder: Path, *edits: tuple[int, str, int], **options):
    """build_manifest of a tiny Waterbirds tree (every group in every split) after ``edits`` of
    metadata.csv, each (line, column, value)."""
    from test_datasets import build, edit_metadata, make_waterbirds

    make_waterbirds(folder)
    for line, column, value in edits:
        edit_metadata(folder, line, column, value)
    return build("waterbirds", folder, **options)


def metadata_lines(folder: Path, split: int, y: int | None = None, place: int | None = None) -> list[int]:
    import pandas as pd

    table = pd.read_csv(folder / "metadata.csv")
    chosen = (table["split"] == split) & (True if y is None else table["y"] == y) & \
        (True if place is None else table["place"] == place)
    return [int(i) + 2 for i in table.index[chosen]]


def test_empty_split_is_refused(tmp_path):
    from test_datasets import make_waterbirds

    from ddb.errors import DDBError

    make_waterbirds(tmp_path / "probe")
    val = metadata_lines(tmp_path / "probe", split=1)
    with pytest.raises(DDBError) as error:
        waterbirds_manifest(tmp_path / "wb", *((line, "split", 0) for line in val))  # val folded into train
    message = str(error.value)
    assert "dataset 'x' (waterbirds at" in message and "split 'val' has no image (train 11, val 0, test 6)" in message
    assert "fix: check the `split`, `y` and `place` columns of metadata.csv" in message


def test_class_with_no_image_in_a_split_is_refused(tmp_path):
    from test_datasets import make_waterbirds

    from ddb.errors import DDBError

    make_waterbirds(tmp_path / "probe")
    waterbirds_in_test = metadata_lines(tmp_path / "probe", split=2, y=1)
    with pytest.raises(DDBError, match=r"class 'waterbird' has no test image \(test: landbird 6, waterbird 0\)"):
        waterbirds_manifest(tmp_path / "wb", *((line, "y", 0) for line in waterbirds_in_test))


def test_training_group_missing_from_test_is_refused(tmp_path):
    from test_datasets import make_waterbirds

    from ddb.errors import DDBError

    make_waterbirds(tmp_path / "probe")
    (line,) = metadata_lines(tmp_path / "probe", split=2, y=1, place=0)  # the one waterbird on land in test
    with pytest.raises(DDBError) as error:
        waterbirds_manifest(tmp_path / "wb", (line, "place", 1))
    assert ("1 group(s) of the training split have no test image: 'waterbird_land' (1 training images); "
            "worst-group accuracy would leave them out without a word") in str(error.value)


def test_only_the_training_split_counts_not_the_rows_a_subsample_left_out():
    import pandas as pd

    from ddb.datasets.manifest import EXCLUDED, check_group_coverage, check_splits
    from ddb.errors import DDBError

    rows = [("a", "a_x", split) for split in ("train", "val", "test")] + \
           [("b", "b_x", split) for split in ("train", "val", "test")] + [("b", "b_y", EXCLUDED)]
    manifest = pd.DataFrame(rows, columns=["class_name", "group", "split"])
    check_splits(manifest, ["a", "b"], "d", "fix")
    check_group_coverage(manifest, ("val", "test"), "d", "fix")  # b_y was only left out of training: fine
    trained = manifest.replace({EXCLUDED: "train"})
    with pytest.raises(DDBError, match="'b_y' \\(1 training images\\)"):
        check_group_coverage(trained, ("val", "test"), "d", "fix")
    only_excluded = manifest[~((manifest["class_name"] == "b") & (manifest["split"] == "train"))]
    with pytest.raises(DDBError, match=r"class 'b' has no train image \(train: a 1, b 0\)"):
        check_splits(only_excluded, ["a", "b"], "d", "fix")


def test_metashift_and_imagenet_test_groups_differ_from_training_by_design(tmp_path):
    from test_datasets import build, make_imagenet, make_metashift

    assert set(build("metashift", _made(make_metashift, tmp_path / "m"))["split"]) == {"train", "val", "test"}
    assert set(build("imagenet", _made(make_imagenet, tmp_path / "i"))["split"]) == {"train", "val", "test"}


def _made(make, root: Path) -> Path:
    make(root)
    return root


def test_class_smaller_than_k_is_a_warning_naming_the_fix():
    import pandas as pd

    from ddb.datasets import small_class_warnings

    manifest = pd.DataFrame({"class_name": ["a"] * 5 + ["b"] * 3 + ["b"] * 9,
                             "split": ["train"] * 8 + ["excluded"] * 9})
    (warning,) = small_class_warnings("d", manifest, ["a", "b"], [4, 6])
    assert warning.startswith("dataset 'd': class 'b' has 3 training images, fewer than its K = 6 (low_loss.k)")
    assert "fix: set datasets.d.low_loss.k to [4, 3]" in warning
    assert small_class_warnings("d", manifest, ["a", "b"], 3) == []


@pytest.mark.parametrize("classes, message", [
    (["bird", "bird"], r"datasets\.demo\.classes: lists 'bird' 2 times"),
])
def test_duplicate_class_names_are_refused(classes, message):
    from ddb.config import validate_config
    from ddb.errors import DDBError

    with pytest.raises(DDBError, match=message):
        validate_config(small_config(classes=classes))


@pytest.mark.parametrize("name", ["my-data", "water birds", "2nd", "demo.v2", "logs", "benchmarks", "models"])
def test_dataset_name_that_is_not_a_plain_identifier_is_refused(name):
    from ddb.config import validate_config
    from ddb.errors import DDBError

    config = small_config()
    config["datasets"] = {name: config["datasets"]["demo"]}
    config["targets"] = [name]
    with pytest.raises(DDBError, match=rf"config: datasets\.{re.escape(name)}: .*\n  fix: rename"):
        validate_config(config)


def test_plain_identifiers_are_accepted():
    from ddb.config import validate_config

    config = small_config()
    config["datasets"] = {"imagenet_a": config["datasets"]["demo"], "_x2": dict(config["datasets"]["demo"])}
    config["targets"] = ["imagenet_a"]
    validate_config(config)


# ---- prompts: `{}` only


@pytest.mark.parametrize("section, value, key", [
    ("inpainting", {"prompt": "a photo of a {cls} bird"}, "datasets.demo.inpainting.prompt"),
    ("inpainting", {"prompt": "a photo of a {0} bird"}, "datasets.demo.inpainting.prompt"),
    ("textual_inversion", {"templates": ["a photo of a {}", "a {name} in the wild"]},
     "datasets.demo.textual_inversion.templates.1"),
])
def test_unknown_placeholder_in_a_prompt_is_refused_with_its_key(section, value, key):
    from helpers import SMALL_DEMO

    from ddb.config import validate_config
    from ddb.errors import DDBError

    with pytest.raises(DDBError) as error:
        validate_config(small_config(**{section: {**SMALL_DEMO[section], **value}}))
    bad = next(iter(value.values()))
    bad = bad[-1] if isinstance(bad, list) else bad
    assert f"{key}: {bad!r}: the class token goes where `{{}}` stands, exactly once" in str(error.value)
    assert "which is not a placeholder" in str(error.value)


def test_prompt_with_the_token_twice_or_not_at_all_is_refused():
    from helpers import SMALL_DEMO

    from ddb.config import validate_config
    from ddb.errors import DDBError

    for prompt, found in (("a {} and a {}", "it has `{}` 2 times"), ("a photo", "it has no `{}`")):
        with pytest.raises(DDBError, match=re.escape(found)):
            validate_config(small_config(inpainting={**SMALL_DEMO["inpainting"], "prompt": prompt}))
    validate_config(small_config(inpainting={**SMALL_DEMO["inpainting"], "prompt": "a {} on a lake, photo"}))


# ---- software on the cluster: every rule names its conda environment


def test_conda_environment_pins_what_pyproject_requires():
    import tomllib

    import yaml
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((REPO / "envs" / "ddb.yaml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    pinned = {Requirement(line).name.lower(): Requirement(line) for line in pip}
    python = next(item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python="))
    assert SpecifierSet(project["requires-python"]).contains(python.split("=")[1] + ".0")
    for line in project["dependencies"]:
        required = Requirement(line)
        if required.name.startswith("snakemake"):  # runs the jobs; not needed inside them
            continue
        assert required.name.lower() in pinned, f"envs/ddb.yaml lacks {required.name}"
        in_env = pinned[required.name.lower()]
        exact = [spec.version for spec in in_env.specifier if spec.operator == "=="]
        if exact:  # a pin must satisfy pyproject's range
            assert required.specifier.contains(exact[0]), (line, str(in_env))
        else:  # a range must be pyproject's own
            assert in_env.specifier == required.specifier, (line, str(in_env))


# ---- the job fingerprint names the device and torch's thread count


def fake_job(tmp_path: Path, threads: int):
    from types import SimpleNamespace

    return SimpleNamespace(log=[str(tmp_path / "logs" / f"inpaint-{threads}.log")], threads=1, rule="inpaint",
                           resources=SimpleNamespace(cpu_threads=threads), input=[], params=[{"steps": 2}],
                           wildcards={"ds": "demo", "src": "landbird", "dst": "waterbird", "n": "0"})


def test_fingerprint_names_the_device_and_the_thread_count(tmp_path, monkeypatch):
    import torch

    from ddb.scripting import compute_setting, job_fingerprint

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = job_fingerprint(fake_job(tmp_path, 1))
        assert compute_setting() == {"device": "cpu", "torch_threads": 1} or torch.cuda.is_available()
        torch.set_num_threads(2)
        assert job_fingerprint(fake_job(tmp_path, 1)) != one
        torch.set_num_threads(1)
        assert job_fingerprint(fake_job(tmp_path, 1)) == one
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H100 80GB HBM3")
        assert compute_setting()["device"] == "cuda: NVIDIA H100 80GB HBM3"
        assert job_fingerprint(fake_job(tmp_path, 1)) != one
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def generation(tmp_path_factory):
    from _reliability import make_generation

    return make_generation(tmp_path_factory.mktemp("generation"))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="torch's threads are capped at the CPU count")
def test_checkpoints_made_with_another_thread_count_are_discarded(generation, tmp_path, monkeypatch):
    """A shard interrupted in a job of 1 torch thread and resumed in a job of 2 (run_step sets both from the
    rule's configured threads): the checkpoints are discarded, never mixed in."""
    import logging

    import torch
    from _reliability import inpaint
    from test_storage_checkpoints import Interrupted, Pipeline

    from ddb.storage.checkpoints import checkpointed
    from ddb.scripting import run_step

    # run_step is made for a one-job process: it redirects these and sets up logging; put them back after
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    monkeypatch.setattr(logging.getLogger("ddb"), "handlers", list(logging.getLogger("ddb").handlers))
    folder, threads = tmp_path / "shard", torch.get_num_threads()
    pipelines = [Pipeline(generation["pipeline"], calls=1), Pipeline(generation["pipeline"], calls=1),
                 Pipeline(generation["pipeline"])]

    @run_step
    def step(job):
        inpaint(generation, pipelines.pop(0), folder, fingerprint=job.fingerprint)

    try:
        with pytest.raises(Interrupted):
            step(fake_job(tmp_path, 1))  # killed after one batch of 2 images
        with pytest.raises(Interrupted):
            step(fake_job(tmp_path, 1))  # the same job again: resumes, one more batch
        assert len(checkpointed(folder / "shard.tar")) == 4
        step(fake_job(tmp_path, 2))  # the same job with 2 threads
    finally:
        torch.set_num_threads(threads)
    log = (tmp_path / "logs" / "inpaint-2.log").read_text()
    assert "discarding 4 checkpoint(s) of a job with other settings or inputs" in log
    assert "resuming, 2 of 5 samples already done" in (tmp_path / "logs" / "inpaint-1.log").read_text()
    assert (folder / "shard.tar").exists() and not (folder / "shard.tar.partial").exists()
