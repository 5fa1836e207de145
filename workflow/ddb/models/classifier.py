"""The classifier f: a torchvision ResNet (ResNet-50 in the paper), or a one-block-per-stage `tiny` one."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms
from torchvision.models.resnet import BasicBlock, ResNet

from ..errors import DDBError
from ..storage.atomic import save_torch
from ..storage.reading import load_checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_classifier(arch: str, num_classes: int, weights: str | None, seed: int,
                     config_key: str = "classifier") -> nn.Module:
    """A ResNet with a fresh ``num_classes`` head; backbone weights from torchvision, a file, or seeded.

    ``weights: random:<arch>`` (e.g. ``random:resnet50``) is the seeded random backbone of a rehearsal in
    place of the paper's ImageNet weights (no download); like null, but marked as a ``random:`` model.
    """
    torch.manual_seed(seed)
    if arch == "tiny":
        model = ResNet(BasicBlock, [1, 1, 1, 1])
    else:
        model = getattr(torchvision.models, arch)(weights=None)
    if weights and weights.startswith("random:"):
        if weights != f"random:{arch}":
            raise DDBError(f"config: {config_key}.weights", f"{weights!r} is not a random {arch}",
                           f"use random:{arch} (the architecture named by {config_key}.arch), or change the arch")
    elif weights:
        model.load_state_dict(_backbone_state_dict(arch, weights, config_key))
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


# weights_only=True holds from this release on (CVE-2025-32434)
SAFE_LOADING_TORCH = (2, 6)


def _torch_release() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def load_state_dict_file(path: str | Path, config_key: str) -> dict:
    """A checkpoint file's tensors, loaded without running its pickled code (``weights_only``). A file
    that pickles a whole ``nn.Module`` stops with the one-line conversion to a state dict."""
    if _torch_release() < SAFE_LOADING_TORCH:
        raise DDBError(f"config: {config_key} ({path})", f"torch {torch.__version__} can be made to run code from a "
                       "checkpoint even with weights_only=True (CVE-2025-32434), so no checkpoint file is loaded",
                       "install torch 2.6 or newer (pip install -U 'torch>=2.6')")
    try:
        return load_checkpoint(path)
    except DDBError as error:  # the user's file, not an artifact a rule remakes
        raise DDBError(f"config: {config_key} ({path})", error.problem,
                       "point it at a whole checkpoint file (download or copy it again)") from error
    except pickle.UnpicklingError as error:
        converted = f"{Path(path).stem}.state_dict.pt"
        raise DDBError(f"config: {config_key} ({path})",
                       "the file pickles a whole model object, not a state dict; loading it would run code from "
                       "the file, so it is refused",
                       "if you trust the file, convert it once: python -c \"import torch; torch.save(torch.load("
                       f"'{path}', weights_only=False).state_dict(), '{converted}')\" and point {config_key} at "
                       f"{converted}") from error


def _backbone_state_dict(arch: str, weights: str, config_key: str) -> dict:
    if Path(weights).exists():
        state = load_state_dict_file(weights, f"{config_key}.weights")
        return state.get("state_dict", state)
    try:
        enum = torchvision.models.get_model_weights(arch)[weights]
    except (KeyError, ValueError) as error:
        raise DDBError(f"config: {config_key}.weights", f"{weights!r} is neither a file nor a torchvision "
                       f"weight of {arch}", "use e.g. IMAGENET1K_V1, a state-dict path, or null") from error
    from .fetching import download_command, hub_offline, torchvision_weights_file

    if hub_offline() and not torchvision_weights_file(enum.url).is_file():
        # a cluster job runs offline: name the missing file at once rather than wait on the network
        raise DDBError(f"config: {config_key}.weights",
                       f"torchvision weights {arch}.{weights} are not in {torch.hub.get_dir()}/checkpoints and this "
                       "job may not use the network (HF_HUB_OFFLINE is set: ddb sets it in every cluster job)",
                       "rerun snakemake where it can download, with the TORCH_HOME the jobs see (its fetch_model "
                       f"job downloads them), or run `{download_command(f'{arch}.{weights}', 'torchvision')}` there")
    try:
        return enum.get_state_dict(progress=False)
    except Exception as error:
        raise DDBError(f"config: {config_key}.weights",
                       f"cannot load torchvision weights {arch}.{weights}: not in {torch.hub.get_dir()} and "
                       f"no network ({type(error).__name__})",
                       f"download {enum.url} on a machine with network into {torch.hub.get_dir()}/checkpoints, "
                       "or set weights to the file's path") from error


HEAD_INITS = ("default", "xavier")


def reset_head(model: nn.Module, seed: int, init: str = "default") -> None:
    """Draw f's head anew: ``default`` is nn.Linear's own init; ``xavier`` is Xavier-uniform weights and a
    zero bias, the authors' ``weight_init`` on the head before retraining (DDB train.py, as DaC utils.py:37-50)."""
    torch.manual_seed(seed)
    if init == "xavier":
        nn.init.xavier_uniform_(model.fc.weight)
        nn.init.zeros_(model.fc.bias)
    elif init == "default":
        model.fc.reset_parameters()
    else:
        raise DDBError("config: retrain.head_init", f"unknown head init {init!r}", f"use one of {HEAD_INITS}")


