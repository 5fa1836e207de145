"""Throughput and peak memory of the generation steps (masking, inpainting, IG), one image at a time
versus batched, and what they imply for the paper's datasets on one A100.

Each step runs through the code its rule runs (``mask_shard``, ``inpaint_shard``, ``score_shard``,
writing real shards into a temporary folder), first with batch size 1 and then batched, after an
untimed warm-up so that one-off costs (kernel selection, allocator growth) are not counted. Models
are loaded once per step, as a job does, and the load time is printed separately.

    python benchmarks/generation.py --quick     # tiny models on a CPU, a few seconds
    python benchmarks/generation.py             # tiny models at the demo's sizes
    python benchmarks/generation.py --real      # the paper's models: SD-2 inpainting fp16 512 px 50 steps,
                                                # GroundingDINO-tiny + SAM-ViT-B, ResNet-50 IG with 50 steps
    python benchmarks/generation.py --paper-arch
        # the paper's architectures at full size with seeded random weights (`random:` models, nothing to
        # download): GroundingDINO-base + SAM-ViT-H, SD-2 inpainting fp16 512 px 50 steps guidance 7.5,
        # ResNet-50 IG 224 px 50 steps; several batch sizes per step. On a CPU: SAM-ViT-B, a 256-px
        # detector input, 64-px inpainting with 2 steps and IG with 2 steps (printed as such)

``--real`` needs a GPU and the weights in the Hugging Face cache (docs/cluster.md says how to fetch them).
``--paper-arch`` needs neither: time and memory do not depend on the weights' values.
Peak memory is torch.cuda.max_memory_allocated on a GPU and the growth of the process's resident set
(sampled every 2 ms) on a CPU. The A100-hours projection is printed only from GPU measurements of the
real models (or their architectures, ``--paper-arch``); tiny models on a CPU say nothing about an A100.
Prints figures only, never passes or fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from ddb.config import validate_config  # noqa: E402
from ddb.errors import DDBError  # noqa: E402
from ddb.ig_scoring import score_shard  # noqa: E402
from ddb.settings import IgSettings, InpaintingSettings, MaskingSettings  # noqa: E402
from ddb.inpainting import inpaint_shard, torch_dtype  # noqa: E402
from ddb.storage.shards import ImageShard, write_image_shard  # noqa: E402
from ddb.storage.images import png_bytes  # noqa: E402
from ddb.masking import make_masker, mask_shard  # noqa: E402
from ddb.models.classifier import build_classifier  # noqa: E402
from ddb.models.diffusion import load_inpaint_pipeline  # noqa: E402

SEED = 0

# The paper's datasets (docs/method.md, supplementary Tables 1-4). `sources` is every training image of both
# classes (what `generation.sources: all` redraws, one generation per source for two classes);
# `paper_generated` is how many images the paper generated (its pruning counts: Waterbirds 1300 + 1112,
# CelebA 120000, MetaShift 400); `table4_hours` is its generation time on one A100.
PAPER_DATASETS = {
    "Waterbirds": {"sources": 3498 + 184 + 56 + 1018, "paper_generated": 1300 + 1112, "table4_hours": 1.0},
    "CelebA": {"sources": 12426 + 11841 + 22880 + 1387, "paper_generated": 120000, "table4_hours": 5.0},
    "MetaShift": {"sources": 231 + 380 + 145 + 367, "paper_generated": 400, "table4_hours": 0.5},
}


def paper_shards(entry: str) -> int:
    """Shards of config.yaml's dataset ``entry``, summed over its source classes (ddb.sharding counts them
    from K, per_source and generation.images_per_shard): the jobs of each of mask, inpaint and ig_score."""
    import yaml

    from ddb.sharding import shard_counts

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    dataset = validate_config({"datasets": {entry: config["datasets"][entry]}})["datasets"][entry]
    return sum(shard_counts(dataset).values())


# The work of config.yaml's paper entries (generation.sources: low_loss): `masks` = the sources D_i (K per
# class), `generated` = images inpainted and scored (K x per_source), `jobs` = the shards of both source
# classes, the jobs of each of mask, inpaint and ig_score (each pays its setup once).
# benchmarks/rehearsal.py uses it too.
PAPER_WORK = {
    "Waterbirds": {"masks": 1300 + 1074, "generated": 1300 + 1074, "jobs": paper_shards("waterbirds"),
                   "table4_hours": 1.0},
    "CelebA": {"masks": 2 * 20000, "generated": 2 * 20000 * 3, "jobs": paper_shards("celeba"), "table4_hours": 5.0},
    "MetaShift": {"masks": 2 * 200, "generated": 2 * 200, "jobs": paper_shards("metashift"), "table4_hours": 0.5},
}
# --paper-arch: the paper's models as `random:` references (ddb.models.random_init)
PAPER_ARCH = {"detector": "random:IDEA-Research/grounding-dino-base", "segmenter": "random:facebook/sam-vit-huge",
              "inpainting": "random:sd2-community/stable-diffusion-2-inpainting", "classifier": "random:resnet50"}


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run; the step configs start from the schema's defaults (the paper's)."""

    label: str
    real: bool
    n_images: int
    image_size: int  # side of the synthetic source images
    mask_batch: int
    inpaint_batch: int
    ig_batch: int
    inpaint_overrides: dict
    ig_overrides: dict
    classifier_overrides: dict
    masking_overrides: dict
    repeat: int = 1  # timed runs per configuration; the fastest counts
    paper_arch: bool = False  # the paper's architectures with random weights
    sweep: dict = dataclasses.field(default_factory=dict)  # step -> further batch sizes to time
    warmup: bool = True  # untimed runs at each batch shape first (GPU kernel selection)
    detector_size: dict | None = None  # a smaller detector input than the published 800 px (CPU)
    reduced: str = ""  # what a CPU run reduces, printed


