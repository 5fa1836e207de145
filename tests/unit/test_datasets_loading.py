"""Data-loading workers: their count comes from the job's threads, and the trained weights do not depend on it."""

from __future__ import annotations

import pytest
import torch
from helpers import small_config

from _reliability import one_torch_thread  # noqa: F401
from test_resume import assert_same_weights, demo_settings, retrain_inputs

from ddb.config import validate_config
from ddb.datasets.loading import loader_workers, per_sample_augmentation


def test_workers_are_the_jobs_threads_less_one_unless_configured():
    assert [loader_workers(None, threads) for threads in (1, 2, 8)] == [0, 1, 7]
    assert loader_workers(3, 8) == 3 and loader_workers(0, 8) == 0
    # an explicit 0 keeps the main process's RNG stream; any other setting seeds each image
    assert per_sample_augmentation(0, 5) is None
    assert per_sample_augmentation(None, 5) == per_sample_augmentation(2, 5) == 5


def test_the_demo_keeps_its_loader_in_the_main_process_and_paper_formats_take_the_threads():
    config = validate_config({**small_config(), "datasets": {
        **small_config()["datasets"], "cub": {"format": "waterbirds", "root": "/data/waterbirds"}}})
    demo, cub = config["datasets"]["demo"], config["datasets"]["cub"]
    assert demo["erm"]["num_workers"] == demo["retrain"]["num_workers"] == 0
    assert cub["erm"]["num_workers"] is None and cub["retrain"]["num_workers"] is None


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    from ddb.datasets import build_manifest

    workdir = tmp_path_factory.mktemp("workers")
    config = validate_config(small_config(synthetic={"n_train": 24, "n_val_per_group": 2, "n_test_per_group": 1,
                                                     "image_size": 16}))
    cfg = config["datasets"]["demo"]
    cfg["root"] = str(workdir / "synthetic")
    cfg["classifier"] = {**cfg["classifier"], "image_size": 16}
    return cfg, build_manifest("demo", cfg, seed=0, workdir=workdir)


@pytest.mark.usefixtures("one_torch_thread")
def test_erm_weights_are_the_same_with_no_workers_and_with_two(drawn):
    from ddb.erm import train_erm

    base, manifest = drawn
    models = {}
    # null with one thread: no workers; 2: two worker processes; both seed the augmentation per image
    for workers in (None, 2):
        cfg = demo_settings(base, erm={"epochs": 2, "batch_size": 8, "augment": True, "num_workers": workers},
                            class_balance="reweight")
        torch.manual_seed(workers or 123)  # another global RNG state: it must not matter
        models[workers], _ = train_erm(manifest, cfg, seed=0, device="cpu")
    assert torch.get_num_threads() == 1 and loader_workers(None, torch.get_num_threads()) == 0
    assert_same_weights(models[None], models[2])
    # the main process's stream (explicit 0) draws other crops: the per-image seeds are really in use
    cfg = demo_settings(base, erm={"epochs": 2, "batch_size": 8, "augment": True, "num_workers": 0},
                        class_balance="reweight")
    stream, _ = train_erm(manifest, cfg, seed=0, device="cpu")
    assert not torch.equal(stream.state_dict()["fc.weight"], models[2].state_dict()["fc.weight"])


@pytest.mark.usefixtures("one_torch_thread")
def test_retrain_weights_are_the_same_with_no_workers_and_with_two(drawn):
    """The real batches and every class's generated batches, each loader with its own workers."""
    from ddb.retrain import retrain

    erm_model, manifest, generated = retrain_inputs(drawn)
    models = {}
    for workers in (None, 2):
        cfg = demo_settings(drawn[0], retrain={"epochs": 2, "batch_size": 8, "generated_batch_size": 3,
                                               "augment": True, "lr": 1e-3, "num_workers": workers},
                            class_balance="reweight")
        torch.manual_seed(workers or 123)
        models[workers], _ = retrain(erm_model, manifest, generated, cfg, seed=0, device="cpu")
    assert_same_weights(models[None], models[2])
