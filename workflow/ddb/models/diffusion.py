"""Stable Diffusion components: the paper's SD-2 models from the hub or a folder, or `tiny` miniatures.

`tiny` follows diffusers' own test components (``get_dummy_components`` of the SD-2 inpainting tests):
a UNet with 9 input channels (4 latent + 4 masked-image latent + 1 mask), an ``AutoencoderKL`` and a
``CLIPTextModel``, all with seeded random weights. Its tokenizer is a byte-level BPE vocabulary that
this module writes itself (diffusers' tests download one), with the words of the prompt templates
merged into single tokens so that textual inversion's initializer word is one token.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import pre_tokenizers

from ..seeding import derive_seed
from .loading import RANDOM_PREFIX, TINY, hub_source, model_load_error, resolve_ref
from .random_init import is_random

# Words of the default prompt templates and initializer tokens: each becomes one BPE token.
TINY_VOCAB_WORDS = [
    "a", "photo", "of", "the", "rendering", "cropped", "close", "-", "up", "bright", "good", "dark",
    "small", "large", "bird", "landbird", "waterbird", "hair", "person", "with", "animal", "cat", "dog",
    "bee", "cockroach", "blond", "non", "object", "shape", "disk", "triangle", "on", "land", "water", "in",
]
TINY_TEXT_HIDDEN = 32
# The `random:` models' tokenizer knows these as whole words too (textual inversion's initializer token must
# be one token): the initializer words of every config entry (ImageNet-A's "insect" included).
RANDOM_VOCAB_WORDS = TINY_VOCAB_WORDS + ["insect", "face", "thing", "picture", "image", "shelf", "sofa", "bed"]


def _merges_for(word: str) -> list[tuple[str, str]]:
    """Left-to-right merges that turn ``word`` + ``</w>`` into one symbol."""
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    merges = []
    while len(symbols) > 1:
        merges.append((symbols[0], symbols[1]))
        symbols = [symbols[0] + symbols[1]] + symbols[2:]
    return merges


def build_tiny_tokenizer(vocab_size: int | None = None, words: list[str] | None = None):
    """A CLIPTokenizer over byte-level characters plus whole-word tokens for ``words`` (TINY_VOCAB_WORDS).

    With ``vocab_size`` (the `random:` models: CLIP's 49408), unused entries pad the vocabulary so that
    ``<|startoftext|>`` and ``<|endoftext|>`` get the last two ids, as in CLIP's own tokenizer, and a token
    added by textual inversion gets id ``vocab_size`` with an embedding matrix of the published size.
    """
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for symbol in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(symbol, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in words or TINY_VOCAB_WORDS:
        for left, right in _merges_for(word):
            if (left, right) not in merges:
                merges.append((left, right))
                vocab.setdefault(left + right, len(vocab))
    if vocab_size is not None:
        for index in range(len(vocab), vocab_size - 2):  # never produced: no merge leads to them
            vocab[f"<|unused{index}|>"] = index
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def build_tiny_text_encoder(tokenizer, seed: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(derive_seed(seed, "tiny", "text_encoder"))
    config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, hidden_size=TINY_TEXT_HIDDEN, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5, vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length, hidden_act="gelu", projection_dim=64,
    )
    return CLIPTextModel(config)


def build_tiny_unet(seed: int, in_channels: int = 9, sample_size: int = 32):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(derive_seed(seed, "tiny", "unet", in_channels))
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=sample_size, in_channels=in_channels,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=TINY_TEXT_HIDDEN,
        attention_head_dim=(2, 4), use_linear_projection=True,
    )


def build_tiny_vae(seed: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(derive_seed(seed, "tiny", "vae"))
    return AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, sample_size=64,
    )


def tiny_components(seed: int, in_channels: int = 9) -> dict:
    """The miniature SD components. Text encoder, tokenizer and VAE are the same for the text-to-image
    (4 channels, textual inversion) and inpainting (9 channels) variants, as in SD-2 base/inpainting."""
    from diffusers import DDIMScheduler

    tokenizer = build_tiny_tokenizer()
    return {
        "tokenizer": tokenizer,
        "text_encoder": build_tiny_text_encoder(tokenizer, seed),
        "vae": build_tiny_vae(seed),
        "unet": build_tiny_unet(seed, in_channels),
        "scheduler": DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   clip_sample=False, set_alpha_to_one=False, steps_offset=1),
    }


def random_components(ref: str, *, seed: int, device: torch.device | str | None = None,
                      config_key: str = "inpainting.model") -> dict:
    """The SD components of ``random:org/name`` (SD-2 base, inpainting or 768-v): UNet, VAE, OpenCLIP-H text
    encoder and scheduler from the published configs in ``ddb/assets/configs``, seeded random weights, built
    on ``device``. Text encoder and VAE draw the same weights for every SD-2 variant, as the hub's share
    them, so a token learned through SD-2 base fits the inpainting model's text encoder."""
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .random_init import build_seeded, random_manifest, read_config

    manifest = random_manifest(ref, config_key, "stable_diffusion")
    text_config = CLIPTextConfig.from_dict(read_config(manifest, "text_encoder/config.json"))
    scheduler_config = read_config(manifest, "scheduler/scheduler_config.json")
    return {
        "tokenizer": build_tiny_tokenizer(vocab_size=text_config.vocab_size, words=RANDOM_VOCAB_WORDS),
        "text_encoder": build_seeded(lambda: CLIPTextModel(text_config), derive_seed(seed, "random", "text_encoder"),
                                     device),
        "vae": build_seeded(lambda: AutoencoderKL.from_config(read_config(manifest, "vae/config.json")),
                            derive_seed(seed, "random", "vae"), device),
        "unet": build_seeded(lambda: UNet2DConditionModel.from_config(read_config(manifest, "unet/config.json")),
                             derive_seed(seed, "random", RANDOM_PREFIX + manifest["model"], "unet"), device),
        "scheduler": getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config),
    }


