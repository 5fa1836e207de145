"""Can this node run DDB's GPU jobs? ``ddb doctor`` (run it on a GPU node before submitting) and the
check every GPU job makes first (:func:`ddb.scripting.check_cuda`) read the node the same way, here.

A CUDA build of torch runs only on an NVIDIA driver at least as new as its CUDA major version needs
(NVIDIA's minor-version compatibility: CUDA 12.x from driver 525, CUDA 13.x from driver 580). On an older
driver ``torch.cuda.is_available()`` is simply False, which looks like a node without a GPU; reading the
driver version (``nvidia-smi``, or ``/proc/driver/nvidia/version``) tells the two apart.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# CUDA major version -> the oldest NVIDIA driver (major number) that runs it (NVIDIA's CUDA compatibility
# guide, "minor version compatibility")
MINIMUM_DRIVER = {11: 450, 12: 525, 13: 580}
# torch builds for older drivers, on PyTorch's own index: CUDA version -> index URL
TORCH_INDEX = {"12.6": "https://download.pytorch.org/whl/cu126"}
INSTALL_DOCS = "docs/cluster.md, section \"Install on a cluster\""
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass
class NodeFacts:
    """What the probes found; every field can be set by hand (tests)."""

    torch_version: str
    torch_cuda: str | None  # torch.version.cuda; None: a CPU-only build
    cuda_available: bool
    driver: str | None = None  # e.g. "535.104.05"; None: no NVIDIA driver found
    driver_source: str = ""
    gpus: list = field(default_factory=list)  # GPU names nvidia-smi lists (or torch sees)
    visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES
    matmul_error: str | None = None  # a CUDA matmul's error; None: it worked or did not run


@dataclass
class Verdict:
    ok: bool
    problem: str = ""
    fix: str = ""
    no_gpu: bool = False  # no GPU at all on this node / in this job (the partition is the fix)

    def line(self) -> str:
        if self.ok:
            return "verdict: OK: torch computes on the GPU"
        return f"verdict: PROBLEM: {self.problem}\n  fix: {self.fix}"


def _major(version: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def minimum_driver(torch_cuda: str | None) -> int | None:
    """The oldest driver (major number) for a torch built with CUDA ``torch_cuda`` (None: unknown)."""
    return MINIMUM_DRIVER.get(_major(torch_cuda))


def driver_too_old(driver: str | None, torch_cuda: str | None) -> bool:
    needed, have = minimum_driver(torch_cuda), _major(driver)
    return needed is not None and have is not None and have < needed


def torch_build_for_driver(driver: str | None) -> str | None:
    """The CUDA version of a torch build on PyTorch's index that runs on ``driver`` (None: none does)."""
    have = _major(driver)
    for cuda in sorted(TORCH_INDEX, key=lambda v: tuple(map(int, v.split("."))), reverse=True):
        if have is not None and have >= minimum_driver(cuda):
            return cuda
    return None


# ---- probes (each returns what it found; never raises) -----------------------------------------------

