"""Shards that scale: time and peak memory of writing and reading a shard, and the plan of a CelebA-sized DAG.
Prints figures; never passes or fails on time.

1. Shards of 10, 1,000 and 20,000 images at 512 px, written through the real code path
   (``ddb.storage.checkpoints.process_shard``: checkpoint per batch, then the tar packed from the checkpoint, streaming,
   then the index) and read back with ``ddb.storage.shards.ImageShard`` (index, then every image's bytes, every
   100th decoded). Each size is written and read in its own child process, so ``ru_maxrss`` is that
   phase's peak resident memory; a child that only imports the same modules gives the baseline. The
   PNGs are pre-encoded: 8 images of 512 x 512 (a gradient with noise, about 350 KB each, near a real
   512 px photo's PNG) encoded once and handed to ``process_shard`` as bytes, because encoding 20,000
   PNGs would take most of an hour on 2 cores and measure Pillow, not the shard. 20,000 images are
   about 7 GB, written twice (checkpoint, then the tar): mind the free space of ``--folder``.
   ``--in-memory`` also measures packing in memory (every PNG of the shard collected in a list,
   then written), for comparison.
2. ``--dry-run``: a CelebA-shaped tree of 202,599 rows (``manifest_celeba.py``'s), config.yaml's CelebA
   entry pointed at it, and ``snakemake -n`` timed before and after the manifest is built (the counts
   come from the config, so both plans are the same): jobs per rule and the most images any planned
   generation shard holds, against ``generation.images_per_shard``.

    python benchmarks/shards.py                        # 10, 1,000 and 20,000 images
    python benchmarks/shards.py --sizes 10 1000 --in-memory
    python benchmarks/shards.py --dry-run [--rows 202599] [--skip-io]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

DISTINCT_PNGS = 8
BATCH = 8  # inpainting.batch_size's default: one checkpoint commit per 8 images


def encoded_pngs(size: int = 512) -> list[bytes]:
    """``DISTINCT_PNGS`` PNGs of ``size`` px: a colour gradient with Gaussian noise (std 2), ~350 KB each."""
    import numpy as np

    from ddb.storage.images import png_bytes

    y, x = np.mgrid[0:size, 0:size]
    pngs = []
    for seed in range(DISTINCT_PNGS):
        rng = np.random.default_rng(seed)
        base = np.stack([(x / 2 + 31 * seed) % 256, (y / 2) % 256, ((x + y) / 4 + 17 * seed) % 256], -1)
        pngs.append(png_bytes(np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)))
    return pngs


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---- the child processes: one phase each, printing one JSON line


def child_baseline(folder: Path, images: int, pngs: list[bytes]) -> dict:
    return {}


def child_write(folder: Path, images: int, pngs: list[bytes]) -> dict:
    from ddb.storage.checkpoints import process_shard

    ids = [f"{i:06d}_to_blond_d{i % 3}" for i in range(images)]  # CelebA-like generated ids

    def compute(batch):
        return [(sample_id, pngs[int(sample_id[:6]) % DISTINCT_PNGS],
                 {"sample_id": sample_id, "source_id": sample_id[:6], "source_y": 0, "y": 1,
                  "draw": int(sample_id[-1]), "has_image": True, "seed": int(sample_id[:6]),
                  "prompt": "a photo of a person with <blond> hair"}) for sample_id in batch]

    tar = folder / "shard-0.tar"
    start = time.perf_counter()
    process_shard(ids, compute, BATCH, tar, tar.with_suffix(".parquet"), desc="write")
    return {"seconds": time.perf_counter() - start, "bytes": tar.stat().st_size}


def child_write_in_memory(folder: Path, images: int, pngs: list[bytes]) -> dict:
    """The previous packing: every PNG of the shard in a list (each its own bytes, as images computed one by
    one are), then written."""
    import pandas as pd

    from ddb.storage.shards import write_image_shard

    start = time.perf_counter()
    items = [(f"{i:06d}", bytes(bytearray(pngs[i % DISTINCT_PNGS]))) for i in range(images)]
    tar = folder / "in-memory.tar"
    write_image_shard(items, tar, pd.DataFrame({"sample_id": [i for i, _ in items]}), tar.with_suffix(".parquet"))
    return {"seconds": time.perf_counter() - start, "bytes": tar.stat().st_size}


def child_read(folder: Path, images: int, pngs: list[bytes]) -> dict:
    from ddb.storage.shards import ImageShard

    start = time.perf_counter()
    shard = ImageShard(folder / "shard-0.tar")
    opened = time.perf_counter() - start
    total = 0
    for n, sample_id in enumerate(shard.ids()):
        total += len(shard.read_bytes(sample_id))
        if n % 100 == 0:
            shard.image(sample_id)
    assert len(shard) == images
    return {"seconds": time.perf_counter() - start, "open_seconds": opened, "bytes": total}


PHASES = {"baseline": child_baseline, "write": child_write, "read": child_read, "in-memory": child_write_in_memory}


def run_child(phase: str, folder: Path, images: int) -> dict:
    command = [sys.executable, __file__, "--child", phase, "--folder", str(folder), "--sizes", str(images)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{phase} of {images} images failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_main(phase: str, folder: Path, images: int) -> None:
    import pandas  # noqa: F401  (what every phase's imports cost, the baseline included)
    import PIL.Image  # noqa: F401

    import ddb.storage.checkpoints  # noqa: F401

    pngs = encoded_pngs()
    figures = PHASES[phase](folder, images, pngs)
    print(json.dumps({**figures, "peak_rss_mb": peak_rss_mb()}))


def shard_io(sizes: list[int], folder: Path | None, in_memory: bool) -> None:
    print(f"1. one shard of N images at 512 px (PNGs ~{len(encoded_pngs()[0]) / 1e3:.0f} KB, pre-encoded), "
          f"written by process_shard in batches of {BATCH}, then read by ImageShard; each phase in its own process")
    parent = Path(tempfile.mkdtemp(prefix="ddb-shards-bench-", dir=folder))
    try:
        baseline = run_child("baseline", parent, 0)["peak_rss_mb"]
        print(f"   baseline (python + pandas + PIL + ddb.storage + 8 encoded PNGs): peak RSS {baseline:.0f} MB\n")
        print(f"{'images':>8} {'tar GB':>8} {'write s':>8} {'write MB':>9} {'read s':>8} {'open s':>7} "
              f"{'read MB':>8}" + (f" {'in-memory s':>12} {'in-memory MB':>13}" if in_memory else ""))
        for images in sizes:
            work = parent / str(images)
            work.mkdir()
            write = run_child("write", work, images)
            read = run_child("read", work, images)
            line = (f"{images:>8} {write['bytes'] / 1e9:>8.2f} {write['seconds']:>8.1f} {write['peak_rss_mb']:>9.0f} "
                    f"{read['seconds']:>8.1f} {read['open_seconds']:>7.2f} {read['peak_rss_mb']:>8.0f}")
            shutil.rmtree(work)
            if in_memory:
                work.mkdir()
                old = run_child("in-memory", work, images)
                line += f" {old['seconds']:>12.1f} {old['peak_rss_mb']:>13.0f}"
                shutil.rmtree(work)
            print(line, flush=True)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    print("   write: checkpoint (images.tar + records.jsonl, fsynced per batch) -> shard tar copied from it member by "
          "member -> index; MB: peak resident memory of the process")


# ---- 2. the plan of a CelebA-sized DAG


def planned(workdir: Path) -> tuple[dict[str, int], float]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "-n", "--quiet", "rules"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    counts = {}
    for line in (result.stdout + result.stderr).splitlines():
        if (match := re.fullmatch(r"(\w+)\s+(\d+)", line.strip())) and match.group(1) != "job":
            counts[match.group(1)] = int(match.group(2))
    return counts, seconds


def largest_shards(dataset: dict) -> dict[str, tuple[int, int]]:
    """{class: (shards, most images in one of them)} as the mask and inpaint jobs will cut them, for the
    most sources the config allows (K)."""
    import pandas as pd

    from ddb.masking import shard_rows
    from ddb.sharding import planned_sources, shard_count

    largest = {}
    for cls in dataset["classes"]:
        shards = shard_count(dataset, cls)
        rows = pd.DataFrame({"sample_id": range(planned_sources(dataset, cls))})
        most = max(len(shard_rows(rows, n, shards)) for n in range(shards))
        largest[cls] = (shards, most * dataset["generation"]["per_source"])
    return largest


def dry_run(rows: int, repeats: int, folder: Path | None) -> None:
    import yaml

    from manifest_celeba import celeba_like_table, make_images, write_published

    from ddb.config import validate_config

    print(f"2. `snakemake -n` of config.yaml's CelebA entry on a CelebA-shaped tree of {rows:,} rows")
    with tempfile.TemporaryDirectory(prefix="ddb-celeba-plan-", dir=folder) as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        root = tmp / "data" / "celeba"
        root.mkdir(parents=True)
        table = celeba_like_table(rows)
        make_images(root / "img_align_celeba", table)
        write_published(root, table)
        print(f"   wrote the tree ({rows:,} empty .jpg and the published txt files) in "
              f"{time.perf_counter() - started:.1f} s")
        shipped = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["celeba"]
        config = {"seed": 0, "targets": ["celeba"], "datasets": {"celeba": {**shipped, "root": str(root)}}}
        workdir = tmp / "run"
        workdir.mkdir()
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        dataset = validate_config(yaml.safe_load(yaml.safe_dump(config)))["datasets"]["celeba"]
        generation = dataset["generation"]
        print(f"   generation: sources {generation['sources']}, K {dataset['low_loss']['k']}, per_source "
              f"{generation['per_source']}, images_per_shard {generation['images_per_shard']}")

        plans = {}
        for stage in ("nothing built", "manifest built"):
            if stage == "manifest built":
                env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                                "--directory", str(workdir), "--cores", "1", "results/celeba/data/manifest.parquet"],
                               check=True, capture_output=True, env=env)
                print(f"   prepare_dataset ({rows:,} rows): {time.perf_counter() - start:.1f} s, Snakemake included")
            runs = [planned(workdir) for _ in range(repeats)]
            plans[stage] = runs[0][0]
            print(f"   `snakemake -n`, {stage}: {min(s for _, s in runs):.1f} s (best of {repeats}), "
                  f"{plans[stage].get('total', 0)} jobs")
        print(f"\n{'rule':<20} {'jobs':>6}")
        for rule, jobs in plans["nothing built"].items():
            if rule != "total":
                print(f"{rule:<20} {jobs:>6}")
        def but_prepare(plan: dict[str, int]) -> dict[str, int]:
            return {rule: jobs for rule, jobs in plan.items() if rule not in ("prepare_dataset", "total")}

        same = but_prepare(plans["manifest built"]) == but_prepare(plans["nothing built"])
        print(f"   the plan with the manifest built is the same but for prepare_dataset: {same}")
        print(f"\n{'source class':<14} {'shards':>7} {'most images in a shard':>23} {'images_per_shard':>17}")
        for cls, (shards, most) in largest_shards(dataset).items():
            print(f"{cls:<14} {shards:>7} {most:>23} {generation['images_per_shard']:>17}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 20000], help="images per shard")
    parser.add_argument("--folder", type=Path, default=None,
                        help="where the shards are written (default: the system's temporary folder)")
    parser.add_argument("--in-memory", action="store_true", help="also measure the previous, in-memory packing")
    parser.add_argument("--dry-run", action="store_true", help="also plan a CelebA-sized DAG (section 2)")
    parser.add_argument("--skip-io", action="store_true", help="skip section 1")
    parser.add_argument("--rows", type=int, default=202599, help="rows of the fake CelebA (--dry-run)")
    parser.add_argument("--repeats", type=int, default=2, help="timed dry runs per stage (--dry-run)")
    parser.add_argument("--child", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.folder, args.sizes[0])
        return
    print(f"machine: {os.cpu_count()} CPU cores, python {sys.version.split()[0]}\n")
    if not args.skip_io:
        shard_io(args.sizes, args.folder, args.in_memory)
    if args.dry_run:
        print()
        dry_run(args.rows, args.repeats, args.folder)


if __name__ == "__main__":
    main()
