"""Run the demo end to end for several seeds and for the paper's ablations; print ERM vs DDB WGA.

    python benchmarks/demo_runs.py --seeds 0 1 2          # DDB on three seeds, with the mean
    python benchmarks/demo_runs.py --ablations            # full DDB / no pruning / no textual inversion / neither
    python benchmarks/demo_runs.py --seeds 0 --ablations --cores 2

Each run is a normal `snakemake` run of the repo's Snakefile in its own working directory under
results/demo_runs/<name>/ (config.yaml written there from the repo's, with the changes of that run),
so reruns reuse what is already computed. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# name -> (changes to the demo entry, the run it starts from: copied, so only changed steps rerun)
ABLATIONS = {
    "no_prune": ({"prune": False}, "seed"),
    "no_textual_inversion": ({"textual_inversion": False}, "seed"),
    "neither": ({"prune": False, "textual_inversion": False}, "no_textual_inversion"),
}


def run(name: str, seed: int, changes: dict, cores: int, root: Path, start_from: Path | None = None) -> dict:
    workdir = root / name
    if start_from is not None and not workdir.exists():
        shutil.copytree(start_from, workdir, symlinks=True)  # keeps mtimes and Snakemake's metadata
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    demo = copy.deepcopy(config["datasets"]["demo"])
    for key, value in changes.items():
        if isinstance(value, bool) and isinstance(demo.get(key), dict):
            demo[key] = {**demo[key], "enabled": value}
        else:
            demo[key] = value
    config.update(seed=seed, targets=["demo"], datasets={"demo": demo})
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.time()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(workdir), "--cores", str(cores), "--rerun-incomplete",
                             "results/demo/eval.json"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{name}: snakemake failed\n{result.stderr[-3000:]}")
    report = json.loads((workdir / "results/demo/eval.json").read_text())
    return {"name": name, "seed": seed, "erm": report["erm"]["worst_group_accuracy"],
            "ddb": report["ddb"]["worst_group_accuracy"], "ddb_mean": report["ddb"]["mean_accuracy"],
            "erm_mean": report["erm"]["mean_accuracy"], "seconds": time.time() - start}


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'run':<24}{'seed':>5}{'ERM WGA':>10}{'DDB WGA':>10}{'gain':>8}{'ERM mean':>10}{'DDB mean':>10}{'time':>8}")
    for r in rows:
        print(f"{r['name']:<24}{r['seed']:>5}{r['erm']:>10.3f}{r['ddb']:>10.3f}{r['ddb'] - r['erm']:>+8.3f}"
              f"{r['erm_mean']:>10.3f}{r['ddb_mean']:>10.3f}{r['seconds']:>7.0f}s")
    if len(rows) > 1:
        mean = lambda key: sum(r[key] for r in rows) / len(rows)
        print(f"{'mean':<29}{mean('erm'):>10.3f}{mean('ddb'):>10.3f}{mean('ddb') - mean('erm'):>+8.3f}"
              f"{mean('erm_mean'):>10.3f}{mean('ddb_mean'):>10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[])
    parser.add_argument("--ablations", action="store_true", help="also run the ablations (on the first seed)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "demo_runs")
    args = parser.parse_args()
    seeds = args.seeds or [0]
    rows = [run(f"seed-{seed}", seed, {}, args.cores, args.out) for seed in seeds]
    print_table(rows, "DDB on the demo, per seed (test worst-group accuracy)")
    if args.ablations:
        seed = seeds[0]
        ablation_rows = [dict(rows[0], name="ddb")]
        for name, (changes, start) in ABLATIONS.items():
            start_dir = args.out / (f"seed-{seed}" if start == "seed" else f"ablation-{start}-seed-{seed}")
            row = run(f"ablation-{name}-seed-{seed}", seed, changes, args.cores, args.out, start_dir)
            ablation_rows.append(dict(row, name=name))
        print_table(ablation_rows, f"Ablations on the demo, seed {seed}")

if __name__ == "__main__":
    main()
