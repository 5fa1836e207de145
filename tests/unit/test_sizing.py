"""Runtime requests from the work (ddb.sizing): FLOP counts, the estimate's arithmetic."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml
from helpers import REPO

from ddb import sizing
from ddb.config import load_config, validate_config


@pytest.fixture(scope="module")
def paper_config():
    return load_config(REPO / "config.yaml")


@pytest.mark.parametrize("model, resolution", sorted(sizing.FORWARD_FLOPS))
def test_the_shipped_flop_table_is_a_fresh_count_on_the_meta_device(model, resolution):
    assert sizing._count_on_meta(model, resolution) == sizing.FORWARD_FLOPS[(model, resolution)]


def test_a_guided_sd2_inpainting_step_at_512_px_is_about_1_6_tflop():
    per_image_step = sizing.count_forward_flops("sd2-inpainting-unet", 512)
    assert 1.55e12 < 2 * per_image_step < 1.65e12  # the guided step's batch of two
    assert 78e12 < 2 * 50 * per_image_step < 82e12  # ~80 TFLOP an image over 50 steps


def test_a_resolution_outside_the_table_is_counted_once():
    sizing._count_on_meta.cache_clear()
    tiny = sizing.count_forward_flops("tiny", 32)
    assert 0 < tiny < sizing.count_forward_flops("tiny", 64)  # 4x the pixels: about 4x the work
    assert sizing.count_forward_flops("tiny", 64) == pytest.approx(4 * tiny, rel=0.05)
    assert sizing._count_on_meta.cache_info().currsize == 2


def test_minutes_are_flops_over_the_peak_at_the_efficiency_plus_the_overhead():
    # 312 TFLOP/s at 25%: 78e12 FLOP/s, so 78e12 * 60 * 30 FLOPs take 30 minutes
    assert sizing.estimate_minutes(78e12 * 60 * 30, 312, 0.25, 10) == 40
    assert sizing.estimate_minutes(78e12 * 60 * 30.01, 312, 0.25, 0) == 31  # rounded up
    assert sizing.estimate_minutes(0, 312, 0.25, 0) == 1


def test_the_peak_follows_the_precision_the_card_and_the_config(paper_config):
    resources = paper_config["resources"]
    assert sizing.peak_tflops(resources, "bf16") == 312 and sizing.peak_tflops(resources, "fp32") == 19.5
    assert sizing.peak_tflops({**resources, "gpu_model": "h100"}, "fp16") == 989
    assert sizing.peak_tflops({**resources, "gpu_peak_tflops": 100}, "tf32") == 100
    assert sizing.peak_tflops({**resources, "gpu_peak_tflops": {"bf16": 200}}, "bf16") == 200
    assert sizing.classifier_peak_key({"precision": "fp32", "tf32": True}) == "tf32"
    assert sizing.classifier_peak_key({"precision": "fp32", "tf32": False}) == "fp32"
    assert sizing.classifier_peak_key({"precision": "auto"}) == "bf16"


def test_celeba_retraining_is_images_times_epochs(paper_config):
    celeba = paper_config["datasets"]["celeba"]
    # joint batches (the paper's): every epoch one pass over the real subsample and every planned generation
    # (K 20,000 sources of each class, 3 images each, none pruned)
    assert sizing.generated_upper_bound(celeba) == 2 * 20000 * 3
    work = sizing.rule_work("retrain", celeba)
    assert work["images"] == (48534 + 120000) * 200
    f = sizing.FORWARD_FLOPS[("resnet50", 224)]
    assert work["flops"] == 3 * f * work["images"] + f * 19867 * 200
    # fp32 with PyTorch's default TF32 (cuDNN convolutions): an A100's TF32 peak
    assert work["precision"] == "tf32"
    estimate = sizing.rule_estimate("retrain", celeba, paper_config["resources"])
    assert estimate["minutes"] == sizing.estimate_minutes(work["flops"], 156, 0.25, 10)
    slower = sizing.rule_estimate("retrain", celeba, {**paper_config["resources"], "efficiency": 0.125})
    assert slower["minutes"] - 10 == pytest.approx(2 * (estimate["minutes"] - 10), abs=1)
    # paired batches: each real batch of 64 joined by 16 generated images of each class
    paired = copy.deepcopy(celeba)
    paired["retrain"]["batching"] = "paired"
    assert sizing.rule_work("retrain", paired)["images"] == -(-48534 // 64) * (64 + 16 * 2) * 200


def test_inpainting_a_shard_is_its_images_times_guided_steps(paper_config):
    waterbirds = paper_config["datasets"]["waterbirds"]
    work = sizing.rule_work("inpaint", waterbirds)
    images = waterbirds["generation"]["images_per_shard"]
    assert work["images"] == images
    assert work["flops"] == 2 * 50 * sizing.FORWARD_FLOPS[("sd2-inpainting-unet", 512)] * images
    unguided = copy.deepcopy(waterbirds)
    unguided["inpainting"]["guidance_scale"] = 1.0
    assert sizing.rule_work("inpaint", unguided)["flops"] == work["flops"] // 2


def test_the_demo_light_rules_and_small_diffusion_models_are_not_estimated(paper_config):
    demo = paper_config["datasets"]["demo"]
    assert sizing.rule_estimate("retrain", demo, paper_config["resources"]) is None
    waterbirds = copy.deepcopy(paper_config["datasets"]["waterbirds"])
    assert sizing.rule_estimate("prune", waterbirds, paper_config["resources"]) is None
    waterbirds["inpainting"]["model"] = "tiny"  # a test's model: not SD-2's work
    waterbirds["textual_inversion"]["model"] = "ddb:demo_inpainter"
    assert sizing.rule_estimate("inpaint", waterbirds, paper_config["resources"]) is None
    assert sizing.rule_estimate("textual_inversion", waterbirds, paper_config["resources"]) is None
    assert sizing.rule_estimate("inpaint", paper_config["datasets"]["waterbirds"], paper_config["resources"])


def test_a_run_longer_than_its_cap_gets_an_attempt_per_allocation_and_one_more():
    assert sizing.attempts_needed(100, None) == 1 and sizing.attempts_needed(100, 100) == 1
    assert sizing.attempts_needed(101, 100) == 3
    assert sizing.attempts_needed(1000, 240) == 6  # ceil(1000 / 240) + 1
    assert sizing.training_retries([(1000, 240), (100, None)]) == 5  # the job that needs the most
    assert sizing.training_retries([(100, None), (100, 100)]) is None  # the profile's retries hold
    assert sizing.training_retries([]) is None


def test_the_config_keys_are_validated():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["resources"].update({"gpu_peak_tflops": {"bf16": 150}, "efficiency": 0.4, "overhead_minutes": 5})
    assert validate_config(copy.deepcopy(config))["resources"]["efficiency"] == 0.4
    config["resources"]["efficiency"] = 2
    with pytest.raises(Exception, match="efficiency"):
        validate_config(config)


def test_the_estimate_table_command_prints_every_paper_dataset():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "estimate_runtimes.py")],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    for ds in ("waterbirds", "celeba", "metashift"):
        assert f"| {ds} | retrain |" in result.stdout
    assert "efficiency 0.25" in result.stdout


def test_the_benchmarks_print_achieved_flops_as_a_share_of_the_peak(capsys):
    from helpers import load_benchmark

    generation = load_benchmark("generation")
    settings = generation.paper_arch_settings(None, on_gpu=True)
    defaults = generation.dataset_defaults()
    # 16 images inpainted in 20 s: 0.8 image/s x 80.4 TFLOP = 64.4 TFLOP/s, 20.6% of 312
    inpaint = generation.StepResult("inpaint", "sd2", 16, 8, 1.0, generation.Run(40.0, None), generation.Run(20.0, None))
    generation.print_efficiency([inpaint], settings, defaults, generation.torch.device("cuda"))
    out = capsys.readouterr().out
    assert "80.438" in out and "64.35" in out and "20.6%" in out

    rehearsal = load_benchmark("rehearsal")
    dataset = {**defaults, "classifier": {"arch": "resnet50", "image_size": 224, "precision": "auto"}}
    rehearsal.print_flop_share({"ig_score": {"items": 100, "seconds": 30.0, "setup_s": 10.0}}, dataset)
    out = capsys.readouterr().out  # 100 items x 1.226 TFLOP in 20 s: 6.13 TFLOP/s, 2.0% of 312 (bf16)
    assert re.search(r"ig_score\s+1\.226\s+6\.13\s+312 bf16\s+2\.0%", out), out
