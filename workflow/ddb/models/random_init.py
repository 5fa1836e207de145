"""`random:` models: the paper's architectures, built from their published configs, with seeded random weights.

Time, memory, tensor shapes and dtypes do not depend on the values of the weights, so a run with
``random:sd2-community/stable-diffusion-2-inpainting`` (and the others of :func:`known_random_models`) costs
exactly what the hub model costs, on a machine that cannot download it. The architecture comes from
the config files shipped in ``ddb/assets/configs/<org>--<name>/`` (the hub's own ``config.json`` values;
each folder's ``ddb_random.json`` names the files they were taken from), the weights from a seed, and
everything after construction (loaders, steps, rules) is the code that hub weights run through.
A run that uses one is a *rehearsal*: ``eval.json``, ``ddb inspect`` and the report say so.

Construction skips PyTorch's and transformers' per-layer initialisation (slow on a CPU for a 865M
parameter UNet) and fills every parameter from its own seeded generator, with a uniform distribution of
the standard deviation of: 1/sqrt(fan_in) for linear and convolution weights (LeCun, which keeps the
activations of every layer far inside float16's range), the identity for norms, 0 for biases, 0.02
(transformers' initializer_range) for embeddings and other tensors. ``classifier.weights:
random:resnet50`` is torchvision's seeded ResNet-50 (:func:`ddb.models.classifier.build_classifier`).
"""

from __future__ import annotations

import contextlib
import json
import math

import torch
from torch import nn

from ..seeding import derive_seed
from .loading import is_random, known_random_models, random_manifest, random_models_of  # noqa: F401

EMBEDDING_STD = 0.02


def read_config(manifest: dict, relative: str) -> dict:
    """A published config file of a ``random:`` model (``relative`` to its folder in ddb/assets/configs)."""
    return json.loads((manifest["folder"] / relative).read_text())


# ---------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------

_TORCH_INIT_FUNCTIONS = ("uniform_", "normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_", "xavier_uniform_",
                         "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_", "orthogonal_",
                         "sparse_")


@contextlib.contextmanager
def skip_weight_init():
    """Inside the block, ``torch.nn.init`` functions and transformers' ``init_weights`` do nothing: a layer's
    parameters keep the values of ``torch.empty`` until :func:`fill_seeded_` writes them."""
    originals = {name: getattr(nn.init, name) for name in _TORCH_INIT_FUNCTIONS if hasattr(nn.init, name)}
    patched_classes = []
    try:
        from transformers import PreTrainedModel

        patched_classes.append((PreTrainedModel, PreTrainedModel.init_weights))
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    try:
        for name in originals:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        for cls, _ in patched_classes:
            cls.init_weights = lambda self, *args, **kwargs: None
        yield
    finally:
        for name, function in originals.items():
            setattr(nn.init, name, function)
        for cls, function in patched_classes:
            cls.init_weights = function


_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d)
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORMS) or type(module).__name__.lower().endswith(("norm", "layernorm", "norm2d"))


@torch.no_grad()
def fill_seeded_(model: nn.Module, seed: int) -> nn.Module:
    """Write every parameter of ``model`` from a generator seeded by (seed, parameter name): the values do
    not depend on the order of construction or on other parameters. Shared (tied) parameters are filled once."""
    seen = set()
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            if id(parameter) in seen:
                continue
            seen.add(id(parameter))
            full = f"{module_name}.{name}" if module_name else name
            if name == "bias" or (_is_norm(module) and name != "weight"):
                parameter.zero_()
            elif _is_norm(module):
                parameter.fill_(1.0)
            else:
                std = EMBEDDING_STD
                if isinstance(module, _LAYERS) and name == "weight" and parameter.dim() >= 2:
                    std = 1.0 / math.sqrt(max(1, parameter[0].numel()))
                _fill_uniform_(parameter, std, derive_seed(seed, "random", full))
    return model


# Values drawn per parameter; a larger one repeats them (a prime length, so no two rows of a matrix are the
# same). A CPU draws about 7 ns per value: drawing all of SD-2's 1.3 billion would take 10 s; tiling is a copy.
BLOCK = 1_000_003


def _fill_uniform_(parameter: torch.Tensor, std: float, seed: int) -> None:
    """U(-a, a) with standard deviation ``std``, from a generator seeded with ``seed``."""
    bound = std * math.sqrt(3.0)
    generator = torch.Generator(device=parameter.device).manual_seed(seed)
    flat = parameter.data.view(-1)
    block = torch.empty(min(flat.numel(), BLOCK), dtype=flat.dtype, device=flat.device)
    block.uniform_(-bound, bound, generator=generator)
    whole = flat.numel() // len(block)
    flat[:whole * len(block)].view(whole, len(block)).copy_(block.expand(whole, -1))
    flat[whole * len(block):].copy_(block[:flat.numel() - whole * len(block)])


def build_seeded(build, seed: int, device: torch.device | str | None = None) -> nn.Module:
    """``build()`` with per-layer initialisation skipped, allocated on ``device`` (the default device when
    None), then filled by :func:`fill_seeded_`; the caller's global RNG state is left untouched (a module
    that draws a buffer at construction, e.g. SAM's positional embedding, draws it from ``seed``)."""
    device = torch.device(device) if device is not None else None
    forked = [device.index or 0] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(derive_seed(seed, "random", "buffers"))
        with skip_weight_init(), (device or contextlib.nullcontext()):
            model = build()
            _tie_weights(model)
    return fill_seeded_(model, seed)


def _tie_weights(model: nn.Module) -> None:
    """What transformers' skipped ``init_weights`` also does: tie the weights the model shares (GroundingDINO's
    box heads, SAM's positional embedding), so the random model has exactly the hub model's parameters."""
    tie = getattr(model, "tie_weights", None)
    if not callable(tie) or not hasattr(model, "config"):
        return
    try:
        tie(recompute_mapping=False)  # transformers 5
    except TypeError:
        tie()  # transformers 4


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())

