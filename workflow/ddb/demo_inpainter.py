"""A small inpainting model trained on the demo data, so the demo shows DDB working, not just running.

Same classes as the paper's model (``StableDiffusionInpaintPipeline``: a 9-channel
``UNet2DConditionModel``, an ``AutoencoderKL``, a ``CLIPTextModel``), at the size of the `tiny`
miniature. Training, all seeded and CPU-friendly:

1. the VAE learns to reconstruct demo images (its latent scale is then measured, as SD's was);
2. the UNet learns latent inpainting exactly like SD-inpainting's fine-tuning: input = noisy latents
   + mask + masked-image latents, target = the noise, prompt = ``a photo of a <class word> bird``
   (dropped 10 % of the time for classifier-free guidance). Masks are boxes around the object, so
   the hole never tells the class: the model learns to draw an object *of the prompted class* in a
   box and fill the rest of it with the surrounding background.

The text encoder stays the frozen seeded miniature, so the learned model knows the class words only
through their embeddings: textual inversion of ``<landbird>`` / ``<waterbird>`` then has something to
find. ``python scripts/train_demo_inpainter.py`` rewrites ``ddb/assets/demo_inpainter``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .datasets.synthetic import draw_sample
from .models.diffusion import TINY_TEXT_HIDDEN, build_tiny_text_encoder, build_tiny_tokenizer
from .seeding import derive_seed, seed_everything

log = logging.getLogger("ddb")
ASSET_DIR = Path(__file__).parent / "assets" / "demo_inpainter"
CLASS_WORDS = ["landbird", "waterbird"]


RESOLUTION = 32  # the demo's 64 px images are inpainted at 32 px and pasted back at 64 px


def build_components(seed: int) -> dict:
    """The demo inpainter's architecture: the `tiny` text side, a VAE with one downsampling (32 px ->
    16x16x4 latents) and a one-layer-per-block 9-channel UNet, small enough to train on a CPU."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    tokenizer = build_tiny_tokenizer()
    text_encoder = build_tiny_text_encoder(tokenizer, seed)
    torch.manual_seed(derive_seed(seed, "demo_inpainter", "vae"))
    vae = AutoencoderKL(block_out_channels=[16, 32], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        layers_per_block=1, norm_num_groups=8, sample_size=RESOLUTION)
    torch.manual_seed(derive_seed(seed, "demo_inpainter", "unet"))
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=RESOLUTION // 2,
                                in_channels=9, out_channels=4, norm_num_groups=8,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=TINY_TEXT_HIDDEN, attention_head_dim=(2, 4),
                                use_linear_projection=True)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "unet": unet, "scheduler": scheduler}


def demo_images(n: int, size: int, seed: int):
    """``n`` demo-style images (both classes on both backgrounds, balanced) with masks and labels,
    drawn at the demo's 64 px and resized to ``size`` the way the inpaint step resizes its inputs."""
    images, masks, labels = [], [], []
    for i in range(n):
        y, background = i % 2, ("land", "water")[(i // 2) % 2]
        image, mask = draw_sample(seed, f"inpainter-train-{i}", y, background, 64)
        images.append(np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC)))
        masks.append(np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127)
        labels.append(y)
    to_tensor = lambda a: torch.from_numpy(np.stack(a))
    pixels = to_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    return pixels, to_tensor(masks).float()[:, None], torch.as_tensor(labels)


def box_masks(object_masks: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """The bounding box of each object mask, grown by ``margin`` pixels (per sample), clipped."""
    n, _, height, width = object_masks.shape
    rows, cols = object_masks[:, 0].any(2), object_masks[:, 0].any(1)
    ys, xs = torch.arange(height), torch.arange(width)
    top = torch.where(rows, ys, height).min(1).values - margin
    bottom = torch.where(rows, ys, -1).max(1).values + margin
    left = torch.where(cols, xs, width).min(1).values - margin
    right = torch.where(cols, xs, -1).max(1).values + margin
    inside_y = (ys[None] >= top[:, None]) & (ys[None] <= bottom[:, None])
    inside_x = (xs[None] >= left[:, None]) & (xs[None] <= right[:, None])
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]


