"""Time the default demo run, then run it over several seeds and for the paper's ablations; print the tables.

    python benchmarks/demo_runs.py                               # the default run alone, timed (10-minute budget)
    python benchmarks/demo_runs.py --seeds 0 1 2                 # + seeds 1 and 2: ERM / DFR / DDB mean ± std
    python benchmarks/demo_runs.py --seeds 0 1 2 --ablations     # + no pruning / no textual inversion / neither

Every variant is a normal `snakemake` run of the repo's Snakefile in its own working directory under
results/demo_runs/<variant>/ (config.yaml written there from the repo's, with the variant's changes and
`seeds:`), built through the workflow's own targets: first `results/demo/eval.json` (the run
`snakemake --cores 2` makes with the shipped config, so its wall time is the demo's budget), then
`results/demo/summary.json` (the other seeds). An ablation starts from a copy of the run it differs least
from, so only the steps it changes rerun. The thresholds P are tuned on validation in every variant that
prunes (the demo's `tune` section). Prints figures and writes them to results/demo_runs/demo_runs.json;
asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from ddb.paths import artifact_path, run_name  # noqa: E402

# variant -> (changes to the demo entry, the variant it starts from: copied, so only changed steps rerun)
VARIANTS = {
    "ddb": ({}, None),
    "no_prune": ({"prune": False}, "ddb"),
    "no_textual_inversion": ({"textual_inversion": False}, "ddb"),
    "neither": ({"prune": False, "textual_inversion": False}, "no_textual_inversion"),
}
METHODS = ("erm", "dfr", "ddb")


def write_config(workdir: Path, changes: dict, seeds: list[int]) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    demo = copy.deepcopy(config["datasets"]["demo"])
    for key, value in changes.items():
        if isinstance(value, bool) and isinstance(demo.get(key), dict):
            demo[key] = {**demo[key], "enabled": value}
        else:
            demo[key] = value
    config.update(seed=seeds[0], seeds=seeds if len(seeds) > 1 else None, targets=["demo"],
                  datasets={"demo": demo})
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(workdir: Path, target: str, cores: int) -> float:
    """Build ``target`` in ``workdir``; the wall seconds it took."""
    start = time.time()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(workdir), "--cores", str(cores), "--rerun-incomplete", target],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{workdir.name}: snakemake {target} failed\n{result.stderr[-3000:]}")
    return time.time() - start


def seed_row(workdir: Path, seed: int, base_seed: int) -> dict:
    run = run_name("demo", seed, base_seed)
    report = json.loads(artifact_path(workdir / "results", run, "eval_json").read_text())
    row = {"seed": seed}
    for method in METHODS:
        if method in report:
            row[method] = report[method]["worst_group_accuracy"]
            row[f"{method}_mean"] = report[method]["mean_accuracy"]
    selected = artifact_path(workdir / "results", run, "tune_selected")
    if selected.exists():
        row["selected"] = json.loads(selected.read_text())["selected"]
    return row


def run_variant(name: str, seeds: list[int], cores: int, root: Path) -> dict:
    changes, start_from = VARIANTS[name]
    workdir = root / name
    if start_from is not None and not workdir.exists():
        shutil.copytree(root / start_from, workdir, symlinks=True)  # keeps mtimes and Snakemake's metadata
    workdir.mkdir(parents=True, exist_ok=True)
    write_config(workdir, changes, seeds)
    target = lambda artifact: artifact_path("results", "demo", artifact).as_posix()  # noqa: E731
    variant = {"name": name, "changes": changes,
               "seconds_first_seed": snakemake(workdir, target("eval_json"), cores)}
    if len(seeds) > 1:
        variant["seconds_other_seeds"] = snakemake(workdir, target("seed_summary"), cores)
        summary = json.loads(artifact_path(workdir / "results", "demo", "seed_summary").read_text())
        variant["summary"] = summary["methods"]
    variant["per_seed"] = [seed_row(workdir, seed, seeds[0]) for seed in seeds]
    print(f"{name}: first seed {variant['seconds_first_seed']:.0f} s"
          + (f", other seeds {variant['seconds_other_seeds']:.0f} s" if "seconds_other_seeds" in variant else ""),
          flush=True)
    return variant


def cell(variant: dict, method: str) -> str:
    if "summary" in variant:
        if method not in variant["summary"]:
            return "-"
        wga = variant["summary"][method]["worst_group_accuracy"]
        return f"{wga['mean']:.3f} ± {wga['std']:.3f}"
    value = variant["per_seed"][0].get(method)
    return "-" if value is None else f"{value:.3f}"


def print_tables(variants: list[dict], seeds: list[int]) -> None:
    print(f"\nTest worst-group accuracy on the demo, seeds {seeds}" + (", mean ± std" if len(seeds) > 1 else ""))
    print(f"{'variant':<22}" + "".join(f"{m.upper():>16}" for m in METHODS) + f"{'DDB mean acc.':>16}")
    for v in variants:
        if "summary" in v:
            mean_acc = v["summary"]["ddb"]["mean_accuracy"]
            mean_cell = f"{mean_acc['mean']:.3f} ± {mean_acc['std']:.3f}"
        else:
            mean_cell = f"{v['per_seed'][0]['ddb_mean']:.3f}"
        print(f"{v['name']:<22}" + "".join(f"{cell(v, m):>16}" for m in METHODS) + f"{mean_cell:>16}")
    print("\nPer seed (test WGA; DDB's tuned candidate)")
    print(f"{'variant':<22}{'seed':>5}" + "".join(f"{m.upper():>8}" for m in METHODS) + "  selected")
    for v in variants:
        for r in v["per_seed"]:
            print(f"{v['name']:<22}{r['seed']:>5}" + "".join(f"{r.get(m, float('nan')):>8.3f}" for m in METHODS)
                  + f"  {r.get('selected', '-')}")
    print("\nWall time (snakemake, --cores as given)")
    for v in variants:
        print(f"{v['name']:<22}first seed {v['seconds_first_seed']:>6.0f} s"
              + (f"   other seeds {v['seconds_other_seeds']:>6.0f} s" if "seconds_other_seeds" in v else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0], help="the first is the run that is timed")
    parser.add_argument("--ablations", action="store_true", help="also the ablations, over the same seeds")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "demo_runs")
    args = parser.parse_args()
    seeds = list(dict.fromkeys(args.seeds)) or [0]
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(VARIANTS) if args.ablations else ["ddb"]
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at the start, "
          f"--cores {args.cores}", flush=True)
    variants = [run_variant(name, seeds, args.cores, args.out) for name in names]
    print_tables(variants, seeds)
    (args.out / "demo_runs.json").write_text(json.dumps({"seeds": seeds, "cores": args.cores,
                                                         "variants": variants}, indent=1))


if __name__ == "__main__":
    main()
