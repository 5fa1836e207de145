"""`accelerate` is a dependency: diffusers and transformers then load models with low_cpu_mem_usage (weights
straight from the files, no random initialisation first) and say nothing about it missing; the loaded
weights are the same either way."""

import hashlib
import subprocess
import sys


from helpers import REPO

LOAD_DEMO_INPAINTER = "from ddb.models.diffusion import load_inpaint_pipeline; load_inpaint_pipeline('ddb:demo_inpainter', seed=0)"


def test_loading_the_demo_inpainter_does_not_warn_about_accelerate():
    result = subprocess.run([sys.executable, "-W", "always", "-c", LOAD_DEMO_INPAINTER], capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO / "workflow"), "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accelerate" not in (result.stdout + result.stderr).lower()


def weights_digest(pipeline) -> str:
    digest = hashlib.sha256()
    for component in (pipeline.unet, pipeline.vae, pipeline.text_encoder):
        for key, value in sorted(component.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_low_memory_loading_gives_the_same_weights():
    from diffusers import StableDiffusionInpaintPipeline

    folder = REPO / "workflow" / "ddb" / "assets" / "demo_inpainter"
    low_memory = StableDiffusionInpaintPipeline.from_pretrained(folder, low_cpu_mem_usage=True, safety_checker=None)
    plain = StableDiffusionInpaintPipeline.from_pretrained(folder, low_cpu_mem_usage=False, safety_checker=None)
    assert weights_digest(low_memory) == weights_digest(plain)
