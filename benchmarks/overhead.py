"""The pipeline's own overhead, apart from the model work: prints figures, never passes or fails.

1. `snakemake -n` (parse, config validation, DAG of every job, rerun checks) for a CelebA-sized DAG:
   a synthetic dataset entry with 200 shards per source class (K = 2,000 sources of D_i, 10 images a
   shard; only the DAG matters, so nothing has to exist), and the same for smaller shard counts to show
   how it scales. `benchmarks/shards.py --dry-run` plans config.yaml's CelebA entry itself.
2. Time from the start of an `inpaint` job to its first finished image (tiny model, CPU): Snakemake's
   own start and DAG, then the job's interpreter, imports, manifest, pipeline build, learned token,
   first image. Inputs (manifest, masks, token) are made first by the reduced demo.

    python benchmarks/overhead.py                 # both
    python benchmarks/overhead.py --shards 50 200 400 --skip-inpaint
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import small_config  # noqa: E402  (the reduced demo of the test suite)
from ddb.storage.checkpoints import checkpointed  # noqa: E402


def snakemake(workdir: Path, *args: str, output=None):
    """Run snakemake to completion; or, given an ``output`` file, start it writing there and return."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), *args]
    if output is not None:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def write_config(workdir: Path, config: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def dry_run_times(shard_counts: list[int], repeats: int) -> None:
    print("1. `snakemake -n` of the whole DAG (one dataset, 2 classes, nothing built yet)")
    print(f"{'shards/class':>12} {'jobs':>7} {'seconds':>9}  (best of {repeats})")
    with tempfile.TemporaryDirectory() as tmp:
        for shards in shard_counts:
            workdir = Path(tmp) / f"shards{shards}"
            write_config(workdir, small_config(low_loss={"k": 10 * shards},
                                               generation={"sources": "low_loss", "images_per_shard": 10}))
            times, jobs = [], None
            for _ in range(repeats):
                start = time.perf_counter()
                result = snakemake(workdir, "-n", "--quiet", "rules")
                times.append(time.perf_counter() - start)
                jobs = re.search(r"^total\s+(\d+)", result.stdout + result.stderr, re.M).group(1)
            print(f"{shards:>12} {jobs:>7} {min(times):>9.2f}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import snakemake.cli"], check=True)
    print(f"   (of which starting Python and importing Snakemake: {time.perf_counter() - start:.2f} s)\n")


def first_image_time() -> None:
    print("2. `inpaint` job (tiny model, CPU): time to its first finished image")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "demo"
        # one image per batch and more steps, so the first checkpoint marks the first image
        config = small_config(inpainting={**small_config()["datasets"]["demo"]["inpainting"], "batch_size": 1,
                                          "steps": 10})
        write_config(workdir, config)
        shard = "results/demo/inpaint/landbird_to_waterbird/shard-0.tar"
        snakemake(workdir, "--cores", "2", "results/demo/masks/landbird/shard-0.tar",
                  "results/demo/textual_inversion/waterbird/learned_embeds.safetensors")
        log = workdir / "snakemake.out"
        start = time.perf_counter()
        with open(log, "w") as output:
            process = snakemake(workdir, "--cores", "1", shard, output=output)
            job_start = first_image = None
            while first_image is None and process.poll() is None:
                if job_start is None and re.search(r"^(local)?rule inpaint:", log.read_text(), re.M):
                    job_start = time.perf_counter()
                if checkpointed(workdir / shard):
                    first_image = time.perf_counter()
                time.sleep(0.01)
            process.wait()
        if first_image is None or job_start is None:
            sys.exit("the inpaint job finished without a visible checkpoint:\n" + log.read_text()[-3000:])
        done = time.perf_counter()
        print(f"   snakemake start -> job start (parse, DAG, scheduling): {job_start - start:6.2f} s")
        print(f"   job start -> first image (interpreter, imports, inputs, pipeline, token, one image): "
              f"{first_image - job_start:6.2f} s")
        print(f"   whole shard (3 images, 10 steps each) and Snakemake's exit: {done - start:6.2f} s")
        print(f"   in-process, for comparison: {in_process_breakdown(workdir)}")


def in_process_breakdown(workdir: Path) -> str:
    code = f"""
import time; t = time.perf_counter()
import torch, diffusers, ddb.inpainting, ddb.models.diffusion
t_import = time.perf_counter() - t; t = time.perf_counter()
from ddb.models.diffusion import load_inpaint_pipeline
pipeline = load_inpaint_pipeline("tiny", seed=0)
pipeline.load_textual_inversion({str(workdir / 'results/demo/textual_inversion/waterbird/learned_embeds.safetensors')!r})
print(f"imports {{t_import:.2f}} s, tiny pipeline + token {{time.perf_counter() - t:.2f}} s")
"""
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return result.stdout.strip() or result.stderr[-500:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, nargs="+", default=[4, 50, 200])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-dag", action="store_true")
    parser.add_argument("--skip-inpaint", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPU cores, python {sys.version.split()[0]}\n")
    if not args.skip_dag:
        dry_run_times(args.shards, args.repeats)
    if not args.skip_inpaint:
        first_image_time()


if __name__ == "__main__":
    main()