def settings_for(args) -> Settings:
    return dataclasses.replace(_sizes_for(args), repeat=max(1, args.repeat))


def _sizes_for(args) -> Settings:
    if getattr(args, "paper_arch", False):
        return paper_arch_settings(args.n, on_gpu=torch.device(args.device or (
            "cuda" if torch.cuda.is_available() else "cpu")).type == "cuda")
    if args.real:
        # The schema's defaults are the paper's settings: SD-2 inpainting, 512 px, 50 steps, guidance 7.5,
        # fp16 on a GPU; IG with 50 steps over a ResNet-50 at 224 px. Random classifier weights: the
        # timing does not depend on them, and no ImageNet download is needed.
        # Thresholds 0: every noise image gets a box, so SAM runs for each one as it would on real photos.
        return Settings("real models", True, args.n or 16, 512, 8, 8, 16, {}, {}, {"weights": None},
                        {"box_threshold": 0.0, "text_threshold": 0.0})
    tiny_models = {"model": "tiny"}
    if args.quick:
        return Settings("tiny models, --quick", False, args.n or 4, 48, 4, 4, 4,
                        {**tiny_models, "resolution": 32, "steps": 2}, {"n_steps": 4, "internal_batch_size": 64},
                        {"arch": "tiny", "weights": None, "image_size": 32},
                        {"detector": "tiny", "segmenter": "tiny", "box_threshold": 0.0, "text_threshold": 0.0})
    return Settings("tiny models, demo sizes", False, args.n or 16, 64, 8, 8, 8,
                    {**tiny_models, "resolution": 64, "steps": 10}, {"n_steps": 16, "internal_batch_size": 128},
                    {"arch": "tiny", "weights": None, "image_size": 64},
                    {"detector": "tiny", "segmenter": "tiny", "box_threshold": 0.0, "text_threshold": 0.0})