def nvidia_smi(run=subprocess.run) -> tuple[str | None, list]:
    """(driver version, GPU names) from ``nvidia-smi``; (None, []) where it is missing or lists no GPU."""
    try:
        result = run(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                     capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None, []
    if result.returncode != 0:
        return None, []
    rows = [line.split(",", 1) for line in result.stdout.splitlines() if "," in line]
    return (rows[0][0].strip() if rows else None), [name.strip() for _, name in rows]


def proc_driver_version(path: str | os.PathLike = "/proc/driver/nvidia/version") -> str | None:
    """The kernel module's version, present where the driver is loaded even if this job sees no GPU."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    match = re.search(r"Kernel Module.*?\s(\d+\.\d+(?:\.\d+)?)\s", text)
    return match.group(1) if match else None


def cuda_matmul_error() -> str | None:
    """Run a small matmul on the GPU and compare it with the CPU's; the error text, or None when right."""
    import torch

    try:
        a = torch.arange(64 * 64, dtype=torch.float32).reshape(64, 64) / 4096
        on_gpu = (a.cuda() @ a.cuda()).cpu()
        torch.cuda.synchronize()
    except Exception as error:  # noqa: BLE001 - any CUDA failure is the answer
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if not torch.allclose(on_gpu, a @ a, rtol=1e-3, atol=1e-3):
        return "a 64x64 matmul on the GPU differs from the CPU's"
    return None


def probe(matmul: bool = True) -> NodeFacts:
    import torch

    driver, gpus = nvidia_smi()
    source = "nvidia-smi" if driver else ""
    if driver is None:
        driver = proc_driver_version()
        source = "/proc/driver/nvidia/version" if driver else ""
    available = torch.cuda.is_available()
    if available and not gpus:
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return NodeFacts(torch_version=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=available,
                     driver=driver, driver_source=source, gpus=gpus,
                     visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                     matmul_error=cuda_matmul_error() if available and matmul else None)


# ---- the verdict --------------------------------------------------------------------------------------

def diagnose(facts: NodeFacts) -> Verdict:
    """Why torch cannot compute on a GPU here, and the fix; ok where it can."""
    if facts.cuda_available:
        if facts.matmul_error:
            return Verdict(False, f"torch sees {', '.join(facts.gpus) or 'a GPU'} but a matmul on it fails "
                                  f"({facts.matmul_error})",
                           "install a torch build whose CUDA supports this GPU (`no kernel image` means the build "
                           f"has no code for it; {INSTALL_DOCS})")
        return Verdict(True)
    if facts.torch_cuda is None:
        return Verdict(False, f"torch {facts.torch_version} is a CPU-only build",
                       f"install a CUDA build of torch in the jobs' environment ({INSTALL_DOCS})",
                       no_gpu=not facts.driver)
    if facts.driver and driver_too_old(facts.driver, facts.torch_cuda):
        needed = minimum_driver(facts.torch_cuda)
        build = torch_build_for_driver(facts.driver)
        fix = (f"install torch built for CUDA {build}: pip install torch=={facts.torch_version.split('+')[0]} "
               f"--index-url {TORCH_INDEX[build]} (CUDA {_major(build)}.x runs from driver "
               f"{minimum_driver(build)}), or ask the cluster's admins for driver >= {needed}"
               if build else f"ask the cluster's admins for driver >= {needed}; no torch build on PyTorch's index "
                             f"runs on driver {facts.driver}")
        return Verdict(False, f"NVIDIA driver {facts.driver} is older than torch's CUDA {facts.torch_cuda} needs "
                              f"(>= {needed})", f"{fix} ({INSTALL_DOCS})")
    visible = facts.visible_devices
    if visible is not None and visible.strip() in ("", "-1", "NoDevFiles"):
        return Verdict(False, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from torch",
                       "ask SLURM for a GPU (--gpus=1, resources.gpu in config.yaml) and do not empty "
                       "CUDA_VISIBLE_DEVICES", no_gpu=True)
    if not facts.driver or not facts.gpus:
        where = (f"the node has NVIDIA driver {facts.driver} but this job was given no GPU" if facts.driver
                 else "no NVIDIA driver or GPU on this node")
        return Verdict(False, f"torch (CUDA {facts.torch_cuda}) finds no CUDA device: {where}",
                       "run on a node with GPUs, asking for one: `srun --partition=<gpu partition> --gpus=1 "
                       "ddb doctor`; for the workflow's jobs DDB_SLURM_GPU_PARTITION and resources.gpu_model "
                       "(docs/cluster.md)", no_gpu=True)
    return Verdict(False, f"torch (CUDA {facts.torch_cuda}) finds no CUDA device although nvidia-smi lists "
                          f"{', '.join(facts.gpus)} with driver {facts.driver}",
                   "check that the GPUs are not in use by another process or in an error state "
                   f"(`nvidia-smi`), and that torch's CUDA libraries load ({INSTALL_DOCS})")


# ---- ddb doctor -----------------------------------------------------------------------------------------

def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _folder(path: str) -> str:
    return f"{path} ({'exists' if Path(path).is_dir() else 'missing'})"


def cache_lines(env=os.environ) -> list[tuple[str, str]]:
    """Where the models are read from: the Hugging Face hub cache and torch's, and the offline switches."""
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                              "huggingface")
    hub = env.get("HF_HUB_CACHE") or os.path.join(home, "hub")
    torch_home = env.get("TORCH_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                                       "torch")
    offline = ", ".join(f"{name}={env[name]}" if name in env else f"{name} unset" for name in OFFLINE_VARIABLES)
    return [("HF_HOME", f"{home}{'' if 'HF_HOME' in env else ' (default)'}"),
            ("HF hub cache", _folder(hub) + ("" if "HF_HUB_CACHE" in env else " (HF_HUB_CACHE unset)")),
            ("TORCH_HOME", _folder(torch_home) + ("" if "TORCH_HOME" in env else " (default)")),
            ("offline", offline)]


def report(facts: NodeFacts, env=os.environ) -> str:
    gpus = ", ".join(facts.gpus) if facts.gpus else "none listed"
    lines = [("python", f"{sys.version.split()[0]} ({sys.executable})"),
             ("snakemake", _package_version("snakemake")),
             ("torch", f"{facts.torch_version} (CUDA {facts.torch_cuda or 'none: CPU-only build'})"),
             ("NVIDIA driver", f"{facts.driver} ({facts.driver_source})" if facts.driver else "none found"),
             ("GPUs", gpus),
             ("CUDA_VISIBLE_DEVICES", "unset" if facts.visible_devices is None else repr(facts.visible_devices)),
             ("CUDA works", ("yes: a matmul on the GPU is right" if facts.cuda_available and not facts.matmul_error
                             else "no")),
             *cache_lines(env)]
    width = max(len(name) for name, _ in lines)
    return "\n".join([f"{name:<{width}}  {value}" for name, value in lines] + [diagnose(facts).line()])


def doctor_command() -> int:
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as error:  # a missing package, or a CUDA library that does not load
        print(f"python  {sys.version.split()[0]} ({sys.executable})\ntorch   cannot be imported: {error}")
        print(f"verdict: PROBLEM: torch cannot be imported in this Python\n  fix: install torch in the environment "
              f"the jobs run ({INSTALL_DOCS})")
        return 1
    facts = probe()
    print(report(facts))
    return 0 if diagnose(facts).ok else 1