def training_masks(object_masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Boxes around the object, grown by 1-3 px: the hole never reveals the object's shape, so the
    model must take the class from the prompt (the demo masks with ``masking.shape: box``)."""
    margin = torch.randint(1, 4, (len(object_masks),), generator=generator)
    return box_masks(object_masks, margin)


def save(components: dict, vae, unet, out_dir: Path) -> None:
    """The pipeline in diffusers' folder layout (safetensors), replacing ``out_dir``'s files."""
    from diffusers import StableDiffusionInpaintPipeline

    pipeline = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=components["text_encoder"], tokenizer=components["tokenizer"], unet=unet,
        scheduler=components["scheduler"], safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        for file in sorted(Path(tmp).rglob("*")):
            if file.is_file():
                target = out_dir / file.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                file.replace(target)


def train(*, seed: int = 0, n_images: int = 2000, size: int = RESOLUTION, vae_steps: int = 800, unet_steps: int = 2500,
          batch_size: int = 32, out_dir: Path = ASSET_DIR, threads: int | None = None,
          checkpoint_every: int = 0) -> Path:
    if threads:
        torch.set_num_threads(threads)
    generator = seed_everything(derive_seed(seed, "demo_inpainter"))
    components = build_components(seed)
    vae, unet, text_encoder, tokenizer = (components[k] for k in ("vae", "unet", "text_encoder", "tokenizer"))
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler.from_config(components["scheduler"].config)
    pixels, object_masks, labels = demo_images(n_images, size, derive_seed(seed, "demo_inpainter", "data"))
    start = time.time()

    # 1. VAE: reconstruction + a light KL term, as an autoencoder for this image domain.
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    vae.train()
    for step in range(1, vae_steps + 1):
        batch = pixels[torch.randint(len(pixels), (batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=None)).sample
        loss = F.mse_loss(reconstruction, batch) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 250 == 0:
            log.info("vae step %d/%d: loss %.4f (%.0f s)", step, vae_steps, loss.item(), time.time() - start)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        latents = torch.cat([vae.encode(pixels[i:i + 256]).latent_dist.mode() for i in range(0, len(pixels), 256)])
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    scaling = vae.config.scaling_factor
    latents = latents * scaling

    # 2. UNet: SD-inpainting's objective on this domain.
    text_encoder.requires_grad_(False)
    prompts = [f"a photo of a {word} bird" for word in CLASS_WORDS] + [""]
    with torch.no_grad():
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                        return_tensors="pt").input_ids
        prompt_states = text_encoder(ids)[0]
    optimizer = torch.optim.AdamW(unet.parameters(), lr=5e-4, weight_decay=1e-2)
    warmup = max(1, unet_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then cosine decay to 0
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(s, unet_steps) / unet_steps)))
    unet.train()
    for step in range(1, unet_steps + 1):
        index = torch.randint(len(pixels), (batch_size,), generator=generator)
        masks = training_masks(object_masks[index], generator)
        with torch.no_grad():
            masked_latents = vae.encode(pixels[index] * (masks < 0.5)).latent_dist.mode() * scaling
        small_masks = F.interpolate(masks, size=latents.shape[-2:], mode="nearest")
        clean = latents[index]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        drop = torch.rand(batch_size, generator=generator) < 0.1
        states = prompt_states[torch.where(drop, torch.full_like(labels[index], 2), labels[index])]
        prediction = unet(torch.cat([noisy, small_masks, masked_latents], 1), timesteps, states).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 250 == 0:
            log.info("unet step %d/%d: loss %.4f (%.0f s)", step, unet_steps, loss.item(), time.time() - start)
        if checkpoint_every and step % checkpoint_every == 0 and step < unet_steps:
            save(components, vae, unet.eval(), Path(f"{out_dir}-step{step}"))
            unet.train()
    unet.eval()
    save(components, vae, unet, out_dir)
    log.info("saved to %s after %.0f s", out_dir, time.time() - start)
    return out_dir
