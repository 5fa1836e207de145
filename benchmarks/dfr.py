"""The DFR baseline's cost and precision on one machine (ddb.dfr), through the rule's own code.

Prints, for f at the paper's size (ResNet-50, 224 px, seeded random weights: nothing to download):

* penultimate features (``ddb.dfr.extract_features``: PIL decode, f's eval transform, the loader without
  workers that every step of f uses) in images per second, per precision (``classifier.precision``), and the
  minutes that makes for CelebA's training + validation splits (48,534 + 19,867 images), the rule's work;
* the regression (``ddb.dfr.fit_dfr``: the C grid and the averaged subsamples) on a validation set of
  CelebA's balanced size, in seconds;
* how often the folded head (``dfr/model.pt``'s ``fc``, run by ``evaluate`` under that precision) disagrees
  with the float64 regression on the same images.

DFR itself computes in ``fp32`` (``ddb.dfr.dfr_precision``): on an H100 (2026-11), bf16 autocast flipped
132 of 2048 predictions (47 with the regression fit on bf16 features), fp32 with TF32 2 (|z| ≈ 0.002), and
fp32 extracted 570 images/s against bf16's 632 (the loader without workers bounds both).

A figure, never a pass/fail:  python benchmarks/dfr.py [--n 1024] [--precisions fp32,auto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from ddb.dfr import DEFAULT_C_GRID, extract_features, fit_dfr  # noqa: E402
from ddb.models.classifier import build_classifier, eval_transform, pick_device  # noqa: E402
from ddb.precision import classifier_precision  # noqa: E402

CELEBA_IMAGES = 48_534 + 19_867  # the class-balanced training split + validation: what the rule reads
CELEBA_BALANCED_VAL = 4 * 182  # validation drawn down to its smallest group (blond male)


def write_images(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """``n`` CelebA-sized JPEGs (178x218) of smooth noise, with labels and groups."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        small = rng.integers(0, 256, (14, 12, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((178, 218), Image.BILINEAR)
        path = folder / f"img{i:05d}.jpg"
        image.save(path, quality=90)
        rows.append({"sample_id": f"img{i:05d}", "path": str(path), "split": "val", "y": 0, "group": "g"})
    return pd.DataFrame(rows)


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="images to extract features of")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--transform", default="center_crop_resize", help="f's transform (CelebA's by default)")
    parser.add_argument("--precisions", default="fp32,auto", help="classifier.precision values to compare")
    parser.add_argument("--subsamples", type=int, default=20)
    args = parser.parse_args()

    device = pick_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {name} · torch {torch.__version__} · {torch.get_num_threads()} CPU threads · f {args.arch} "
          f"at {args.image_size} px · {args.n} images, batch {args.batch_size}")
    model = build_classifier(args.arch, 2, None, seed=0).to(device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_images(Path(tmp), args.n, seed=0)
        features = {}
        for precision_name in args.precisions.split(","):
            precision = classifier_precision({"precision": precision_name}, device)
            extract = dict(image_size=args.image_size, batch_size=args.batch_size, device=device,
                           transform=args.transform, precision=precision)
            extract_features(model, rows.head(args.batch_size), **extract)  # warm-up: kernels, cuDNN choice
            synchronize(device)
            start = time.perf_counter()
            features[precision_name] = extract_features(model, rows, **extract)
            synchronize(device)
            seconds = time.perf_counter() - start
            rate = args.n / seconds
            print(f"features {precision.describe():<32} {rate:8.0f} images/s · CelebA train + val "
                  f"({CELEBA_IMAGES} images): {CELEBA_IMAGES / rate / 60:5.1f} min")
        x = features[args.precisions.split(",")[0]]

        # a regression with something to learn: labels from a direction of the features, 10 % flipped
        rng = np.random.default_rng(1)
        z = (x - x.mean(0)) @ rng.normal(size=x.shape[1])
        y = (z > np.median(z)).astype(int) ^ (rng.random(len(z)) < 0.1)
        spurious = rng.integers(0, 2, len(y))
        groups = np.array([f"g{a}{b}" for a, b in zip(y, spurious)])
        val = np.concatenate([np.flatnonzero(groups == g)[:CELEBA_BALANCED_VAL // 4] for g in sorted(set(groups))])
        start = time.perf_counter()
        fit = fit_dfr(x, x[val], y[val], groups[val], c_grid=DEFAULT_C_GRID, subsamples=args.subsamples, seed=0)
        print(f"regression: {len(DEFAULT_C_GRID)} C values + {args.subsamples} subsamples on {len(val)} validation "
              f"images x {x.shape[1]} features: {time.perf_counter() - start:.1f} s (selected C={fit.selected_c:g})")

        weight, bias = fit.head(2)
        reference = fit.predict(x)  # float64, on the first precision's features
        margin = np.abs(x.astype(np.float64) @ weight[1] + bias[1])
        head = torch.nn.Linear(weight.shape[1], 2).to(device)
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        original = model.fc
        model.fc = head
        from ddb.datasets.loading import ImageDataset
        from ddb.training import predict_logits

        for precision_name in args.precisions.split(","):
            precision = classifier_precision({"precision": precision_name}, device)
            dataset = ImageDataset.from_manifest(rows, eval_transform(args.image_size, args.transform))
            logits = predict_logits(model, dataset, args.batch_size, device, precision=precision)
            disagree = logits.argmax(1).numpy() != reference
            print(f"folded head under {precision.describe():<26} disagrees with the float64 regression on "
                  f"{int(disagree.sum())} of {len(reference)} images (their median |z| {np.median(margin[disagree]) if disagree.any() else 0:.3g}; "
                  f"all images' median |z| {np.median(margin):.3g})")
        model.fc = original


if __name__ == "__main__":
    main()