def save_classifier(model: nn.Module, path: str | Path, *, arch: str, classes: list[str], image_size: int,
                    transform: str = "stretch") -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"arch": arch, "classes": classes, "image_size": image_size, "transform": transform,
                "state_dict": state}, path)


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a checkpoint written by :func:`save_classifier`; returns (model in eval mode, its metadata)."""
    checkpoint = load_checkpoint(path)
    model = build_classifier(checkpoint["arch"], len(checkpoint["classes"]), None, seed=0)
    model.load_state_dict(checkpoint["state_dict"])
    meta = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    return model.to(device).eval(), meta


# Wrappers around a torchvision ResNet's keys in the ERM checkpoints f is imported from: ``model.`` is the
# ResNet50 module of DaC (models.py:7-13, saved by main.py:107) and of the DDB authors (train.py loads their
# released files into it), ``module.`` DataParallel's, ``network.`` DomainBed-style algorithms'.
KEY_PREFIXES = ("module.", "model.", "network.")
# Dicts that hold the state dict: our own save_classifier and training scripts' {"state_dict": ...},
# {"model": ...}, {"network": ...}.
STATE_DICT_KEYS = ("state_dict", "model", "network")


def unwrap_state_dict(state: dict) -> dict:
    """The ResNet's own keys (``conv1.weight`` ... ``fc.bias``) of a checkpoint in any format above."""
    for key in STATE_DICT_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    unwrapped = {}
    for key, value in state.items():
        while key.startswith(KEY_PREFIXES):
            key = key.split(".", 1)[1]
        unwrapped[key] = value
    return unwrapped


def import_classifier(path: str | Path, arch: str, num_classes: int, config_key: str) -> nn.Module:
    """An existing ERM checkpoint: a state dict (DFR's), a dict holding one under state_dict/model/network,
    keys optionally under ``model.`` (DaC's and the DDB authors' wrapper), ``module.`` (DataParallel) or
    ``network.``. DISC's files pickle the whole model (disc/train.py:222): they stop with the conversion."""
    path = Path(path)
    if not path.exists():
        raise DDBError(f"config: {config_key}", f"ERM checkpoint {str(path)!r} does not exist",
                       "fix the path, or set it to null to train ERM here")
    state = unwrap_state_dict(load_state_dict_file(path, config_key))
    model = build_classifier(arch, num_classes, None, seed=0)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        arch_key = config_key.removesuffix("erm.checkpoint") + "classifier.arch"
        raise DDBError(f"config: {config_key} ({path})",
                       f"does not fit a {arch} with {num_classes} classes: {str(error)[:300]}",
                       f"set {arch_key} to the checkpoint's architecture") from error
    return model


# How f sees an image (docs/method.md, "Decisions where the paper is ambiguous"): the recipes the imported ERM
# checkpoints were trained with, named by what they do. The geometry (resize, crop) is kept apart from
# the tensor conversion so a mask can follow an image pixel for pixel (nearest-neighbour resampling).
TRANSFORMS = ("stretch", "resize_center_crop", "center_crop_resize", "resize_shorter_center_crop")
# RandomResizedCrop's aspect ratios in training: CelebA's recipe (DFR, the authors) keeps faces upright.
AUGMENT_RATIO = {"center_crop_resize": (1.0, 4 / 3)}
DEFAULT_AUGMENT_RATIO = (0.75, 4 / 3)


class CenterSquare(nn.Module):
    """CenterCrop to the image's shorter side (178 for CelebA's 178x218 images), for any image size."""

    def forward(self, image):
        width, height = transforms.functional.get_image_size(image)
        return transforms.functional.center_crop(image, min(width, height))


def geometry(image_size: int, recipe: str = "stretch",
             interpolation=transforms.InterpolationMode.BILINEAR) -> transforms.Compose:
    """The resize/crop of ``recipe`` for output size ``image_size`` (PIL in, PIL out)."""
    larger = image_size * 256 // 224  # Resize 256 before CenterCrop 224, scaled for other sizes
    resize = lambda size: transforms.Resize(size, interpolation=interpolation, antialias=True)  # noqa: E731
    steps = {
        "stretch": [resize((image_size, image_size))],
        "resize_center_crop": [resize((larger, larger)), transforms.CenterCrop(image_size)],
        "center_crop_resize": [CenterSquare(), resize((image_size, image_size))],
        "resize_shorter_center_crop": [resize(larger), transforms.CenterCrop(image_size)],
    }
    if recipe not in steps:
        raise DDBError("config: classifier.transform", f"unknown transform {recipe!r}", f"use one of {TRANSFORMS}")
    return transforms.Compose(steps[recipe])


def mask_geometry(image_size: int, recipe: str = "stretch") -> transforms.Compose:
    """What :func:`geometry` does to an image, done to its mask (nearest neighbour: stays binary)."""
    return geometry(image_size, recipe, transforms.InterpolationMode.NEAREST)


def eval_transform(image_size: int, recipe: str = "stretch") -> transforms.Compose:
    return transforms.Compose([
        geometry(image_size, recipe),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def train_transform(image_size: int, augment: bool, recipe: str = "stretch") -> transforms.Compose:
    if not augment:
        return eval_transform(image_size, recipe)
    return transforms.Compose([
        transforms.RandomResizedCrop(image_size, scale=(0.7, 1.0), ratio=AUGMENT_RATIO.get(recipe, DEFAULT_AUGMENT_RATIO),
                                     antialias=True),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
