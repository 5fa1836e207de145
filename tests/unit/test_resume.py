"""Training that survives a timeout (ddb.resume): train_erm, retrain and textual_inversion, killed after a
checkpoint and run again, end with exactly the weights of an uninterrupted run.

In process, for each step: a checkpoint that raises right after its k-th save stands for a job killed then
(whatever it did after its last checkpoint is lost anyway); the random states of this process are then
scrambled, as a new process would have others, and the step runs again from the checkpoint."""

from __future__ import annotations

import random
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import small_config

from _reliability import one_torch_thread  # noqa: F401

from ddb.config import validate_config
from ddb.precision import Precision
from ddb.resume import TrainingCheckpoint, resume_path
from ddb.settings import dataset_settings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Interrupted(Exception):
    pass


class KilledAfter(TrainingCheckpoint):
    """A checkpoint whose job 'dies' right after its ``saves``-th save."""

    def __init__(self, *args, saves: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.left = saves

    def save(self, state):
        super().save(state)
        self.left -= 1
        if self.left == 0:
            raise Interrupted


def scramble_random_states():
    """Another process: other global random states than the interrupted run left."""
    torch.manual_seed(987654321)
    np.random.seed(4321)
    random.seed(1234)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    different = [k for k in state_a if not torch.equal(state_a[k], state_b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small drawn dataset (16 px): its config entry and manifest."""
    from ddb.datasets import build_manifest

    workdir = tmp_path_factory.mktemp("resume_training")
    config = validate_config(small_config(synthetic={"n_train": 48, "n_val_per_group": 2, "n_test_per_group": 1,
                                                     "image_size": 16}))
    cfg = config["datasets"]["demo"]
    cfg["root"] = str(workdir / "synthetic")
    cfg["classifier"] = {**cfg["classifier"], "image_size": 16}
    return cfg, build_manifest("demo", cfg, seed=0, workdir=workdir)


def with_sections(cfg: dict, **sections) -> dict:
    return {**cfg, **{key: {**cfg[key], **value} if isinstance(value, dict) else value
                      for key, value in sections.items()}}


def demo_settings(cfg: dict, **sections):
    """:func:`with_sections`' entry as the typed settings a rule script builds from it."""
    return dataset_settings(with_sections(cfg, **sections), "demo")


# ---------------------------------------------------------------------------------------------------- ERM


class ScaledFP32(Precision):
    """float32 with an enabled GradScaler: fp16 training's loss scaling (a scaler whose state is resumed
    too), deterministic on a CPU. (fp16 convolutions are very slow on a CPU, and bf16 ones give slightly
    different weights from run to run there: oneDNN's bf16 weight gradients are not deterministic.)"""

    def grad_scaler(self):
        return torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=2)


@pytest.mark.parametrize("scaled", [False, True])
def test_train_erm_resumes_to_the_uninterrupted_model(demo, tmp_path, capsys, monkeypatch, scaled):
    import ddb.erm
    from ddb.erm import train_erm

    base, manifest = demo
    if scaled:
        monkeypatch.setattr(ddb.erm, "classifier_precision", lambda cfg, device: ScaledFP32("cpu"))
    epochs, saves = 3, 2
    # augmentation and a class-balanced sampler: every random state of the loop is in play
    cfg = demo_settings(base, erm={"epochs": epochs, "batch_size": 16, "augment": True}, class_balance="reweight")
    settings = [cfg, 0]
    model_a, history_a = train_erm(manifest, cfg, seed=0, device="cpu",
                                   resume=TrainingCheckpoint(tmp_path / "a" / "model.resume.pt", "train_erm", settings))

    path = resume_path(tmp_path / "b" / "model.pt")
    assert path.name == "model.resume.pt"
    with pytest.raises(Interrupted):
        train_erm(manifest, cfg, seed=0, device="cpu", resume=KilledAfter(path, "train_erm", settings, saves=saves))
    saved = torch.load(path, weights_only=True)["state"]
    assert saved["epoch"] == saves and bool(saved["scaler"]) == scaled
    if scaled:  # the scale moved (it grows every 2 steps): a scaler started afresh would differ
        assert saved["scaler"]["scale"] != 2.0 ** 10
    scramble_random_states()
    capsys.readouterr()
    model_b, history_b = train_erm(manifest, cfg, seed=0, device="cpu",
                                   resume=TrainingCheckpoint(path, "train_erm", settings))
    assert f"train_erm: resuming from epoch {saves} of {epochs}" in capsys.readouterr().out
    assert_same_weights(model_a, model_b)
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)


# ------------------------------------------------------------------------------------------------ retrain


def retrain_inputs(demo):
    from ddb.models.classifier import build_classifier

    base, manifest = demo
    train = manifest[manifest["split"] == "train"]
    # 'generated' images (real ones stand in): 7 and 5 of them in batches of 3, so the generated passes
    # end mid-epoch and the checkpoint falls mid-pass
    generated = {0: train[train["y"] == 1]["path"].tolist()[:7], 1: train[train["y"] == 0]["path"].tolist()[:5]}
    return build_classifier("tiny", 2, None, seed=0), manifest, generated


@pytest.mark.parametrize("batching", ["paired", "joint"])
def test_retrain_resumes_to_the_uninterrupted_model(demo, tmp_path, capsys, batching):
    from ddb.retrain import retrain

    erm_model, manifest, generated = retrain_inputs(demo)
    cfg = demo_settings(demo[0], retrain={"epochs": 3, "batch_size": 16, "generated_batch_size": 3, "augment": True,
                                          "lr": 1e-3, "batching": batching}, class_balance="reweight")
    settings = [cfg, 0]
    model_a, history_a = retrain(erm_model, manifest, generated, cfg, seed=0, device="cpu",
                                 resume=TrainingCheckpoint(tmp_path / "a.resume.pt", "retrain", settings))
    path = tmp_path / "b.resume.pt"
    with pytest.raises(Interrupted):
        retrain(erm_model, manifest, generated, cfg, seed=0, device="cpu",
                resume=KilledAfter(path, "retrain", settings, saves=1))
    scramble_random_states()
    capsys.readouterr()
    model_b, history_b = retrain(erm_model, manifest, generated, cfg, seed=0, device="cpu",
                                 resume=TrainingCheckpoint(path, "retrain", settings))
    assert "retrain: resuming from epoch 1 of 3 (epoch 2 next)" in capsys.readouterr().out
    assert_same_weights(model_a, model_b)
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)