def paper_arch_settings(n: int | None, on_gpu: bool) -> Settings:
    """--paper-arch: the paper's architectures at full size with seeded random weights, at the paper's
    settings on a GPU (schema defaults: 512 px, 50 steps, guidance 7.5, fp16; IG 50 steps at 224 px).
    A CPU keeps the full-size models but reduces what they compute, and says so."""
    models = {"detector": PAPER_ARCH["detector"], "segmenter": PAPER_ARCH["segmenter"],
              "box_threshold": 0.0, "text_threshold": 0.0}
    classifier = {"arch": "resnet50", "weights": PAPER_ARCH["classifier"], "image_size": 224}
    if on_gpu:
        return Settings("paper architectures, random weights", True, n or 16, 512, 8, 8, 16,
                        {"model": PAPER_ARCH["inpainting"]}, {}, classifier, models, paper_arch=True,
                        sweep={"mask": [4], "inpaint": [2, 4], "ig": [4, 8]})
    reduced = ("CPU: reduced steps and resolution, not the paper's settings: SAM ViT-B (not ViT-H), detector input "
               "256 px (not 800), inpainting 64 px with 2 steps (not 512 px, 50), IG 2 steps (not 50); no warm-up")
    return Settings("paper architectures, random weights, reduced for a CPU", True, n or 2, 512, 2, 2, 2,
                    {"model": PAPER_ARCH["inpainting"], "resolution": 64, "steps": 2},
                    {"n_steps": 2, "internal_batch_size": 4}, classifier,
                    {**models, "segmenter": "random:facebook/sam-vit-base"}, paper_arch=True, warmup=False,
                    detector_size={"shortest_edge": 256, "longest_edge": 427}, reduced=reduced)


def dataset_defaults() -> dict:
    """One dataset entry with every default of the schema filled in (the pipeline's own defaults)."""
    config = validate_config({"datasets": {"bench": {"format": "synthetic", "root": "unused"}},
                              "targets": ["bench"]})
    return config["datasets"]["bench"]


# ------------------------------------------------------------------------------------------ measuring

