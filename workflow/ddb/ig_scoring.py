"""Step ``ig_score``: Integrated Gradients ρ and the classifier's softmax for each generated image.

IG of f for the target class i', input = generated image, baseline = the source image (docs/method.md
step 6), so the attributions split f(x_gen) - f(x_source) over the pixels. ρ = Σ mask · attribution
(summed over channels): high ρ means the change inside the mask moved f towards i'. captum's
convergence delta (completeness error) is written next to ρ as a quality check. Image, source and mask
go through the classifier's own transform (the mask with nearest-neighbour resampling), so ρ sums the
attributions of exactly the pixels the mask covers. Under mixed precision (``classifier.precision``,
:mod:`ddb.precision`) f runs under autocast but its outputs are cast to float32 before captum sees them,
so the attributions, ρ and the delta are float32 sums.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients
from PIL import Image
from tqdm.auto import tqdm

from .storage.shards import ImageShard
from .storage.images import load_image
from .models.classifier import eval_transform, mask_geometry
from .precision import FP32, Precision
from .settings import IgSettings

IG_COLUMNS = ["sample_id", "source_id", "y", "source_y", "has_image", "rho", "delta", "p_source", "p_target"]


def attribute(model, generated: torch.Tensor, baseline: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
              n_steps: int, internal_batch_size: int, precision: Precision | None = None):
    """Return (rho[B], delta[B], attributions[B, C, H, W]) for a batch; ``masks`` is [B, 1, H, W]."""
    precision = precision or FP32
    model.eval()
    # plain float32 differentiates f itself (as always); otherwise f under autocast, outputs in float32
    ig = IntegratedGradients(model if precision == FP32 else precision.forward(precision.prepare(model)))
    attributions, delta = ig.attribute(generated, baselines=baseline, target=targets, n_steps=n_steps,
                                       internal_batch_size=internal_batch_size, return_convergence_delta=True)
    rho = (attributions.sum(dim=1, keepdim=True) * masks).sum(dim=(1, 2, 3))
    return rho.detach(), delta.detach().reshape(-1), attributions.detach()


def mask_tensor(mask: Image.Image, image_size: int, recipe: str) -> torch.Tensor:
    """[1, s, s] float 0/1: the mask resized and cropped exactly as f's transform does the image."""
    return torch.from_numpy(np.asarray(mask_geometry(image_size, recipe)(mask.convert("L"))) > 127).float()[None]


def score_shard(model, inpaint_index: pd.DataFrame, generated: ImageShard, masks: ImageShard,
                source_paths: dict[str, str], *, image_size: int, ig: IgSettings,
                device, transform: str = "stretch", precision: Precision | None = None) -> pd.DataFrame:
    """ρ, its convergence delta and f's softmax (source and target class) for every generated image of
    ``inpaint_index`` (NaN for a source without a mask), in the index's order; ``ig``: the ``ig`` section."""
    precision = precision or FP32
    recipe, transform = transform, eval_transform(image_size, transform)
    rows = inpaint_index.to_dict("records")
    results = []
    with_image = [r for r in rows if r["has_image"]]
    for r in rows:
        if not r["has_image"]:
            results.append({**_ids(r), "rho": np.nan, "delta": np.nan, "p_source": np.nan, "p_target": np.nan})
    batch_size = ig.batch_size
    for start in tqdm(range(0, len(with_image), batch_size), desc="integrated gradients", mininterval=5):
        batch = with_image[start:start + batch_size]
        x_gen = torch.stack([transform(generated.image(r["sample_id"]).convert("RGB")) for r in batch]).to(device)
        x_src = torch.stack([transform(load_image(source_paths[r["source_id"]])) for r in batch]).to(device)
        mask = torch.stack([mask_tensor(masks.image(r["source_id"]), image_size, recipe) for r in batch]).to(device)
        # IG toward the generated class i′ (Algorithm 1), not the source class: docs/method.md, "IG's target class"
        targets = torch.as_tensor([int(r["y"]) for r in batch], device=device)
        rho, delta, _ = attribute(model, x_gen, x_src, mask, targets, ig.n_steps, ig.internal_batch_size, precision)
        with torch.no_grad():
            probabilities = precision.forward(model)(x_gen).softmax(1)
        sources = torch.as_tensor([int(r["source_y"]) for r in batch], device=device)
        p_source = probabilities.gather(1, sources[:, None])[:, 0]
        p_target = probabilities.gather(1, targets[:, None])[:, 0]
        for i, r in enumerate(batch):
            results.append({**_ids(r), "rho": float(rho[i]), "delta": float(delta[i]),
                            "p_source": float(p_source[i]), "p_target": float(p_target[i])})
    order = {r["sample_id"]: i for i, r in enumerate(rows)}
    frame = pd.DataFrame(results, columns=IG_COLUMNS)
    return frame.sort_values("sample_id", key=lambda s: s.map(order)).reset_index(drop=True)


def _ids(row: dict) -> dict:
    return {"sample_id": row["sample_id"], "source_id": row["source_id"], "y": int(row["y"]),
            "source_y": int(row["source_y"]), "has_image": bool(row["has_image"])}
