"""The ERM model f of the paper's formats: the recipes of the checkpoints the paper imports (DaC's for
Waterbirds and CelebA, DISC's for MetaShift), the epoch they keep, the checkpoint files they come as, and
the authors' numerics (fp32, TF32 as PyTorch leaves it, fp32 textual inversion, a Xavier head)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import small_config

from _reliability import one_torch_thread  # noqa: F401

from ddb.config import validate_config
from ddb.errors import DDBError
from ddb.models.classifier import build_classifier, import_classifier, reset_head, save_classifier
from ddb.precision import FP32, classifier_precision
from ddb.resume import TrainingCheckpoint, resume_path

PAPER_FORMATS = ("waterbirds", "celeba", "metashift", "imagenet")


def entry(fmt: str, **options) -> dict:
    return validate_config({"datasets": {"x": {"format": fmt, "root": "/data", **options}}})["datasets"]["x"]


# ------------------------------------------------------------------------------------------ format defaults

@pytest.mark.parametrize("fmt, recipe", [
    # DaC's README: --optimizer SGD --lr 1e-3 --weight_decay 1e-3 --num_epochs 100 --batch_size 128, no
    # augmentation for Waterbirds (its train loader has the test transform), CelebA's loader augments
    ("waterbirds", (100, 128, 1e-3, 1e-3, False, "best_val_wga_mean")),
    ("celeba", (100, 128, 1e-3, 1e-3, True, "best_val_wga_mean")),
    # DISC's scripts/metashifts.sh ERM (the run without --augment_data, the one DISC loads)
    ("metashift", (100, 16, 1e-3, 1e-4, False, "best_val_wga")),
    # no ERM recipe of the paper: the schema's
    ("imagenet", (10, 32, 1e-3, 1e-4, True, "last")),
    ("synthetic", (10, 32, 1e-3, 1e-4, True, "last")),
])
def test_each_format_trains_erm_with_the_recipe_of_its_checkpoint(fmt, recipe):
    erm = entry(fmt)["erm"]
    assert (erm["epochs"], erm["batch_size"], erm["lr"], erm["weight_decay"], erm["augment"],
            erm["select_epoch"]) == recipe
    assert (erm["optimizer"], erm["momentum"], erm["checkpoint"]) == ("sgd", 0.9, None)


def test_celeba_erm_trains_on_the_class_balanced_subsample_as_dacs_loader():
    assert entry("celeba")["class_balance"] == "subsample"


@pytest.mark.parametrize("fmt", PAPER_FORMATS)
def test_paper_formats_compute_as_the_authors_did(fmt):
    dataset = entry(fmt)
    assert (dataset["classifier"]["precision"], dataset["classifier"]["tf32"]) == ("fp32", "torch_default")
    assert dataset["textual_inversion"]["dtype"] == "float32"
    assert dataset["retrain"]["head_init"] == "xavier"


def test_the_demo_keeps_its_own_numerics_and_an_entry_can_opt_in_to_bf16():
    demo = entry("synthetic")
    assert (demo["classifier"]["precision"], demo["classifier"]["tf32"]) == ("auto", True)
    assert (demo["textual_inversion"]["dtype"], demo["retrain"]["head_init"]) == ("auto", "default")
    fast = entry("waterbirds", classifier={"precision": "bf16", "tf32": True}, textual_inversion={"dtype": "float16"},
                 erm={"epochs": 3})
    assert (fast["classifier"]["precision"], fast["classifier"]["tf32"], fast["textual_inversion"]["dtype"]) == (
        "bf16", True, "float16")
    assert (fast["erm"]["epochs"], fast["erm"]["batch_size"]) == (3, 128)  # the rest of the recipe stays
    with pytest.raises(DDBError, match=r"select_epoch: 'best' is not one of"):
        entry("waterbirds", erm={"select_epoch": "best"})


# ---------------------------------------------------------------------------------------------- precision

@pytest.fixture
def tf32_flags():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)
    yield matmul, conv
    matmul.fp32_precision, conv.fp32_precision = before


def test_torch_default_tf32_sets_pytorchs_defaults_and_true_false_set_both(tf32_flags):
    matmul, conv = tf32_flags
    matmul.fp32_precision, conv.fp32_precision = "tf32", "ieee"  # a setting left by something else
    chosen = classifier_precision({"precision": "fp32", "tf32": "torch_default"}, "cuda")
    assert chosen.dtype is None and chosen.device_type == "cuda"  # no autocast
    assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "tf32")
    classifier_precision({"precision": "fp32", "tf32": False}, "cuda")
    assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
    classifier_precision({"precision": "fp32", "tf32": True}, "cuda")
    assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    assert classifier_precision(entry("waterbirds")["classifier"], "cpu") == FP32


# ------------------------------------------------------------------------------------------------- head

def test_xavier_head_has_zero_bias_and_xavier_uniform_weights_and_default_is_torchs():
    model = build_classifier("tiny", 2, None, seed=0)
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    reset_head(model, seed=5, init="xavier")
    fan_in, fan_out = model.fc.in_features, model.fc.out_features
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert torch.equal(model.fc.bias, torch.zeros(2))
    assert model.fc.weight.abs().max() <= bound and model.fc.weight.abs().max() > 0.9 * bound
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in body.items())  # only the head changes
    xavier = model.fc.weight.clone()
    reset_head(model, seed=5, init="xavier")
    assert torch.equal(model.fc.weight, xavier)  # seeded
    reset_head(model, seed=5)
    torch.manual_seed(5)
    reference = torch.nn.Linear(fan_in, 2)
    assert torch.equal(model.fc.weight, reference.weight) and torch.equal(model.fc.bias, reference.bias)
    assert model.fc.bias.abs().sum() > 0 and model.fc.weight.abs().max() <= 1 / math.sqrt(fan_in)


# --------------------------------------------------------------------------------------- checkpoint files

def checkpoint_formats(state: dict) -> dict:
    return {
        "dfr.pt": state,  # a plain torchvision state dict
        "dac.model": {f"model.{k}": v for k, v in state.items()},  # DaC's / the authors' ResNet50 wrapper
        "dataparallel.pt": {f"module.model.{k}": v for k, v in state.items()},
        "domainbed.pkl": {"args": {"lr": 1e-3}, "model_dict": None,
                          "network": {f"network.{k}": v for k, v in state.items()}},
        "trainer.pt": {"epoch": 7, "state_dict": {f"module.{k}": v for k, v in state.items()}},
        "model_key.pt": {"model": state, "optimizer": {}},
    }


@pytest.mark.parametrize("arch", ["tiny", "resnet50"])
def test_every_erm_checkpoint_format_loads_the_same_weights(tmp_path, arch):
    state = build_classifier(arch, 2, None, seed=3).state_dict()
    files = checkpoint_formats(state)
    if arch == "resnet50":  # the papers' architecture: DaC's format only (the slow one)
        files = {"dac.model": files["dac.model"]}
    for name, content in files.items():
        torch.save(content, tmp_path / name)
        loaded = import_classifier(tmp_path / name, arch, 2, "datasets.x.erm.checkpoint").state_dict()
        assert list(loaded) == list(state), name
        assert all(torch.equal(loaded[k], state[k]) for k in state), name


def test_our_own_model_file_imports_as_an_erm_checkpoint(tmp_path):
    model = build_classifier("tiny", 2, None, seed=4)
    save_classifier(model, tmp_path / "erm.pt", arch="tiny", classes=["a", "b"], image_size=32)
    loaded = import_classifier(tmp_path / "erm.pt", "tiny", 2, "datasets.x.erm.checkpoint").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_discs_pickled_model_stops_with_the_conversion_which_then_loads(tmp_path, monkeypatch):
    model = build_classifier("tiny", 2, None, seed=6)  # DISC: torch.save(model, 'best_model.pth')
    monkeypatch.chdir(tmp_path)
    torch.save(model, "best_model.pth")
    with pytest.raises(DDBError, match=r"(?s)pickles a whole model.*torch\.save\(torch\.load\("
                                       r"'best_model\.pth', weights_only=False\)\.state_dict\(\), "
                                       r"'best_model\.state_dict\.pt'\)"):
        import_classifier("best_model.pth", "tiny", 2, "datasets.x.erm.checkpoint")
    torch.save(torch.load("best_model.pth", weights_only=False).state_dict(), "best_model.state_dict.pt")
    loaded = import_classifier("best_model.state_dict.pt", "tiny", 2, "datasets.x.erm.checkpoint").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_of_another_shape_names_the_arch_key(tmp_path):
    torch.save({f"model.{k}": v for k, v in build_classifier("resnet18", 2, None, seed=0).state_dict().items()},
               tmp_path / "r18.model")
    with pytest.raises(DDBError, match=r"(?s)datasets\.x\.erm\.checkpoint .*r18\.model.*does not fit a tiny "
                                       r"with 2 classes.*set datasets\.x\.classifier\.arch to"):
        import_classifier(tmp_path / "r18.model", "tiny", 2, "datasets.x.erm.checkpoint")


# ------------------------------------------------------------------------------------------ the kept epoch

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from ddb.datasets import build_manifest

    workdir = tmp_path_factory.mktemp("erm_setting")
    cfg = validate_config(small_config(synthetic={"n_train": 32, "n_val_per_group": 2, "n_test_per_group": 1,
                                                  "image_size": 16}))["datasets"]["demo"]
    cfg["root"] = str(workdir / "synthetic")
    cfg["classifier"] = {**cfg["classifier"], "image_size": 16}
    return cfg, build_manifest("demo", cfg, seed=0, workdir=workdir)


def scripted_validation(monkeypatch, scores):
    """Validation scores (WGA, mean) per epoch in place of the real ones: which epoch is best is then known."""
    import ddb.erm

    calls = iter(scores)

    def evaluate(*args, **kwargs):
        wga, mean = next(calls)
        return {"worst_group_accuracy": wga, "mean_accuracy": mean}, None

    monkeypatch.setattr(ddb.erm, "evaluate_groups", evaluate)


def train(demo, monkeypatch, epochs, select, scores, resume=None):
    from ddb.erm import train_erm
    from ddb.settings import dataset_settings

    cfg, manifest = demo
    scripted_validation(monkeypatch, scores)
    cfg = {**cfg, "erm": {**cfg["erm"], "epochs": epochs, "batch_size": 16, "select_epoch": select}}
    return train_erm(manifest, dataset_settings(cfg, "demo"), seed=0, device="cpu", resume=resume)


def same_weights(a, b) -> bool:
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


@pytest.mark.usefixtures("one_torch_thread")
def test_select_epoch_keeps_the_epoch_their_code_keeps(demo, monkeypatch):
    flat = [(0.5, 0.5)] * 3
    after = {n: train(demo, monkeypatch, n, "last", flat)[0] for n in (1, 2, 3)}
    assert not same_weights(after[2], after[3])
    # DISC: a strictly higher WGA; the first of equal ones stays
    model, history = train(demo, monkeypatch, 3, "best_val_wga", [(0.5, 0.5), (0.9, 0.6), (0.7, 0.9)])
    assert len(history) == 3 and same_weights(model, after[2])
    model, _ = train(demo, monkeypatch, 3, "best_val_wga", [(0.9, 0.5), (0.9, 0.9), (0.9, 0.9)])
    assert same_weights(model, after[1])
    # DaC: an equal WGA with a better mean replaces it
    model, _ = train(demo, monkeypatch, 3, "best_val_wga_mean", [(0.9, 0.5), (0.9, 0.9), (0.9, 0.9)])
    assert same_weights(model, after[2])


@pytest.mark.usefixtures("one_torch_thread")
def test_the_kept_epoch_survives_a_resume(demo, monkeypatch, tmp_path):
    from test_resume import Interrupted, KilledAfter, scramble_random_states

    scores = [(0.5, 0.5), (0.9, 0.6), (0.7, 0.9)]
    expected, _ = train(demo, monkeypatch, 3, "best_val_wga", scores)
    path = resume_path(tmp_path / "model.pt")
    settings = ["erm", 0]
    with pytest.raises(Interrupted):
        train(demo, monkeypatch, 3, "best_val_wga", scores, resume=KilledAfter(path, "train_erm", settings, saves=2))
    assert torch.load(path, weights_only=True)["state"]["kept"]["epoch"] == 2
    scramble_random_states()
    model, history = train(demo, monkeypatch, 3, "best_val_wga", scores[2:],
                           resume=TrainingCheckpoint(path, "train_erm", settings))
    assert len(history) == 3 and same_weights(model, expected)

