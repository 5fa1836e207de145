"""The runtime each GPU rule asks for on a cluster, per dataset of a config (ddb.sizing): FLOPs of one job,
the images it passes through its model, and the estimated minutes at the stated peak and efficiency.

    python benchmarks/estimate_runtimes.py                 # config.yaml's datasets
    python benchmarks/estimate_runtimes.py --config my.yaml

Prints a Markdown table (docs/cluster.md, "How long each job asks for", is its output). Generation rules
are one full shard's job; the demo's jobs are not estimated (they keep their configured runtime).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from ddb.config import load_config  # noqa: E402
from ddb.sizing import ESTIMATED_RULES, rule_estimate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config.yaml"))
    args = parser.parse_args()
    config = load_config(args.config)
    resources = config["resources"]
    print(f"gpu_model {resources['gpu_model'] or 'any (A100 figures)'}, efficiency {resources['efficiency']}, "
          f"overhead {resources['overhead_minutes']} min a job\n")
    print("| dataset | rule | TFLOP | images | precision | peak TFLOP/s | minutes |")
    print("|---|---|---:|---:|---|---:|---:|")
    for name, entry in config["datasets"].items():
        for rule in ESTIMATED_RULES:
            if rule == "tune_retrain" or (rule == "textual_inversion" and not entry["textual_inversion"]["enabled"]):
                continue
            estimate = rule_estimate(rule, entry, resources)
            if estimate is None:
                continue
            print(f"| {name} | {rule} | {estimate['flops'] / 1e12:,.0f} | {estimate['images']:,} | "
                  f"{estimate['precision']} | {estimate['peak_tflops']:g} | {estimate['minutes']} |")


if __name__ == "__main__":
    main()
