"""How fast ResNet-50 (the classifier f) trains, predicts and is attributed under each precision setting.

The settings are those of ``classifier.precision`` / ``channels_last`` / ``tf32`` (ddb.precision): plain
float32, float32 with TF32, bf16 autocast, bf16 autocast + channels-last (``auto`` on a CUDA card with
bf16), fp16 autocast + channels-last with a GradScaler. For each it times, through ddb.precision's
autocast, memory format and grad scaler on ddb.models.classifier's ResNet-50 (seeded random weights:
speed does not depend on them):

- a training step (forward, cross-entropy, backward, SGD) on a batch of ``--train-batch`` images,
- prediction (forward only) on ``--eval-batch`` images,
- Integrated Gradients (captum, ``--ig-steps`` steps, internal batch ``--ig-steps``) on ``--ig-batch``
  generated images, as ig_score runs it,

and prints images/s, the speed-up over float32, and peak GPU memory. It prints figures only.

    python benchmarks/classifier_speed.py            # on a GPU node
    python benchmarks/classifier_speed.py --quick    # a CPU check of the command: 64 px, tiny batches
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from ddb.models.classifier import build_classifier  # noqa: E402
from ddb.precision import choose_precision, enable_tf32  # noqa: E402

# (label, classifier.precision, channels_last, TF32)
SETTINGS = [
    ("fp32", "fp32", False, False),
    ("fp32 + TF32", "fp32", False, True),
    ("bf16 autocast", "bf16", False, True),
    ("bf16 + channels-last (auto)", "bf16", True, True),
    ("fp16 + channels-last", "fp16", True, True),
]


def set_tf32(on: bool) -> None:
    if on:
        enable_tf32()
    elif hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def timed(function, device, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls, after one warm-up call."""
    function()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def measure(setting, args, device) -> dict:
    from captum.attr import IntegratedGradients

    label, precision_name, channels_last, tf32 = setting
    if device.type == "cuda":
        set_tf32(tf32)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    precision = choose_precision(precision_name, channels_last, device.type, bf16)
    model = precision.prepare(build_classifier("resnet50", 2, None, seed=0).to(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = precision.grad_scaler()
    size = args.image_size
    generator = torch.Generator().manual_seed(0)
    train_x = torch.rand(args.train_batch, 3, size, size, generator=generator)
    train_y = torch.randint(0, 2, (args.train_batch,), generator=generator).to(device)
    eval_x = torch.rand(args.eval_batch, 3, size, size, generator=generator)
    ig_x = torch.rand(args.ig_batch, 3, size, size, generator=generator).to(device)
    ig_baseline = torch.rand(args.ig_batch, 3, size, size, generator=generator).to(device)
    ig_targets = torch.randint(0, 2, (args.ig_batch,), generator=generator).to(device)

    def train_step():
        model.train()
        x = precision.inputs(train_x, device)
        with precision.autocast():
            loss = F.cross_entropy(model(x).float(), train_y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    @torch.no_grad()
    def predict():
        model.eval()
        with precision.autocast():
            model(precision.inputs(eval_x, device)).float()

    def integrated_gradients():
        model.eval()
        ig = IntegratedGradients(precision.forward(model))
        ig.attribute(ig_x, baselines=ig_baseline, target=ig_targets, n_steps=args.ig_steps,
                     internal_batch_size=args.ig_steps, return_convergence_delta=True)

    rates = {
        "train": args.train_batch / timed(train_step, device, args.repeat),
        "predict": args.eval_batch / timed(predict, device, args.repeat),
        "ig": args.ig_batch / timed(integrated_gradients, device, args.repeat),
    }
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {"label": label, "precision": precision.describe(), "tf32": tf32 and device.type == "cuda", **rates,
            "peak_mib": peak}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 px and tiny batches: a CPU check of the command")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--ig-batch", type=int, default=8)
    parser.add_argument("--ig-steps", type=int, default=50, help="IG steps (the paper: 50)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.train_batch, args.eval_batch, args.ig_batch, args.ig_steps, args.repeat = 64, 4, 8, 2, 4, 1
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"ResNet-50 at {args.image_size} px on {name}, torch {torch.__version__}: training batch {args.train_batch}, "
          f"prediction batch {args.eval_batch}, IG {args.ig_steps} steps on {args.ig_batch} images; images/s "
          f"(fastest of {args.repeat} after a warm-up)")
    settings = SETTINGS if device.type == "cuda" else [s for s in SETTINGS if s[0] in ("fp32", "bf16 autocast")]
    results = [measure(setting, args, device) for setting in settings]
    base = results[0]
    header = f"{'setting':<28} {'train img/s':>12} {'predict img/s':>14} {'IG img/s':>9} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        speedup = "  ".join(f"{r[k] / base[k]:.2f}x" for k in ("train", "predict", "ig"))
        peak = f"{r['peak_mib']:,.0f}" if r["peak_mib"] is not None else "-"
        print(f"{r['label']:<28} {r['train']:>12.1f} {r['predict']:>14.1f} {r['ig']:>9.2f} {peak:>9}   ({speedup} of fp32)")
    if device.type != "cuda":
        print("CPU: only fp32 and bf16 autocast, at reduced sizes; the GPU settings need a GPU node")
    return 0


if __name__ == "__main__":
    sys.exit(main())
