"""benchmarks/generation.py --quick runs on a CPU and prints every figure (it never judges them)."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUMBER = r"[0-9][0-9,]*\.[0-9]+"


def test_generation_benchmark_quick_prints_rates_memory_and_the_table4_comparison():
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "generation.py"), "--quick"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert "device cpu" in out
    # one row per step: n, batch, load seconds, img/s one at a time, img/s batched, ratio, peak MiB x2
    for step in ("mask/files", "mask/grounded_sam", "inpaint", "ig"):
        row = re.search(rf"^{re.escape(step)}\s+4\s+4\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})x"
                        rf"\s+({NUMBER})\s+({NUMBER})\s", out, re.MULTILINE)
        assert row, f"no figures for {step}:\n{out}"
        single, batched, ratio = (float(row.group(i).replace(",", "")) for i in (2, 3, 4))
        assert single > 0 and batched > 0
        assert abs(ratio - batched / single) <= 0.02 + 0.05 * ratio  # both rates are rounded
    # the paper's Table 4 next to the (missing, CPU-only) projection
    for dataset, hours in (("Waterbirds", "1.0"), ("CelebA", "5.0"), ("MetaShift", "0.5")):
        assert re.search(rf"^{dataset}\s+\d+\s+\d+\s+{re.escape(hours)}\s+{NUMBER}\s+missing\s+missing$", out,
                         re.MULTILINE), out
    assert "GPU figures missing" in out