class PeakMemory:
    """Peak memory of the code inside the ``with`` block, in MiB.

    On a GPU: torch.cuda.max_memory_allocated since the block began (tensors only). On a CPU: the
    largest growth of the process's resident set over the block, sampled every 2 ms from /proc (Linux;
    elsewhere None): it counts the tensors' storage, which tracemalloc does not see.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.mib: float | None = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._base = self._peak = _resident_bytes()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        if self._base is not None:
            self._sampler.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, _resident_bytes() or 0)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        elif self._base is not None:
            self._stop.set()
            self._sampler.join()
            self._peak = max(self._peak, _resident_bytes() or 0)
            self.mib = (self._peak - self._base) / 2 ** 20
        return False


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Run:
    seconds: float
    peak_mib: float | None


def measure(function, device: torch.device) -> Run:
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return Run(seconds, memory.mib)


@dataclass
class StepResult:
    step: str
    model: str
    n_images: int
    batch_size: int
    load_seconds: float
    single: Run
    batched: Run
    sweep: dict = dataclasses.field(default_factory=dict)  # further batch size -> Run

    @property
    def single_rate(self) -> float:
        return self.n_images / self.single.seconds

    @property
    def batched_rate(self) -> float:
        return self.n_images / self.batched.seconds


def compare(step: str, model: str, n_images: int, batch_size: int, load_seconds: float, run_with_batch,
            device: torch.device, workdir: Path, repeat: int = 1, sweep=(), warmup: bool = True) -> StepResult:
    """Time ``run_with_batch(batch_size, folder)`` over all images at batch size 1 and at ``batch_size``.

    Both shapes are warmed up first on as few images as they need (one batch each, untimed): the first
    call at a new batch shape pays for kernel selection and allocator growth, which a job pays once.
    With ``repeat`` > 1 the fastest of the repeats counts (a shared machine only ever adds time).
    """
    counter = iter(range(1000))

    def fresh() -> Path:  # every run writes a new shard: nothing is resumed from a previous run
        folder = workdir / f"{step.replace('/', '_')}-{next(counter)}"
        folder.mkdir()
        return folder

    def timed(size: int) -> Run:
        if warmup:
            run_with_batch(size, fresh(), limit=size)
        return min((measure(lambda: run_with_batch(size, fresh()), device) for _ in range(repeat)),
                   key=lambda run: run.seconds)

    single = timed(1)
    batched = timed(batch_size)
    extra = {size: timed(size) for size in sorted(set(sweep) - {1, batch_size})}
    return StepResult(step, model, n_images, batch_size, load_seconds, single, batched, extra)


# ------------------------------------------------------------------------------------------ inputs

@dataclass
class Inputs:
    sources: pd.DataFrame  # sample_id, path
    masks: ImageShard
    mask_index: pd.DataFrame
    generated_index: pd.DataFrame  # an inpainting index over the sources, for IG
    generated: ImageShard


def make_inputs(folder: Path, n_images: int, size: int) -> Inputs:
    """Noisy source images with an object-sized ellipse mask each, and "generated" images (the source
    with its masked region redrawn) for IG; the content does not change the timing."""
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[:size, :size]
    rows, mask_items, generated_items, generated_rows = [], [], [], []
    for i in range(n_images):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        path = folder / f"src{i:04d}.png"
        Image.fromarray(image).save(path)
        sample_id = f"src{i:04d}"
        rows.append({"sample_id": sample_id, "path": str(path)})
        mask = ((yy - size / 2) / (size / 3)) ** 2 + ((xx - size / 2) / (size / 4)) ** 2 <= 1
        mask_items.append((sample_id, png_bytes(mask.astype(np.uint8) * 255)))
        redrawn = np.where(mask[..., None], rng.integers(0, 256, image.shape, dtype=np.uint8), image)
        generated_id = f"{sample_id}_to_b"
        generated_items.append((generated_id, png_bytes(redrawn)))
        generated_rows.append({"sample_id": generated_id, "source_id": sample_id, "source_y": 0, "y": 1,
                               "has_image": True})
    mask_index = pd.DataFrame({"sample_id": [r["sample_id"] for r in rows], "detected": True})
    write_image_shard(mask_items, folder / "masks.tar", mask_index, folder / "masks.parquet")
    generated_index = pd.DataFrame(generated_rows)
    write_image_shard(generated_items, folder / "generated.tar", generated_index, folder / "generated.parquet")
    return Inputs(pd.DataFrame(rows), ImageShard(folder / "masks.tar"), mask_index, generated_index,
                  ImageShard(folder / "generated.tar"))


# ------------------------------------------------------------------------------------------ steps

def bench_masking(settings: Settings, defaults: dict, inputs: Inputs, device, workdir: Path) -> list[StepResult]:
    results = []
    maskers = [("files", {"masker": "files", "mask_dir": str(workdir / "mask_files")})]
    (workdir / "mask_files").mkdir()
    for sample_id in inputs.masks.ids():
        (workdir / "mask_files" / f"{sample_id}.png").write_bytes(inputs.masks.read_bytes(sample_id))
    maskers.append(("grounded_sam", {"masker": "grounded_sam", **settings.masking_overrides}))
    for name, overrides in maskers:
        cfg = {**defaults["masking"], **overrides}
        start = time.perf_counter()
        try:
            masker = make_masker(MaskingSettings(**cfg), seed=SEED, device=device)
        except DDBError as error:  # e.g. the paper's detector is not in the cache: the files masker still counts
            print(f"mask/{name}: skipped: {error}")
            continue
        load_seconds = time.perf_counter() - start
        model = name if name == "files" else f"{name} ({cfg['detector']} + {cfg['segmenter']})"
        if name != "files" and settings.detector_size:  # a CPU: a smaller detector input than the published one
            masker.masker.detector_processor.image_processor.size = dict(settings.detector_size)
            model += f", detector input {settings.detector_size['shortest_edge']} px"

        def run(batch_size, folder, limit=None, cfg=cfg, masker=masker):
            rows = inputs.sources.head(limit)
            mask_shard(rows, masker, MaskingSettings(**{**cfg, "batch_size": batch_size}), folder / "shard.tar",
                       folder / "shard.parquet")

        results.append(compare(f"mask/{name}", model, len(inputs.sources), settings.mask_batch, load_seconds, run,
                               device, workdir, settings.repeat, settings.sweep.get("mask", ()), settings.warmup))
    return results


def bench_inpainting(settings: Settings, defaults: dict, inputs: Inputs, device, workdir: Path) -> StepResult:
    cfg = {**defaults["inpainting"], **settings.inpaint_overrides}
    dtype = torch_dtype(cfg["dtype"], device)
    start = time.perf_counter()
    pipeline = load_inpaint_pipeline(cfg["model"], seed=SEED, device=device, dtype=dtype, scheduler=cfg["scheduler"])
    load_seconds = time.perf_counter() - start
    model = (f"{cfg['model']} {str(dtype).removeprefix('torch.')} {cfg['resolution']} px {cfg['steps']} steps "
             f"guidance {cfg['guidance_scale']}")

    def run(batch_size, folder, limit=None):
        rows = inputs.sources.head(limit)
        inpaint_shard(pipeline, rows, inputs.masks, inputs.mask_index, source_y=0, target_y=1, target_class="b",
                      prompt=cfg["prompt"].format("bird"),
                      inpainting=InpaintingSettings(**{**cfg, "batch_size": batch_size}),
                      seed=SEED, tar_path=folder / "shard.tar", index_path=folder / "shard.parquet")

    return compare("inpaint", model, len(inputs.sources), settings.inpaint_batch, load_seconds, run, device, workdir,
                   settings.repeat, settings.sweep.get("inpaint", ()), settings.warmup)


def bench_ig(settings: Settings, defaults: dict, inputs: Inputs, device, workdir: Path) -> StepResult:
    classifier = {**defaults["classifier"], **settings.classifier_overrides}
    ig = {**defaults["ig"], **settings.ig_overrides}
    start = time.perf_counter()
    model = build_classifier(classifier["arch"], 2, classifier["weights"], SEED).to(device).eval()
    load_seconds = time.perf_counter() - start
    paths = dict(zip(inputs.sources["sample_id"], inputs.sources["path"]))

    def run(batch_size, folder, limit=None):
        index = inputs.generated_index.head(limit)
        score_shard(model, index, inputs.generated, inputs.masks, paths, image_size=classifier["image_size"],
                    ig=IgSettings(**{**ig, "batch_size": batch_size}), device=device)

    label = (f"{classifier['arch']}{' (random weights)' if settings.paper_arch else ''} {classifier['image_size']} "
             f"px, {ig['n_steps']} steps, internal batch {ig['internal_batch_size']}")
    return compare("ig", label, len(inputs.sources), settings.ig_batch, load_seconds, run, device, workdir,
                   settings.repeat, settings.sweep.get("ig", ()), settings.warmup)


# ------------------------------------------------------------------------------------------ report

def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def print_results(results: list[StepResult]) -> None:
    header = (f"{'step':<18} {'n':>4} {'batch':>5} {'load s':>7} {'1-at-a-time img/s':>18} {'batched img/s':>14} "
              f"{'ratio':>6} {'peak MiB 1':>11} {'peak MiB batched':>17}  model")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.step:<18} {r.n_images:>4} {r.batch_size:>5} {r.load_seconds:>7.2f} {r.single_rate:>18.2f} "
              f"{r.batched_rate:>14.2f} {r.batched_rate / r.single_rate:>5.2f}x {_mib(r.single.peak_mib):>11} "
              f"{_mib(r.batched.peak_mib):>17}  {r.model}")


def best_rate(result: StepResult) -> tuple[int, float]:
    """(batch size, images/s) of the fastest batch size measured for a step."""
    runs = {1: result.single, result.batch_size: result.batched, **result.sweep}
    size, run = min(runs.items(), key=lambda item: item[1].seconds)
    return size, result.n_images / run.seconds


def print_efficiency(results: list[StepResult], settings: Settings, defaults: dict, device) -> None:
    """Achieved FLOP/s of inpainting and IG at their best batch size, as a share of an A100's dense peak
    (ddb.sizing's counts: the runtime requests assume resources.efficiency of it)."""
    from ddb.sizing import GPU_PEAK_TFLOPS, classifier_peak_key, count_forward_flops, diffusion_peak_key

    inpainting = {**defaults["inpainting"], **settings.inpaint_overrides}
    classifier = {**defaults["classifier"], **settings.classifier_overrides}
    ig = {**defaults["ig"], **settings.ig_overrides}
    guided = 2 if inpainting["guidance_scale"] > 1 else 1
    per_image = {
        "inpaint": (guided * inpainting["steps"] * count_forward_flops("sd2-inpainting-unet", inpainting["resolution"]),
                    diffusion_peak_key(inpainting["dtype"])),
        "ig": (3 * ig["n_steps"] * count_forward_flops(classifier["arch"], classifier["image_size"]),
               classifier_peak_key(classifier)),
    }
    print(f"\n{'step':<18} {'TFLOP/img':>10} {'TFLOP/s':>9} {'A100 peak':>10} {'share':>7}")
    for result in results:
        if result.step not in per_image:
            continue
        flops, precision = per_image[result.step]
        achieved = flops * best_rate(result)[1] / 1e12
        peak = GPU_PEAK_TFLOPS["a100"][precision]
        print(f"{result.step:<18} {flops / 1e12:>10.3f} {achieved:>9.2f} {peak:>7g} {precision:<2} {achieved / peak:>7.1%}")
    if device.type != "cuda":
        print("share: a CPU's rate against an A100's peak; on a GPU node it is the efficiency the runtime "
              "requests assume (resources.efficiency, docs/cluster.md)")


def print_sweep(results: list[StepResult]) -> None:
    """Images/s and peak memory at every batch size measured (--paper-arch)."""
    print(f"\n{'step':<18} {'batch':>5} {'img/s':>8} {'peak MiB':>10}")
    for r in results:
        runs = {1: r.single, r.batch_size: r.batched, **r.sweep}
        for size in sorted(runs):
            print(f"{r.step:<18} {size:>5} {r.n_images / runs[size].seconds:>8.3f} {_mib(runs[size].peak_mib):>10}")


def print_paper_work(results: list[StepResult], projectable: bool) -> None:
    """The chain rate (each step at its fastest batch size) and what it gives for config.yaml's paper entries."""
    chain = {r.step.split("/")[0]: r for r in results if r.step != "mask/files"}
    if len(chain) != 3:
        print("chain rate missing: a step was skipped")
        return
    best = {step: best_rate(r) for step, r in chain.items()}
    per_image = {step: 1 / rate for step, (_, rate) in best.items()}
    print("\nchain rate (each step at its fastest batch size): "
          + " + ".join(f"{step} {per_image[step]:.3f} s (batch {best[step][0]})" for step in ("mask", "inpaint", "ig"))
          + f" = {sum(per_image.values()):.3f} s per image")
    print(f"{'dataset':<11} {'masks':>7} {'generated':>10} {'Table 4 h':>10} {'projected h':>12}")
    for name, work in PAPER_WORK.items():
        hours = (work["masks"] * per_image["mask"] + work["generated"] * (per_image["inpaint"] + per_image["ig"])) / 3600
        print(f"{name:<11} {work['masks']:>7} {work['generated']:>10} {work['table4_hours']:>10} "
              f"{(f'{hours:.2f}' if projectable else 'missing'):>12}")
    print("masks / generated: config.yaml's paper entries (K sources per class; CelebA 3 per source); model "
          "construction and job start-up not included (benchmarks/rehearsal.py measures them per job)")


def print_projection(results: list[StepResult], on_a100_class_gpu: bool, real: bool) -> None:
    """A100-hours for masking + inpainting + IG of each paper dataset, next to Table 4."""
    print("\nGeneration time on one A100 (masking + inpainting + IG), supplementary Table 4 vs projection:")
    chain = {r.step.split("/")[0]: r for r in results if r.step != "mask/files"}
    seconds_per_image = sum(1 / r.batched_rate for r in chain.values()) if len(chain) == 3 else None
    projectable = real and on_a100_class_gpu and seconds_per_image is not None
    print(f"{'dataset':<11} {'sources':>8} {'paper generated':>16} {'Table 4 h':>10} {'needed img/s':>13} "
          f"{'projected h (sources)':>22} {'projected h (paper count)':>26}")
    for name, d in PAPER_DATASETS.items():
        needed = d["paper_generated"] / (d["table4_hours"] * 3600)
        if projectable:
            by_sources = f"{d['sources'] * seconds_per_image / 3600:.2f}"
            by_paper = f"{d['paper_generated'] * seconds_per_image / 3600:.2f}"
        else:
            by_sources = by_paper = "missing"
        print(f"{name:<11} {d['sources']:>8} {d['paper_generated']:>16} {d['table4_hours']:>10} {needed:>13.2f} "
              f"{by_sources:>22} {by_paper:>26}")
    print("needed img/s: the rate of the whole chain (mask + inpaint + IG per image) that Table 4's time implies "
          "for the paper's count")
    if projectable:
        print(f"projection: {seconds_per_image:.3f} s per image for the chain, from the batched rates above "
              "(one generation per source image; sources = every training image of both classes)")
    else:
        why = ("these are tiny models" if not real else "no GPU measurement of the chain")
        print(f"GPU figures missing ({why}): the projection needs `--real` on an A100 with the paper's "
              "models in the Hugging Face cache, or `--paper-arch` on an A100 (no download)")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}), torch {torch.__version__}"
    return f"cpu ({torch.get_num_threads()} torch threads), torch {torch.__version__}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny models, 4 images: seconds on a CPU")
    mode.add_argument("--real", action="store_true", help="the paper's models (needs a GPU and cached weights)")
    mode.add_argument("--paper-arch", action="store_true",
                      help="the paper's architectures with random weights (no download); reduced on a CPU")
    parser.add_argument("--n", type=int, default=None, help="images per run (default 4 quick, 16 otherwise)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per configuration; the fastest counts")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    settings = settings_for(args)
    print(f"DDB generation benchmark: {settings.label}, {settings.n_images} images, device {describe_device(device)}")
    if settings.reduced:
        print(settings.reduced)
    if settings.real and not settings.paper_arch and device.type != "cuda":
        print("--real on a CPU: the paper's models would take minutes per image; GPU figures missing. "
              "Run it on a GPU node (e.g. `srun --gpus=a100:1 python benchmarks/generation.py --real`).")
        return 0
    if device.type == "cuda":
        print("CUDA settings: inpainting dtype "
              f"{str(torch_dtype(dataset_defaults()['inpainting']['dtype'], device)).removeprefix('torch.')}, "
              "SDPA attention (diffusers' AttnProcessor2_0), UNet channels-last")

    defaults = dataset_defaults()
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory(prefix="ddb-bench-") as tmp:
        workdir = Path(tmp)
        inputs_dir = workdir / "inputs"
        inputs_dir.mkdir()
        inputs = make_inputs(inputs_dir, settings.n_images, settings.image_size)
        for bench in (bench_masking, bench_inpainting, bench_ig):
            try:
                outcome = bench(settings, defaults, inputs, device, workdir)
            except DDBError as error:  # e.g. the paper's weights are not in the cache
                print(f"{bench.__name__.removeprefix('bench_')}: skipped: {error}")
                continue
            results.extend(outcome if isinstance(outcome, list) else [outcome])
    print()
    print_results(results)
    on_a100_class_gpu = device.type == "cuda"  # the projection assumes the measured GPU stands for an A100
    if settings.real:  # the paper's architectures: ddb.sizing counts their FLOPs
        print_efficiency(results, settings, defaults, device)
    if settings.paper_arch:
        print_sweep(results)
        print_paper_work(results, on_a100_class_gpu)
        if not on_a100_class_gpu:
            print("projection missing: reduced CPU figures say nothing about an A100; run --paper-arch on a GPU node")
    print_projection(results, on_a100_class_gpu, settings.real)
    if device.type == "cuda" and "A100" not in torch.cuda.get_device_name(device):
        print(f"note: measured on {torch.cuda.get_device_name(device)}, not an A100: scale the projection "
              "by the two cards' speed ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
