"""How long each GPU job takes, estimated from its work: FLOPs per image x images / the card's rate.

A job's floating-point work is the FLOPs of one image through its model (counted once per architecture
and resolution with :class:`torch.utils.flop_counter.FlopCounterMode` on the meta device: no weights, no
memory, no time), times the images the job processes (training: images x epochs, a backward pass costing
twice the forward one), divided by the card's dense peak for the precision the step computes in at an
efficiency that real jobs reach (data loading, small batches, optimizer steps and the scheduler keep a
GPU below its peak), plus a fixed overhead for starting Python and loading the models. The counts of the
paper's models are shipped in :data:`FORWARD_FLOPS` (checked against a fresh count by the tests); any other
architecture or resolution is counted the first time it is asked for.

The estimates set each GPU rule's `runtime` request on a cluster (ddb.resources) unless the config sets
`runtime`; :func:`training_retries` gives the training rules enough attempts to finish under a capped
runtime, going on from their checkpoint each time (ddb.resume).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from .sharding import planned_sources

# Dense peak TFLOP/s of the cards a config's resources.gpu_model names, by the precision a step computes in
# (NVIDIA's data sheets, without sparsity). fp32 with TF32 allowed runs convolutions and matmuls as TF32.
GPU_PEAK_TFLOPS = {
    "a100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "h100": {"fp32": 67.0, "tf32": 494.0, "bf16": 989.0, "fp16": 989.0},
    "v100": {"fp32": 15.7, "tf32": 15.7, "bf16": 15.7, "fp16": 125.0},
}
DEFAULT_GPU = "a100"
# The share of the peak a job sustains over its whole run (an assumption, overridable: resources.efficiency).
DEFAULT_EFFICIENCY = 0.25
# Minutes of every GPU job that no FLOP count covers: interpreter and CUDA start, reading the models.
DEFAULT_OVERHEAD_MINUTES = 10

# Split sizes of the paper's datasets (their published splits), which the config alone cannot count: CelebA's
# training split is the class-balanced subsample the paper trains on (class_balance: subsample).
SPLIT_SIZES = {
    "waterbirds": {"train": 4795, "val": 1199, "test": 5794},
    "celeba": {"train": 48534, "val": 19867, "test": 19962},
    "metashift": {"train": 2276, "val": 349, "test": 874},
    "imagenet": {"train": 2600, "val": 100, "test": 200},
}

# Forward FLOPs of one image: (model, resolution) -> FLOPs, as :func:`count_forward_flops` counts them.
# "sd2-inpainting-unet": one denoising step of stabilityai/stable-diffusion-2-inpainting's UNet on one
# image's latents (a guided step runs two: the prompt's and the empty one's).
FORWARD_FLOPS = {
    ("resnet50", 224): 8_174_280_704,  # two classes
    ("sd2-inpainting-unet", 512): 804_375_429_120,
}
UNET_CONFIG = (Path(__file__).resolve().parent / "assets" / "configs" / "stabilityai--stable-diffusion-2-inpainting"
               / "unet" / "config.json")
# The text encoder's context the UNet attends to (OpenCLIP ViT-H/14: 77 tokens)
PROMPT_TOKENS = 77
# Each GPU rule and what its runtime is estimated from; the others keep their configured runtime.
ESTIMATED_RULES = ("train_erm", "textual_inversion", "select_low_loss", "inpaint", "ig_score", "retrain",
                   "tune_retrain", "dfr", "evaluate")
TRAINING_RULES = ("train_erm", "textual_inversion", "retrain", "tune_retrain")


def count_forward_flops(model: str, resolution: int) -> int:
    """FLOPs of one image through ``model`` (a torchvision ResNet name, ``tiny``, or ``sd2-inpainting-unet``)
    at ``resolution``, from the shipped table or counted on the meta device."""
    known = FORWARD_FLOPS.get((model, int(resolution)))
    return known if known is not None else _count_on_meta(model, int(resolution))


@lru_cache(maxsize=None)
def _count_on_meta(model: str, resolution: int) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        if model == "sd2-inpainting-unet":
            from diffusers import UNet2DConditionModel

            config = json.loads(UNET_CONFIG.read_text())
            network = UNet2DConditionModel.from_config(config)
            latent = resolution // 8
            arguments = (torch.empty(1, config["in_channels"], latent, latent), torch.tensor([1]),
                         torch.empty(1, PROMPT_TOKENS, config["cross_attention_dim"]))
        else:
            from .models.classifier import build_classifier

            network = build_classifier(model, 2, None, 0)
            arguments = (torch.empty(1, 3, resolution, resolution),)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network.eval()(*arguments)
    return int(counter.get_total_flops())


def classifier_peak_key(classifier_cfg: dict) -> str:
    """The precision f computes in on a CUDA card (ddb.precision's `auto` is bf16 there)."""
    precision = classifier_cfg.get("precision", "auto")
    if precision in ("auto", "bf16", "fp16"):
        return "bf16" if precision == "auto" else precision
    return "tf32" if classifier_cfg.get("tf32", True) else "fp32"


def diffusion_peak_key(dtype: str) -> str:
    return {"auto": "fp16", "float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(dtype, "fp16")


def split_sizes(dataset_cfg: dict) -> dict[str, int]:
    """Images of each split: the paper's sizes for its formats, the drawn demo's from its config, a sample
    sheet's from the sheet."""
    fmt = dataset_cfg["format"]
    if fmt == "synthetic":
        synthetic = dataset_cfg["synthetic"]
        groups = 2 * len(dataset_cfg["classes"])
        return {"train": synthetic["n_train"], "val": synthetic["n_val_per_group"] * groups,
                "test": synthetic["n_test_per_group"] * groups}
    if fmt == "table":  # counted from the sample sheet
        from .datasets.table import split_counts

        return split_counts(dataset_cfg)
    return dict(SPLIT_SIZES[fmt])


def is_sd2_sized(model_ref: str) -> bool:
    """Whether a diffusion model reference is the paper's SD-2 inpainting architecture (a hub id, a local
    folder or its `random:` stand-in) rather than a test's `tiny` model or the demo's own inpainter."""
    return model_ref != "tiny" and not str(model_ref).startswith("ddb:")


def generated_upper_bound(dataset_cfg: dict) -> int:
    """Most generated images retraining can get: every planned source's draws, none pruned (0 for a class
    whose sources only the dataset knows)."""
    per_source = dataset_cfg["generation"]["per_source"]
    return sum((planned_sources(dataset_cfg, name) or 0) * per_source for name in dataset_cfg["classes"])


def rule_work(rule: str, dataset_cfg: dict) -> dict | None:
    """The work of one job of ``rule``: ``flops`` (total), ``images`` (image passes through the model of
    the count, training passes counted once) and ``precision`` (the key of :data:`GPU_PEAK_TFLOPS`).
    Generation rules are one shard's job with a full shard; None for a diffusion step of another model
    than SD-2's architecture."""
    classifier = dataset_cfg["classifier"]
    arch, size = classifier["arch"], classifier["image_size"]
    splits = split_sizes(dataset_cfg)
    f = count_forward_flops(arch, size)
    precision = classifier_peak_key(classifier)
    if rule == "train_erm":
        erm = dataset_cfg["erm"]
        if erm.get("checkpoint"):
            return {"flops": f * splits["val"], "images": splits["val"], "precision": precision}
        images = splits["train"] * erm["epochs"]
        return {"flops": 3 * f * images + f * splits["val"] * erm["epochs"], "images": images,
                "precision": precision}
    if rule in ("retrain", "tune_retrain"):
        retrain = dataset_cfg["retrain"]
        if retrain["batching"] == "joint":  # one pass over real and generated images an epoch
            images = (splits["train"] + generated_upper_bound(dataset_cfg)) * retrain["epochs"]
        else:  # every real batch joined by a generated batch of each class
            steps = math.ceil(splits["train"] / retrain["batch_size"])
            per_step = retrain["batch_size"] + retrain["generated_batch_size"] * len(dataset_cfg["classes"])
            images = steps * per_step * retrain["epochs"]
        return {"flops": 3 * f * images + f * splits["val"] * retrain["epochs"], "images": images,
                "precision": precision}
    if rule == "select_low_loss":  # one class's training images
        images = math.ceil(splits["train"] / len(dataset_cfg["classes"]))
        return {"flops": f * images, "images": images, "precision": precision}
    if rule == "ig_score":  # every IG step is a forward and a backward pass
        images = dataset_cfg["generation"]["images_per_shard"] * dataset_cfg["ig"]["n_steps"]
        return {"flops": 3 * f * images, "images": images, "precision": precision}
    if rule == "dfr":
        images = splits["train"] + splits["val"]
        return {"flops": f * images, "images": images, "precision": precision}
    if rule == "evaluate":  # ERM's, DDB's and DFR's models on validation and test
        images = 3 * (splits["val"] + splits["test"])
        return {"flops": f * images, "images": images, "precision": precision}
    if rule in ("inpaint", "textual_inversion") and not is_sd2_sized(dataset_cfg[
            "inpainting" if rule == "inpaint" else "textual_inversion"]["model"]):
        return None
    if rule == "inpaint":
        inpainting = dataset_cfg["inpainting"]
        guided = 2 if inpainting["guidance_scale"] > 1 else 1
        unet = count_forward_flops("sd2-inpainting-unet", inpainting["resolution"])
        images = dataset_cfg["generation"]["images_per_shard"]
        return {"flops": unet * guided * inpainting["steps"] * images, "images": images,
                "precision": diffusion_peak_key(inpainting.get("dtype", "auto"))}
    if rule == "textual_inversion":  # SD-2-base's UNet: the inpainting one but for 4 input channels of 9
        ti = dataset_cfg["textual_inversion"]
        unet = count_forward_flops("sd2-inpainting-unet", ti["resolution"])
        images = ti["steps"] * ti["batch_size"]
        return {"flops": 3 * unet * images, "images": images,
                "precision": diffusion_peak_key(ti.get("dtype", "auto"))}
    raise KeyError(rule)


def peak_tflops(resources_cfg: dict, precision: str) -> float:
    """The card's dense peak for ``precision``: resources.gpu_peak_tflops (one number, or one per precision)
    where set, else the data sheet of resources.gpu_model (an A100's when it names none we know)."""
    configured = resources_cfg.get("gpu_peak_tflops")
    if isinstance(configured, (int, float)):
        return float(configured)
    if isinstance(configured, dict) and precision in configured:
        return float(configured[precision])
    model = str(resources_cfg.get("gpu_model") or DEFAULT_GPU).lower()
    return GPU_PEAK_TFLOPS.get(model, GPU_PEAK_TFLOPS[DEFAULT_GPU])[precision]


def estimate_minutes(flops: float, peak: float, efficiency: float = DEFAULT_EFFICIENCY,
                     overhead: float = DEFAULT_OVERHEAD_MINUTES) -> int:
    """Whole minutes for ``flops`` at ``efficiency`` of ``peak`` TFLOP/s, plus ``overhead`` minutes."""
    seconds = flops / (peak * 1e12 * efficiency)
    return max(1, math.ceil(overhead + seconds / 60))


def rule_estimate(rule: str, dataset_cfg: dict, resources_cfg: dict) -> dict | None:
    """The work and estimated minutes of a job of ``rule`` for a dataset entry (None for a rule that is not
    estimated, and for the drawn demo, whose jobs may run on a CPU: a GPU's rate says nothing there)."""
    if rule not in ESTIMATED_RULES or dataset_cfg["format"] == "synthetic":
        return None
    work = rule_work(rule, dataset_cfg)
    if work is None:
        return None
    peak = peak_tflops(resources_cfg, work["precision"])
    efficiency = resources_cfg.get("efficiency") or DEFAULT_EFFICIENCY
    overhead = resources_cfg.get("overhead_minutes", DEFAULT_OVERHEAD_MINUTES)
    return {**work, "peak_tflops": peak, "efficiency": efficiency,
            "minutes": estimate_minutes(work["flops"], peak, efficiency, overhead)}


def attempts_needed(total_minutes: int, cap_minutes: int | None) -> int:
    """Attempts a training job that goes on from its checkpoint needs when each may run ``cap_minutes``:
    every allocation but the last runs to its end, and one more covers the epoch each one loses."""
    if cap_minutes is None or total_minutes <= cap_minutes:
        return 1
    return math.ceil(total_minutes / cap_minutes) + 1


def training_retries(runtimes: list[tuple[int, int | None]]) -> int | None:
    """Snakemake `retries` of a training rule whose jobs take (total minutes, cap minutes) each: the
    retries of the job that needs the most attempts (:func:`attempts_needed`), or None where every job
    finishes in one attempt (then the profile's `retries` holds, and a retry asks for twice the runtime)."""
    needed = max((attempts_needed(total, cap) for total, cap in runtimes), default=1)
    return needed - 1 if needed > 1 else None
