"""Same seed, same results in process: the number of shards changes no generated image. (Textual inversion
in separate processes, minutes long: tests/workflow/test_determinism_demo.py.)"""

from __future__ import annotations

import pytest

from _reliability import inpaint, make_generation, one_torch_thread  # noqa: F401


@pytest.mark.usefixtures("one_torch_thread")
def test_shard_count_changes_no_generated_image(tmp_path):
    """Seeds come from (global seed, target class, sample id): splitting 6 sources into 1, 2 or 3 shards
    (batches of 4, hence differently composed batches) gives the same PNG bytes per sample."""
    from ddb.storage.shards import ImageShard
    from ddb.masking import mask_shard, shard_rows

    generation = make_generation(tmp_path, n_sources=6)
    images = {}
    for shards in (1, 2, 3):
        for n in range(shards):
            folder = tmp_path / f"{shards}-shards" / str(n)
            rows = shard_rows(generation["rows"], n, shards)
            mask_index = mask_shard(rows, generation["masker"], generation["settings"].masking, folder / "masks.tar",
                                    folder / "masks.parquet")
            inpaint(generation, generation["pipeline"], folder, rows=rows, mask_index=mask_index,
                    masks=folder / "masks.tar", batch_size=4)
            shard = ImageShard(folder / "shard.tar")
            for sample_id in shard.ids():
                images.setdefault(sample_id, {})[shards] = shard.read_bytes(sample_id)
    assert len(images) == 6
    for sample_id, by_split in images.items():
        assert sorted(by_split) == [1, 2, 3], sample_id
        assert len(set(by_split.values())) == 1, f"{sample_id}: the shard count changed its image"