def test_retrain_stopped_by_patience_resumes_to_its_best_epoch(demo, tmp_path, monkeypatch, capsys):
    """Killed after the epoch where patience stopped it (before its outputs were written): the next run
    trains no further and returns the same best epoch."""
    import ddb.retrain as retrain_module

    erm_model, manifest, generated = retrain_inputs(demo)
    cfg = demo_settings(demo[0], retrain={"epochs": 6, "patience": 1, "batch_size": 16, "generated_batch_size": 3})
    scores = {}

    def fake_evaluate(*args, **kwargs):  # val WGA 0.4, 0.6, 0.5: patience stops after epoch 3, keeps 2
        scores["n"] = scores.get("n", 0) + 1
        wga = [0.4, 0.6, 0.5, 0.9, 0.9, 0.9][scores["n"] - 1]
        return {"worst_group_accuracy": wga, "mean_accuracy": wga}, None

    monkeypatch.setattr(retrain_module, "evaluate_groups", fake_evaluate)
    model_a, history_a = retrain_module.retrain(erm_model, manifest, generated, cfg, seed=0, device="cpu")
    assert history_a["epoch"].tolist() == [1, 2, 3]
    scores.clear()
    path = tmp_path / "model.resume.pt"
    with pytest.raises(Interrupted):
        retrain_module.retrain(erm_model, manifest, generated, cfg, seed=0, device="cpu",
                               resume=KilledAfter(path, "retrain", None, saves=3))
    scores["n"] = 99  # any evaluation now would fail
    capsys.readouterr()
    model_b, history_b = retrain_module.retrain(erm_model, manifest, generated, cfg, seed=0, device="cpu",
                                                resume=TrainingCheckpoint(path, "retrain", None))
    assert "resuming from epoch 3 of 6 (stopped there by patience)" in capsys.readouterr().out
    assert_same_weights(model_a, model_b)
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)


