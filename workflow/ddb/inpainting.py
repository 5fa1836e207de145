"""Step ``inpaint``: redraw the masked object of class-i images as class i', keeping the context.

The prompt carries the *target* class's learned token (``a photo of a <waterbird>``) and the new
image is labelled i' (docs/method.md step 5). Each image gets its own generator seeded from
(global seed, target class, source id), so a batch, a shard split or a restart never changes it.
A generation always returns to its source's size; with ``paste_back`` (the demo) it is also
composited into the source, so the spurious context is exactly the source's (SD's VAE would otherwise
alter it slightly). The paper's entries do not paste back: its thresholds P were set on un-pasted
images. ``generation.per_source`` draws several images per source, each with its own seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .results.schema import INPAINT_INDEX_COLUMNS, generated_id
from .storage.shards import ImageShard
from .storage.images import load_image, to_square
from .storage.checkpoints import process_shard
from .seeding import derive_seed
from .settings import InpaintingSettings
from .textual_inversion import placeholder_token


def generation_seed(seed: int, target_class: str, source_id: str, draw: int = 0) -> int:
    """Draw 0 keeps the seed of a single draw, so raising ``per_source`` adds images and changes none."""
    return derive_seed(seed, "inpaint", target_class, source_id, *([draw] if draw else []))


def prompt_for(target_class: str, inpainting: InpaintingSettings, use_token: bool) -> str:
    """The prompt with the learned token, or the plain class name for the no-inversion ablation."""
    word = placeholder_token(target_class) if use_token else target_class.replace("_", " ")
    return inpainting.prompt.format(word)


def torch_dtype(name: str, device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return getattr(torch, name)


def to_source_size(generated: np.ndarray, source: Image.Image) -> np.ndarray:
    """The generation resized back to its source's size (docs/method.md: f's transform, the mask and IG then
    see the same geometry in source and generation)."""
    if generated.shape[:2] == (source.height, source.width):
        return generated
    return np.asarray(Image.fromarray(generated).resize(source.size, Image.BICUBIC))


def paste_back(generated: np.ndarray, source: Image.Image, mask: Image.Image) -> np.ndarray:
    """The generation inside the mask, the untouched source outside it, at the source's own size
    (so the context keeps its resolution and aspect ratio, whatever the inpainting resolution)."""
    upscaled = to_source_size(generated, source)
    inside = (np.asarray(mask.resize(source.size, Image.NEAREST)) > 127)[..., None]
    return np.where(inside, upscaled, np.asarray(source))


def inpaint_shard(pipeline, sources: pd.DataFrame, masks: ImageShard, mask_index: pd.DataFrame, *,
                  source_y: int, target_y: int, target_class: str, prompt: str, inpainting: InpaintingSettings,
                  seed: int, tar_path, index_path, per_source: int = 1,
                  fingerprint: str | None = None) -> pd.DataFrame:
    """Generate ``per_source`` images per detected mask, each with its own seed; samples without a mask
    are listed with has_image False. ``fingerprint``: the job's (checkpoints of another job are discarded)."""
    resolution = inpainting.resolution
    detected = dict(zip(mask_index["sample_id"], mask_index["detected"]))
    by_generated = {generated_id(r["sample_id"], target_class, draw, per_source): (r, draw)
                    for r in sources.to_dict("records") for draw in range(per_source)}
    device = pipeline.device

    def compute(ids):
        out, todo = [], []
        for gid in ids:
            row, draw = by_generated[gid]
            record = {"sample_id": gid, "source_id": row["sample_id"], "source_y": source_y, "y": target_y,
                      "draw": draw, "has_image": False,
                      "seed": generation_seed(seed, target_class, row["sample_id"], draw), "prompt": prompt}
            if detected.get(row["sample_id"], False):
                todo.append(record)
            else:
                out.append((gid, None, record))
        if todo:
            sources_full = [load_image(by_generated[r["sample_id"]][0]["path"]) for r in todo]
            masks_full = [masks.image(r["source_id"]).convert("L") for r in todo]
            images = [to_square(image, resolution) for image in sources_full]
            mask_images = [to_square(mask, resolution, Image.NEAREST) for mask in masks_full]
            generators = [torch.Generator(device=device).manual_seed(r["seed"]) for r in todo]
            result = pipeline(prompt=[prompt] * len(todo), image=images, mask_image=mask_images,
                              negative_prompt=([inpainting.negative_prompt] * len(todo)
                                               if inpainting.negative_prompt else None),
                              height=resolution, width=resolution, num_inference_steps=inpainting.steps,
                              guidance_scale=inpainting.guidance_scale, generator=generators,
                              output_type="np").images
            for record, source, mask, generated in zip(todo, sources_full, masks_full, result):
                generated = (np.clip(generated, 0, 1) * 255).round().astype(np.uint8)
                generated = (paste_back(generated, source, mask) if inpainting.paste_back
                             else to_source_size(generated, source))
                record["has_image"] = True
                out.append((record["sample_id"], generated, record))
        return out

    return process_shard(list(by_generated), compute, inpainting.batch_size, tar_path, index_path,
                         desc=f"inpaint -> {target_class}", columns=INPAINT_INDEX_COLUMNS, fingerprint=fingerprint)
