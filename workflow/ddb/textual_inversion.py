"""Step ``textual_inversion``: one learned token ``<class>`` per class, diffusers' recipe.

As in diffusers' ``examples/textual_inversion/textual_inversion.py``: add the placeholder token, resize
the embedding matrix, initialise the new row from an initializer word, freeze VAE, UNet and the text
encoder except its input embeddings, and after every optimizer step restore every row but the new
one. The images come from the class's minority group as the dataset names it (supplementary §2.2), so
the token does not learn the majority's spurious context, and are stretched to the square that
inpainting sees. With a 9-channel (inpainting) UNet the step conditions on the masked
image like inpainting training does; with SD-2 base (the paper) it is plain text-to-image.

Each image of a step gets one template drawn from ``templates`` (seeded); the paper formats' are the
authors' fifteen (:mod:`ddb.prompts`). Images are prepared as the authors' script does: RGB, resized
to resolution x resolution with bicubic resampling, no crop, no flip, scaled to [-1, 1]. Their dataset
class uses no mask (a ``mask_3d`` appears there only in a commented-out print), and neither does the
text-to-image step here.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms
from tqdm.auto import tqdm

from .errors import DDBError
from .storage.atomic import atomic_path
from .storage.images import load_image, to_square
from .masking import box_mask, dilate
from .resume import TrainingCheckpoint, generator_state, rng_state, set_rng_state
from .seeding import derive_seed, seed_everything
from .settings import TextualInversionSettings
from .training import require_finite

log = logging.getLogger("ddb")


def placeholder_token(class_name: str) -> str:
    return f"<{class_name}>"


def choose_images(manifest: pd.DataFrame, y: int, settings: TextualInversionSettings, *, seed: int, name: str,
                  minority_group: str | None = None) -> pd.DataFrame:
    """The ``num_images`` training images of class ``y`` the token learns from (a seeded draw): from
    ``minority_group`` (the dataset's named minority group of the class) unless ``source: all`` or the
    class has none, so the token does not learn the majority's spurious context."""
    train = manifest[(manifest["split"] == "train") & (manifest["y"] == y)]
    if settings.source == "minority" and minority_group is not None:
        pool = train[train["group"] == minority_group]
        origin = f"minority group {minority_group!r}"
    else:
        pool, origin = train, f"class {y}"
    if len(pool) < settings.num_images:
        raise DDBError(f"config: datasets.{name}.textual_inversion.num_images",
                       f"asks for {settings.num_images} images but the {origin} has only {len(pool)} training images",
                       f"set num_images to at most {len(pool)}, or source: all to draw from the whole class")
    rng = np.random.default_rng(derive_seed(seed, "textual_inversion", y))
    chosen = np.sort(rng.choice(len(pool), size=settings.num_images, replace=False))
    return pool.iloc[chosen][["sample_id", "path", "group"] + (["mask_path"] if "mask_path" in pool else [])]


def _pixels(image, resolution: int) -> torch.Tensor:
    """[3, r, r] in [-1, 1]: the image stretched to the square the inpainting step gives the pipeline,
    so the token learns the object as inpainting will draw it (CelebA's 178x218 faces included)."""
    return transforms.functional.normalize(transforms.functional.to_tensor(to_square(image, resolution)), [0.5], [0.5])


def _mask_tensor(row, resolution: int, rng: np.random.Generator) -> torch.Tensor:
    """A box around the object (grown by 1-3 px) when the dataset has masks, else a random box.

    A box, not the silhouette: a silhouette would tell the UNet the object's shape, and the token
    would not need to learn it.
    """
    if isinstance(row.get("mask_path"), str):
        mask = to_square(load_image(row["mask_path"], "L"), resolution, Image.NEAREST)
        box = dilate(box_mask(np.asarray(mask) > 127), int(rng.integers(1, 4)))
        return torch.from_numpy(box.astype(np.float32))[None]
    mask = torch.zeros(1, resolution, resolution)
    h, w = rng.integers(resolution // 4, resolution // 2 + 1, size=2)
    top, left = rng.integers(0, resolution - h + 1), rng.integers(0, resolution - w + 1)
    mask[:, top:top + h, left:left + w] = 1
    return mask


def learn_token(components: dict, images: pd.DataFrame, class_name: str, settings: TextualInversionSettings, *,
                seed: int, device, name: str = "dataset",
                resume: TrainingCheckpoint | None = None) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Train the token of ``class_name``; return ({token: embedding[1, hidden]}, loss per step).

    With ``resume``, a checkpoint is saved every ``settings.checkpoint_every`` steps and a run goes on from
    the last one found (:mod:`ddb.resume`).
    """
    tokenizer, text_encoder = components["tokenizer"], components["text_encoder"]
    vae, unet, scheduler = components["vae"], components["unet"], components["noise_scheduler"]
    token = placeholder_token(class_name)
    if tokenizer.add_tokens([token]) != 1:
        raise DDBError(f"config: datasets.{name}.classes", f"token {token!r} already exists in the tokenizer",
                       "rename the class")
    initializer_ids = tokenizer.encode(settings.initializer_token, add_special_tokens=False)
    if len(initializer_ids) != 1:
        raise DDBError(f"config: datasets.{name}.textual_inversion.initializer_token",
                       f"{settings.initializer_token!r} is {len(initializer_ids)} tokens, not one",
                       "choose a single common word (e.g. bird, animal, hair)")
    token_id = tokenizer.convert_tokens_to_ids(token)
    text_encoder.resize_token_embeddings(len(tokenizer))
    embeddings = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        embeddings[token_id] = embeddings[initializer_ids[0]].clone()
    original = embeddings.detach().clone()
    keep_fixed = torch.ones(len(tokenizer), dtype=torch.bool)
    keep_fixed[token_id] = False

    generator = seed_everything(derive_seed(seed, "textual_inversion", class_name))
    rng = np.random.default_rng(derive_seed(seed, "textual_inversion", class_name, "masks"))
    use_cuda = torch.device(device).type == "cuda"
    # the frozen UNet and VAE: float16 under autocast on CUDA with dtype auto/float16; float32 is the authors'
    # script's default (accelerate with no mixed precision) and what a CPU runs
    half = use_cuda and settings.dtype in ("auto", "float16")
    weight_dtype = torch.float16 if half else torch.float32
    vae.requires_grad_(False).to(device, dtype=weight_dtype).eval()
    unet.requires_grad_(False).to(device, dtype=weight_dtype).eval()
    text_encoder.to(device).train()
    text_encoder.requires_grad_(False)
    text_encoder.get_input_embeddings().requires_grad_(True)
    original, keep_fixed = original.to(device), keep_fixed.to(device)
    inpainting = unet.config.in_channels == 9
    scaling = vae.config.scaling_factor

    rows = images.to_dict("records")
    pixels = torch.stack([_pixels(load_image(r["path"]), settings.resolution) for r in rows])
    lr = settings.lr * settings.batch_size if settings.scale_lr else settings.lr
    optimizer = torch.optim.AdamW(text_encoder.get_input_embeddings().parameters(), lr=lr,
                                  betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    templates = settings.templates
    losses, start = [], 0
    embedding_weight = text_encoder.get_input_embeddings().weight
    state = resume.load() if resume is not None else None
    if state is not None:
        with torch.no_grad():
            embedding_weight[token_id] = state["embedding"].to(embedding_weight)
        _load_row_state(optimizer, embedding_weight, token_id, state["optimizer"])
        generator.set_state(state["generator"])
        rng.bit_generator.state = state["masks_rng"]
        set_rng_state(state["rng"])
        losses, start = list(state["losses"]), state["step"]
        resume.announce(f"step {start}", f"{settings.steps}")
    every = settings.checkpoint_every
    for step in tqdm(range(start + 1, settings.steps + 1), initial=start, total=settings.steps,
                     desc=f"textual inversion {token}", mininterval=10):
        batch_index = torch.randint(len(rows), (settings.batch_size,), generator=generator)
        prompts = [templates[int(i)] .format(token) for i in torch.randint(len(templates), (settings.batch_size,),
                                                                         generator=generator)]
        input_ids = tokenizer(prompts, padding="max_length", truncation=True,
                              max_length=tokenizer.model_max_length, return_tensors="pt").input_ids.to(device)
        batch = pixels[batch_index].to(device, dtype=weight_dtype)
        with torch.no_grad():
            latents = vae.encode(batch).latent_dist.sample(generator=None) * scaling
        noise = torch.randn(latents.shape, generator=generator).to(device, dtype=latents.dtype)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),), generator=generator).to(device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=half):
            hidden = text_encoder(input_ids)[0].to(dtype=weight_dtype)
            if inpainting:
                masks = torch.stack([_mask_tensor(rows[int(i)], settings.resolution, rng) for i in batch_index])
                masks = masks.to(device, dtype=weight_dtype)
                with torch.no_grad():
                    masked = vae.encode(batch * (1 - masks)).latent_dist.mode() * scaling
                small_masks = F.interpolate(masks, size=latents.shape[-2:], mode="nearest")
                noisy = torch.cat([noisy, small_masks, masked], dim=1)
            prediction = unet(noisy, timesteps, hidden).sample
        target = (scheduler.get_velocity(latents, noise, timesteps)
                  if scheduler.config.prediction_type == "v_prediction" else noise)
        loss = F.mse_loss(prediction.float(), target.float())
        require_finite(loss, what=f"textual_inversion ({name}, {token})", when=f"step {step}", lr=lr,
                       lr_key=f"datasets.{name}.textual_inversion.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # only the new row may change
            text_encoder.get_input_embeddings().weight[keep_fixed] = original[keep_fixed]
        losses.append({"step": step, "loss": loss.item()})
        if resume is not None and every and step % every == 0 and step < settings.steps:
            resume.save({"step": step, "embedding": embedding_weight[token_id].detach().cpu().clone(),
                         "optimizer": _row_state(optimizer, embedding_weight, token_id),
                         "generator": generator_state(generator), "masks_rng": rng.bit_generator.state,
                         "rng": rng_state(), "losses": losses})
    learned = text_encoder.get_input_embeddings().weight[token_id:token_id + 1].detach().float().cpu().clone()
    return {token: learned}, pd.DataFrame(losses)


def _row_state(optimizer, weight: torch.Tensor, row: int) -> dict:
    """The optimizer's state of the embedding matrix, only its row ``row`` (the new token's) kept.

    Enough to go on exactly: every other row is put back to its original value after each step, and
    AdamW updates each entry from its own moments, so their moments never reach the token's row. A full
    copy would be three embedding matrices (600 MB for SD-2's text encoder) at every checkpoint.
    """
    state = optimizer.state[weight]
    return {key: value[row].detach().cpu().clone() if torch.is_tensor(value) and value.shape == weight.shape
            else (value.detach().cpu().clone() if torch.is_tensor(value) else value)
            for key, value in state.items()}


def _load_row_state(optimizer, weight: torch.Tensor, row: int, saved: dict) -> None:
    """Put a state saved by :func:`_row_state` back: the token's row, zeros elsewhere."""
    state = {}
    for key, value in saved.items():
        if torch.is_tensor(value) and value.shape == weight.shape[1:]:
            full = torch.zeros_like(weight, memory_format=torch.preserve_format)
            full[row] = value.to(full)
            state[key] = full
        elif torch.is_tensor(value):
            state[key] = value.clone()
        else:
            state[key] = value
    optimizer.state[weight] = state


def save_embeddings(learned: dict[str, torch.Tensor], path) -> None:
    """``{token: tensor[1, hidden]}``, the layout ``pipeline.load_textual_inversion`` reads as is."""
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in learned.items()}, str(tmp))
