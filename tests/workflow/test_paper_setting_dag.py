"""The paper's setting through the whole DAG with tiny models on a Waterbirds-layout and a CelebA-layout
dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
import yaml
from PIL import Image

from helpers import run_paths, run_snakemake
from ddb.datasets.manifest import EXCLUDED
from ddb.storage.shards import ImageShard
from ddb.storage.reading import read_parquet
from ddb.paths import RunPaths
from test_paper_setting import make_celeba, make_waterbirds


TINY_MODELS = {
    "classifier": {"arch": "tiny", "weights": None, "image_size": 32},
    "erm": {"epochs": 2, "batch_size": 8, "lr": 0.01, "augment": True},
    "textual_inversion": {"model": "tiny", "num_images": 2, "steps": 2, "batch_size": 2, "resolution": 32},
    "masking": {"masker": "grounded_sam", "detector": "tiny", "segmenter": "tiny", "box_threshold": 0.0,
                "text_threshold": 0.0, "batch_size": 4},
    "inpainting": {"model": "tiny", "steps": 2, "resolution": 32, "batch_size": 4},
    "ig": {"n_steps": 4, "internal_batch_size": 32, "batch_size": 4},
    "retrain": {"epochs": 2, "batch_size": 8, "generated_batch_size": 4},
}

RESOURCES = {rule: {"threads": 1} for rule in ("train_erm", "textual_inversion", "select_low_loss", "mask",
                                                  "inpaint", "ig_score", "retrain", "evaluate")}


def run_dag(workdir: Path, name: str, fmt: str, root: Path, **options) -> RunPaths:
    dataset = {"format": fmt, "root": str(root), **TINY_MODELS, **options}
    config = {"seed": 0, "targets": [name], "resources": {"rules": RESOURCES}, "datasets": {name: dataset}}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    results = run_paths(workdir, name)
    run_snakemake(workdir, "--cores", "2", "--configfile", str(workdir / "config.yaml"), "--",
                  str(results.path("eval_json").relative_to(workdir)))
    return results


def redrawn_sources(results: RunPaths, src: str, dst: str) -> pd.DataFrame:
    return pd.concat([read_parquet(p) for p in results.glob("inpaint_index", src=src, dst=dst)])


def check_generation_from_low_loss(results: RunPaths, classes: list[str], ks: list[int], per_source: int) -> None:
    """The sources of each pair are D_i (the low-loss table of the source class), each drawn per_source times."""
    for i, src in enumerate(classes):
        low_loss = read_parquet(results.path("low_loss", cls=src))
        assert len(low_loss) == ks[i]
        for dst in classes:
            if dst == src:
                continue
            index = redrawn_sources(results, src, dst)
            assert sorted(index["source_id"]) == sorted(list(low_loss["sample_id"]) * per_source)
            assert (index["y"] == classes.index(dst)).all()  # labelled with the target class
            assert index.groupby("source_id")["seed"].nunique().eq(per_source).all()  # a seed per draw
            masks = pd.concat([read_parquet(p) for p in results.glob("mask_index", src=src)])
            assert sorted(masks["sample_id"]) == sorted(low_loss["sample_id"])  # one mask per source


def test_the_dag_on_a_waterbirds_layout_redraws_d_i_from_the_named_minority_tokens(tmp_path):
    root = tmp_path / "data" / "waterbird_complete95_forest2water2"
    make_waterbirds(root)
    results = run_dag(tmp_path / "run", "wb", "waterbirds", root, low_loss={"k": [5, 4]},
                      generation={"images_per_shard": 4, "per_source": 2},
                      retrain={**TINY_MODELS["retrain"], "patience": 1})
    classes = ["landbird", "waterbird"]
    check_generation_from_low_loss(results, classes, [5, 4], per_source=2)
    # 2 sources (4 images) a shard, counted per source class from K: 3 shards of landbirds, 2 of waterbirds
    land, water = {"src": "landbird", "dst": "waterbird"}, {"src": "waterbird", "dst": "landbird"}
    for name, wildcards, shards in (("mask_index", {"src": "landbird"}, 3), ("mask_index", {"src": "waterbird"}, 2),
                                    ("inpaint_index", land, 3), ("inpaint_index", water, 2), ("ig_scores", land, 3)):
        assert len(results.glob(name, **wildcards)) == shards, (name, wildcards)
    for index in results.glob("inpaint_index"):  # a source's draws share its shard
        assert read_parquet(index).groupby("source_id").size().eq(2).all(), index
    for tar in results.glob("inpaint_tar"):
        assert len(ImageShard(tar)) <= 4
    manifest = read_parquet(results.path("manifest"))
    for cls, group in (("landbird", "landbird_water"), ("waterbird", "waterbird_land")):
        samples = read_parquet(results.path("ti_samples", cls=cls))
        assert set(samples["group"]) == {group}
    # generations without paste-back keep their source's size (40 x 30), so f's crop sees the same geometry
    shard = results.glob("inpaint_tar", **land)[0]
    generated = ImageShard(shard)
    some = generated.ids()[0]
    source_id = some.split("_to_")[0]
    source_path = manifest.set_index("sample_id").loc[source_id, "path"]
    assert generated.image(some).size == Image.open(source_path).size == (40, 30)
    model_meta = torch.load(results.path("retrain_model"), weights_only=True)
    assert model_meta["transform"] == "resize_center_crop"
    report = json.loads(results.path("eval_json").read_text())
    assert set(report["ddb"]["group_accuracy"]) == {"landbird_land", "landbird_water", "waterbird_land",
                                                    "waterbird_water"}


def test_the_dag_on_a_celeba_layout_trains_on_the_subsample_and_learns_from_women(tmp_path):
    root = tmp_path / "data" / "celeba"
    make_celeba(root)
    results = run_dag(tmp_path / "run", "cel", "celeba", root, low_loss={"k": 3})
    manifest = read_parquet(results.path("manifest"))
    assert manifest[manifest["split"] == "train"].groupby("y").size().tolist() == [9, 9]
    assert (manifest["split"] == EXCLUDED).sum() == 2
    non_blond = read_parquet(results.path("ti_samples", cls="non_blond"))
    assert set(non_blond["group"]) == {"non_blond_female"}
    check_generation_from_low_loss(results, ["non_blond", "blond"], [3, 3], per_source=1)
    # D_i never reaches into the rows left out of the subsample
    excluded = set(manifest.loc[manifest["split"] == EXCLUDED, "sample_id"])
    assert not excluded & set(read_parquet(results.path("low_loss", cls="non_blond"))["sample_id"])
    groups = read_parquet(results.path("groups")).set_index("group")
    assert groups.loc["non_blond_female", "minority"] and not groups.loc["non_blond_male", "minority"]
    assert json.loads(results.path("eval_json").read_text())["ddb"]["worst_group_accuracy"] >= 0
