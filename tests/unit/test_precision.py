"""ddb.precision: what f computes in, per device and config; bf16 autocast agrees with float32 within noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import small_config

from ddb.config import validate_config
from ddb.storage.atomic import write_png
from ddb.precision import FP32, Precision, choose_precision, classifier_precision, enable_tf32


@pytest.mark.parametrize("device_type, bf16, expected", [
    ("cpu", False, None), ("cpu", True, None),  # a CPU keeps float32 (the demo's numbers do not change)
    ("cuda", True, torch.bfloat16), ("cuda", False, None),  # a GPU without bf16 (before Ampere): float32
])
def test_auto_is_bf16_on_a_cuda_device_that_has_it_and_float32_elsewhere(device_type, bf16, expected):
    chosen = choose_precision("auto", "auto", device_type, bf16)
    assert chosen.dtype == expected
    assert chosen.channels_last == (device_type == "cuda")
    assert not chosen.grad_scaler().is_enabled()


def test_explicit_settings_win_on_every_device():
    assert choose_precision("fp32", "auto", "cuda", True) == Precision("cuda", None, True)
    assert choose_precision("bf16", False, "cuda", True) == Precision("cuda", torch.bfloat16, False)
    assert choose_precision("bf16", True, "cpu", False) == Precision("cpu", torch.bfloat16, True)
    fp16 = choose_precision("fp16", "auto", "cpu", False)
    assert fp16.dtype == torch.float16 and fp16.name == "fp16"
    assert fp16.grad_scaler().is_enabled()  # fp16 training scales its loss
    with pytest.raises(ValueError):
        choose_precision("fp8", "auto", "cpu", False)


def test_the_config_defaults_give_plain_float32_on_a_cpu():
    demo = small_config()["datasets"]["demo"]
    demo["classifier"] = {}  # every key from the schema's defaults
    classifier = validate_config(small_config(**demo))["datasets"]["demo"]["classifier"]
    assert (classifier["precision"], classifier["channels_last"], classifier["tf32"]) == ("auto", "auto", True)
    assert classifier_precision(classifier, "cpu") == FP32
    assert classifier_precision(None, torch.device("cpu")) == FP32
    assert classifier_precision({"precision": "bf16"}, "cpu") == Precision("cpu", torch.bfloat16, False)


def test_autocast_computes_in_the_chosen_dtype_and_forward_returns_float32():
    model = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with FP32.autocast():
        assert model(x).dtype == torch.float32
    bf16 = Precision("cpu", torch.bfloat16)
    with bf16.autocast():
        assert model(x).dtype == torch.bfloat16
    assert bf16.forward(model)(x).dtype == torch.float32


def test_channels_last_changes_the_layout_not_the_numbers():
    from ddb.models.classifier import build_classifier

    model = build_classifier("tiny", 2, None, seed=0).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        layout = Precision("cpu", None, True)
        layout.prepare(model)
        assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        assert layout.inputs(x).is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(layout.forward(model)(x), expected, rtol=1e-5, atol=1e-5)


def test_tf32_is_switched_on_for_cuda_only():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)
    try:
        matmul.fp32_precision = "ieee"
        classifier_precision({"tf32": True}, "cpu")
        assert matmul.fp32_precision == "ieee"  # a CPU run changes nothing
        enable_tf32()
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    finally:
        matmul.fp32_precision, conv.fp32_precision = before


@pytest.fixture
def tiny_images(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        path = tmp_path / f"s{i}.png"
        colour = np.array([200, 40, 40]) if i % 2 == 0 else np.array([40, 40, 200])
        write_png((colour + rng.integers(0, 50, (32, 32, 3))).clip(0, 255).astype(np.uint8), path)
        rows.append({"sample_id": f"s{i}", "path": str(path), "y": i % 2})
    return pd.DataFrame(rows)


def test_bf16_predictions_agree_with_float32_within_tolerance(tiny_images):
    """On the tiny ResNet: logits within bf16's precision (8 bits of mantissa, ~0.4 % per operation), the
    same predicted class where float32 is not on the fence, per-sample losses close."""
    from ddb.datasets.loading import ImageDataset
    from ddb.low_loss import per_sample_losses
    from ddb.models.classifier import build_classifier, eval_transform
    from ddb.training import predict_logits

    model = build_classifier("tiny", 2, None, seed=0)
    dataset = ImageDataset.from_manifest(tiny_images, eval_transform(32))
    fp32 = predict_logits(model, dataset, 8, "cpu")
    bf16 = predict_logits(model, dataset, 8, "cpu", precision=Precision("cpu", torch.bfloat16))
    assert bf16.dtype == torch.float32
    scale = fp32.abs().max()
    assert (bf16 - fp32).abs().max() <= 0.02 * scale
    margin = (fp32[:, 0] - fp32[:, 1]).abs()
    sure = margin > 0.1 * scale
    assert sure.sum() > 0 and torch.equal(bf16.argmax(1)[sure], fp32.argmax(1)[sure])
    losses = per_sample_losses(model, tiny_images, 32, 8, "cpu", precision=Precision("cpu", torch.bfloat16))
    reference = per_sample_losses(model, tiny_images, 32, 8, "cpu")
    np.testing.assert_allclose(losses["loss"], reference["loss"], atol=0.05, rtol=0.05)


def test_integrated_gradients_under_bf16_autocast_are_float32_and_close(tiny_images):
    from ddb.ig_scoring import attribute
    from ddb.models.classifier import build_classifier

    torch.manual_seed(0)
    model = build_classifier("tiny", 2, None, seed=0)
    generated, baseline = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    masks = (torch.rand(4, 1, 32, 32) > 0.5).float()
    targets = torch.tensor([0, 1, 1, 0])
    rho, delta, attributions = attribute(model, generated, baseline, masks, targets, 16, 64)
    rho_bf16, delta_bf16, attributions_bf16 = attribute(model, generated, baseline, masks, targets, 16, 64,
                                                        Precision("cpu", torch.bfloat16))
    assert attributions_bf16.dtype == rho_bf16.dtype == delta_bf16.dtype == torch.float32
    total = attributions.abs().sum(dim=(1, 2, 3))
    assert ((rho_bf16 - rho).abs() <= 0.01 * total).all(), (rho, rho_bf16, total)
    # completeness still holds up to bf16's noise
    assert (delta_bf16.abs() <= 0.01 * total + delta.abs()).all(), (delta, delta_bf16)
