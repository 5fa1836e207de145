"""A generation shard's checkpoints (ddb.storage.checkpoints), in process: an interrupted `inpaint_shard`
resumes from its last finished image and equals an uninterrupted run; checkpoints of a job with other
settings are discarded, never mixed in."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from _reliability import inpaint, make_generation, one_torch_thread  # noqa: F401


def finished_checkpoints(partial: Path) -> list[str]:
    """The samples checkpointed in ``partial`` (the shard's ``.partial`` folder), read as a resumed job would."""
    from ddb.storage.checkpoints import checkpointed

    return checkpointed(str(partial)[: -len(".partial")])


# ---- in-process: the shard loop itself


@pytest.fixture(scope="module")
def generation(tmp_path_factory):
    return make_generation(tmp_path_factory.mktemp("generation"))


class Interrupted(Exception):
    pass


class Pipeline:
    """The tiny pipeline, counting the images it is asked for and 'killed' after ``calls`` calls."""

    def __init__(self, pipeline, calls: int | None = None):
        self.pipeline, self.calls, self.images = pipeline, calls, 0
        self.device = pipeline.device

    def __call__(self, **kwargs):
        if self.calls is not None:
            if self.calls == 0:
                raise Interrupted
            self.calls -= 1
        self.images += len(kwargs["prompt"])
        return self.pipeline(**kwargs)


@pytest.mark.usefixtures("one_torch_thread")
def test_interrupted_shard_resumes_from_its_last_image_and_equals_an_uninterrupted_one(generation, tmp_path,
                                                                                         capsys):
    uninterrupted = inpaint(generation, Pipeline(generation["pipeline"]), tmp_path / "a")

    folder = tmp_path / "b"
    with pytest.raises(Interrupted):
        inpaint(generation, Pipeline(generation["pipeline"], calls=1), folder)  # killed after one batch
    assert not (folder / "shard.tar").exists() and not (folder / "shard.parquet").exists()
    assert len(finished_checkpoints(folder / "shard.tar.partial")) == 2
    capsys.readouterr()

    pipeline = Pipeline(generation["pipeline"])
    resumed = inpaint(generation, pipeline, folder, batch_size=3)  # other batches than the first run's
    assert pipeline.images == 3  # 5 sources, 2 already done
    assert "resuming, 2 of 5 samples already done" in capsys.readouterr().out
    assert not (folder / "shard.tar.partial").exists()
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    assert (folder / "shard.tar").read_bytes() == (tmp_path / "a" / "shard.tar").read_bytes()
    assert (folder / "shard.parquet").read_bytes() == (tmp_path / "a" / "shard.parquet").read_bytes()


@pytest.mark.usefixtures("one_torch_thread")
def test_checkpoints_of_a_job_with_other_settings_are_discarded(generation, tmp_path, capsys):
    folder = tmp_path / "shard"
    with pytest.raises(Interrupted):
        inpaint(generation, Pipeline(generation["pipeline"], calls=1), folder, fingerprint="inpaint, steps 2")
    pipeline = Pipeline(generation["pipeline"], calls=1)
    with pytest.raises(Interrupted):  # the same job again: resumes
        inpaint(generation, pipeline, folder, fingerprint="inpaint, steps 2")
    assert pipeline.images == 2 and len(finished_checkpoints(folder / "shard.tar.partial")) == 4
    capsys.readouterr()

    pipeline = Pipeline(generation["pipeline"])  # the config was edited before the rerun
    inpaint(generation, pipeline, folder, fingerprint="inpaint, steps 3")
    assert pipeline.images == 5
    assert "discarding 4 checkpoint(s) of a job with other settings or inputs" in capsys.readouterr().out