def test_generated_batches_are_the_seeded_loaders_pass_after_pass():
    """retrain's endless generated batches (GeneratedBatches, positioned by a count) are exactly those of
    a shuffling seeded_loader per pass, which retraining drew before it could resume."""
    from ddb.retrain import GeneratedBatches
    from ddb.seeding import derive_seed
    from ddb.training import seeded_loader

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 7

        def __getitem__(self, index):
            return index

    expected = [batch.tolist() for cycle in range(4) for batch in seeded_loader(Items(), 3, derive_seed(5, cycle))]
    stream = GeneratedBatches(Items(), 3, seed=5)
    drawn = [batch.tolist() for epoch, steps in enumerate([2, 5, 1, 4]) for batch in stream.epoch(steps, epoch)]
    assert drawn == expected and stream.served == 12
    resumed = GeneratedBatches(Items(), 3, seed=5)
    resumed.served = 7
    assert [batch.tolist() for batch in resumed.epoch(5, 3)] == expected[7:]


# -------------------------------------------------------------------------------------- textual inversion


def test_textual_inversion_resumes_to_the_uninterrupted_token(demo, tmp_path, capsys):
    from ddb.config import minority_group_name
    from ddb.models.diffusion import load_text_to_image_components
    from ddb.textual_inversion import choose_images, learn_token

    base, manifest = demo
    ti = replace(dataset_settings(base, "demo").textual_inversion, steps=5, checkpoint_every=2, num_images=2,
                 source="all")
    images = choose_images(manifest, 1, ti, seed=0, name="demo", minority_group=minority_group_name(base, 1))
    settings = [asdict(ti), 0, "waterbird"]

    def learn(resume):
        components = load_text_to_image_components("tiny", seed=0, device="cpu")  # a fresh tokenizer each time
        return learn_token(components, images, "waterbird", ti, seed=0, device="cpu", resume=resume)

    learned_a, losses_a = learn(TrainingCheckpoint(tmp_path / "a.resume.pt", "textual_inversion", settings))
    path = resume_path(tmp_path / "learned_embeds.safetensors")
    assert path.name == "learned_embeds.resume.pt"
    with pytest.raises(Interrupted):
        learn(KilledAfter(path, "textual_inversion", settings, saves=1))
    saved = torch.load(path, weights_only=True)["state"]
    assert saved["step"] == 2 and len(saved["losses"]) == 2
    scramble_random_states()
    capsys.readouterr()
    learned_b, losses_b = learn(TrainingCheckpoint(path, "textual_inversion", settings))
    assert "textual_inversion: resuming from step 2 of 5" in capsys.readouterr().out
    assert torch.equal(learned_a["<waterbird>"], learned_b["<waterbird>"])
    pd.testing.assert_frame_equal(losses_a, losses_b, check_exact=True)
    # the last checkpoint is at step 4: a step-5 run saves none at its end (the outputs follow at once)
    assert torch.load(path, weights_only=True)["state"]["step"] == 4


# ------------------------------------------------------------------------------------- the checkpoint file


def test_a_checkpoint_of_other_settings_or_another_job_is_discarded(tmp_path, capsys):
    path = tmp_path / "model.resume.pt"
    TrainingCheckpoint(path, "train_erm", {"lr": 0.1}).save({"epoch": 3})
    assert TrainingCheckpoint(path, "train_erm", {"lr": 0.1}).load() == {"epoch": 3}
    assert TrainingCheckpoint(path, "train_erm", {"lr": 0.01}).load() is None
    assert "discarding the checkpoint" in capsys.readouterr().out and not path.exists()

    # the job's fingerprint (ddb.jobs.Job.fingerprint: rule, wildcards, params, inputs, device)
    TrainingCheckpoint(path, "train_erm", None, fingerprint="job one").save({"epoch": 1})
    assert TrainingCheckpoint(path, "train_erm", None, fingerprint="job one").load() == {"epoch": 1}
    assert TrainingCheckpoint(path, "train_erm", None, fingerprint="job two").load() is None and not path.exists()

    path.write_bytes(b"not a checkpoint")
    assert TrainingCheckpoint(path, "train_erm", None).load() is None and not path.exists()
    assert "unreadable checkpoint" in capsys.readouterr().out