def load_inpaint_pipeline(ref: str, *, seed: int, device: torch.device | str = "cpu",
                          dtype: torch.dtype = torch.float32, scheduler: str | None = None,
                          config_key: str = "inpainting.model"):
    """StableDiffusionInpaintPipeline from `tiny`, `random:org/name`, a local folder or a hub id, on ``device``."""
    from diffusers import StableDiffusionInpaintPipeline

    ref = resolve_ref(ref, config_key)
    if ref == TINY:
        pipeline = StableDiffusionInpaintPipeline(**tiny_components(seed, 9), safety_checker=None,
                                                  feature_extractor=None, requires_safety_checker=False)
    elif is_random(ref):
        pipeline = StableDiffusionInpaintPipeline(**random_components(ref, seed=seed, device=device,
                                                                      config_key=config_key),
                                                  safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)
    else:
        try:
            source, options = hub_source(ref)
            pipeline = StableDiffusionInpaintPipeline.from_pretrained(
                source, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False, **options)
        except Exception as error:
            raise model_load_error(ref, "Stable Diffusion inpainting pipeline", error, config_key) from error
    if pipeline.unet.config.in_channels != 9:
        from ..errors import DDBError

        raise DDBError(f"config: {config_key}", f"{ref!r} has a UNet with {pipeline.unet.config.in_channels} "
                       "input channels, not an inpainting UNet (9)",
                       "use an inpainting model such as sd2-community/stable-diffusion-2-inpainting")
    if scheduler:
        pipeline.scheduler = _scheduler_from_name(scheduler, pipeline.scheduler.config, config_key)
    # from_pretrained already applied torch_dtype; only the freshly built models need a cast
    built = ref == TINY or is_random(ref)
    pipeline = pipeline.to(device=device, dtype=dtype) if built else pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    if torch.device(device).type == "cuda":
        pipeline.unet.to(memory_format=torch.channels_last)
    return pipeline


def _scheduler_from_name(name: str, config, config_key: str):
    import diffusers

    from ..errors import DDBError

    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise DDBError(f"config: {config_key.rsplit('.', 1)[0]}.scheduler", f"unknown scheduler {name!r}",
                       "use a diffusers scheduler class name, e.g. DPMSolverMultistepScheduler")
    return cls.from_config(config)


def load_text_to_image_components(ref: str, *, seed: int, config_key: str = "textual_inversion.model",
                                  device: torch.device | str | None = None) -> dict:
    """tokenizer, text_encoder, vae, unet and the training noise scheduler (DDPM) for textual inversion.

    ``ref`` may be a text-to-image model (SD-2 base, as in the paper) or an inpainting one: the
    textual-inversion step conditions the 9-channel UNet on a masked image when it gets one. A
    ``random:`` model is built on ``device`` (the CPU when None); the step moves the others there.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    ref = resolve_ref(ref, config_key)
    if ref == TINY:
        components = tiny_components(seed, in_channels=4)
        components["noise_scheduler"] = DDPMScheduler.from_config(components.pop("scheduler").config)
        return components
    if is_random(ref):
        components = random_components(ref, seed=seed, device=device, config_key=config_key)
        components["noise_scheduler"] = DDPMScheduler.from_config(components.pop("scheduler").config)
        return components
    source, weights = hub_source(ref)
    files = {k: v for k, v in weights.items() if k == "revision"}  # tokenizer and scheduler hold no weights
    try:
        return {
            "tokenizer": CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **files),
            "text_encoder": CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **weights),
            "vae": AutoencoderKL.from_pretrained(source, subfolder="vae", **weights),
            "unet": UNet2DConditionModel.from_pretrained(source, subfolder="unet", **weights),
            "noise_scheduler": DDPMScheduler.from_pretrained(source, subfolder="scheduler", **files),
        }
    except Exception as error:
        raise model_load_error(ref, "Stable Diffusion model", error, config_key) from error


def save_tiny_pipeline(directory: str | Path, seed: int) -> Path:
    """Write the tiny inpainting pipeline with save_pretrained (for the local-folder route)."""
    pipeline = load_inpaint_pipeline(TINY, seed=seed)
    pipeline.save_pretrained(directory)
    return Path(directory)
