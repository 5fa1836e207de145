"""How the classifier f computes: autocast dtype, memory format and TF32, from config ``classifier``.

One place for every loop that runs f (ERM, retraining, per-sample losses, IG, evaluation):

- ``classifier.precision``: ``auto`` (bf16 autocast on a CUDA device that supports bf16, else fp32),
  ``fp32``, ``bf16`` or ``fp16`` (autocast; training then scales the loss with a GradScaler, whose
  state goes into the resume checkpoint). The weights, the optimizer and the loss stay float32:
  autocast runs convolutions and matmuls in the low precision, and f's outputs are cast back to float32.
- ``classifier.channels_last``: ``auto`` (on CUDA), true or false: NHWC tensors, which tensor cores want.
- ``classifier.tf32``: on CUDA, float32 matmuls and convolutions may use TF32 (Ampere and later): true
  turns it on for both, false off for both, ``torch_default`` sets PyTorch's own default (TF32 in cuDNN
  convolutions only), which is how the authors' fp32 runs computed.

On a CPU everything defaults to plain float32 and the usual memory format, so the demo's numbers do not
change; bf16 autocast on a CPU is allowed (benchmarks/precision.py compares it with fp32 on the demo).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger("ddb")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """What the loops of f do: ``dtype`` None is plain float32 (no autocast)."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def describe(self) -> str:
        return (f"{self.name}{' autocast' if self.dtype else ''} on {self.device_type}"
                f"{', channels-last' if self.channels_last else ''}")

    def autocast(self):
        """The context that f's forward passes run in (nothing for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in the memory format of this setting (in place; nothing changes for the default)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def inputs(self, images: torch.Tensor, device=None) -> torch.Tensor:
        """A batch of images on ``device`` in this setting's memory format."""
        if device is not None:
            images = images.to(device)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, model: torch.nn.Module):
        """``x -> f(x)`` under autocast, the outputs cast to float32: what captum differentiates, so the
        attributions (gradients with respect to the float32 inputs) and their sums stay float32."""

        def forward(images: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                outputs = model(self.inputs(images))
            return outputs.float()

        return forward

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler for training: enabled for fp16 only (bf16 has float32's range); a disabled one
        passes the loss and the optimizer step through unchanged."""
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)


FP32 = Precision()


def choose_precision(precision: str, channels_last, device_type: str, bf16_supported: bool) -> Precision:
    """The setting for config values ``precision`` and ``channels_last`` on a ``device_type`` device."""
    if precision not in PRECISIONS:
        raise ValueError(f"classifier.precision {precision!r} is not one of {PRECISIONS}")
    if precision == "auto":
        dtype = torch.bfloat16 if device_type == "cuda" and bf16_supported else None
    else:
        dtype = AUTOCAST_DTYPES.get(precision)
    layout = device_type == "cuda" if channels_last in (None, "auto") else bool(channels_last)
    return Precision(device_type, dtype, layout)


def set_tf32(matmuls: bool, convolutions: bool) -> None:
    """Allow (or forbid) TF32 in CUDA float32 matmuls and in cuDNN convolutions (a no-op on cards before
    Ampere). Through torch's newer ``fp32_precision`` flags where torch has them: mixing them with the
    legacy ``allow_tf32`` ones is an error in recent torch."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        matmul.fp32_precision = "tf32" if matmuls else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if convolutions else "ieee"
    else:  # torch before 2.9
        matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmuls, convolutions


def enable_tf32() -> None:
    set_tf32(True, True)


# classifier.tf32 -> (matmuls, convolutions); torch_default is PyTorch's own setting (torch.backends
# docs: cuda.matmul.allow_tf32 False, cudnn.allow_tf32 True), which the authors' scripts never change
TF32_SETTINGS = {True: (True, True), False: (False, False), "torch_default": (False, True)}


def classifier_precision(classifier_cfg: dict | None, device) -> Precision:
    """The :class:`Precision` of f for config section ``classifier`` on ``device``; on CUDA it also sets
    TF32 as ``classifier.tf32`` says (:data:`TF32_SETTINGS`). A missing section or key means ``auto`` and
    TF32 on."""
    cfg = classifier_cfg or {}
    device_type = torch.device(device).type
    bf16 = device_type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    chosen = choose_precision(cfg.get("precision", "auto"), cfg.get("channels_last", "auto"), device_type, bf16)
    tf32 = cfg.get("tf32", True)
    if device_type == "cuda":
        set_tf32(*TF32_SETTINGS[tf32])
    log.info("classifier precision: %s%s", chosen.describe(),
             "" if device_type != "cuda" else {True: ", TF32 allowed", False: ", TF32 off"}.get(
                 tf32, ", TF32 in cuDNN convolutions only (PyTorch's default)"))
    return chosen
