"""Shards as Snakemake plans them: a CelebA-sized dry run (`snakemake -n`) plans
ceil(K x per_source / images_per_shard) shards per class, and the demo keeps two shards per class."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from helpers import REPO, planned_jobs, small_config, write_config
from ddb.config import validate_config


def celeba_config(tmp_path: Path, **generation) -> dict:
    """config.yaml's CelebA entry (K = 20,000 a class, 3 images per source), over a root holding only the
    layout's key files, all empty (what is checked before planning): the dry run reads no manifest, the
    shard counts come from the config."""
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["celeba"]
    root = tmp_path / "celeba-key-files-only"
    (root / "img_align_celeba").mkdir(parents=True)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        (root / name).touch()
    celeba = {**shipped, "root": str(root),
              "generation": {**shipped.get("generation", {}), **generation}}
    return {"seed": 0, "targets": ["celeba"], "datasets": {"celeba": celeba}}


@pytest.mark.parametrize("images_per_shard", [None, 1200])
def test_a_celeba_sized_dry_run_plans_k_times_per_source_over_images_per_shard_shards(tmp_path, images_per_shard):
    config = celeba_config(tmp_path, **({"images_per_shard": images_per_shard} if images_per_shard else {}))
    write_config(tmp_path, config)
    cfg = validate_config(yaml.safe_load(yaml.safe_dump(config)))["datasets"]["celeba"]
    k, per_source = 20000, cfg["generation"]["per_source"]
    assert cfg["low_loss"]["k"] == [k, k] and per_source == 3
    limit = cfg["generation"]["images_per_shard"]
    # 333 sources a shard when 3 does not divide 1000 (a source's draws share a shard), else exactly
    shards = math.ceil(k / (limit // per_source))
    if limit % per_source == 0:
        assert shards == math.ceil(k * per_source / limit) == 50
    else:
        assert shards == 61 and math.ceil(k / shards) * per_source <= limit
    jobs = planned_jobs(tmp_path)
    assert {rule: jobs[rule] for rule in ("prepare_dataset", "mask", "inpaint", "ig_score", "prune")} == {
        "prepare_dataset": 1, "mask": 2 * shards, "inpaint": 2 * shards, "ig_score": 2 * shards, "prune": 2}


def test_the_demo_keeps_two_shards_per_class(tmp_path):
    write_config(tmp_path, small_config())
    jobs = planned_jobs(tmp_path)
    assert (jobs["mask"], jobs["inpaint"], jobs["ig_score"]) == (4, 4, 4)
