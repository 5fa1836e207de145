"""The classifier f: a torchvision ResNet (ResNet-50 in the paper), or a one-block-per-stage `tiny` one."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms
from torchvision.models.resnet import BasicBlock, ResNet

from ..errors import DDBError
from ..io import save_torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_classifier(arch: str, num_classes: int, weights: str | None, seed: int,
                     config_key: str = "classifier") -> nn.Module:
    """A ResNet with a fresh ``num_classes`` head; backbone weights from torchvision, a file, or seeded."""
    torch.manual_seed(seed)
    if arch == "tiny":
        model = ResNet(BasicBlock, [1, 1, 1, 1])
    else:
        model = getattr(torchvision.models, arch)(weights=None)
    if weights:
        model.load_state_dict(_backbone_state_dict(arch, weights, config_key))
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _backbone_state_dict(arch: str, weights: str, config_key: str) -> dict:
    if Path(weights).exists():
        state = torch.load(weights, map_location="cpu", weights_only=True)
        return state.get("state_dict", state)
    try:
        enum = torchvision.models.get_model_weights(arch)[weights]
    except (KeyError, ValueError) as error:
        raise DDBError(f"config: {config_key}.weights", f"{weights!r} is neither a file nor a torchvision "
                       f"weight of {arch}", "use e.g. IMAGENET1K_V1, a state-dict path, or null") from error
    try:
        return enum.get_state_dict(progress=False)
    except Exception as error:
        raise DDBError(f"config: {config_key}.weights",
                       f"cannot load torchvision weights {arch}.{weights}: not in {torch.hub.get_dir()} and "
                       f"no network ({type(error).__name__})",
                       f"download {enum.url} on a machine with network into {torch.hub.get_dir()}/checkpoints, "
                       "or set weights to the file's path") from error


def reset_head(model: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    model.fc.reset_parameters()


def save_classifier(model: nn.Module, path: str | Path, *, arch: str, classes: list[str], image_size: int) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"arch": arch, "classes": classes, "image_size": image_size, "state_dict": state}, path)


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a checkpoint written by :func:`save_classifier`; returns (model in eval mode, its metadata)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = build_classifier(checkpoint["arch"], len(checkpoint["classes"]), None, seed=0)
    model.load_state_dict(checkpoint["state_dict"])
    meta = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    return model.to(device).eval(), meta


def import_classifier(path: str | Path, arch: str, num_classes: int, config_key: str) -> nn.Module:
    """An existing ERM checkpoint (a state dict, or a dict holding one under model/state_dict)."""
    path = Path(path)
    if not path.exists():
        raise DDBError(f"config: {config_key}", f"ERM checkpoint {str(path)!r} does not exist",
                       "fix the path, or set it to null to train ERM here")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    model = build_classifier(arch, num_classes, None, seed=0)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise DDBError(str(path), f"does not fit a {arch} with {num_classes} classes: {str(error)[:300]}",
                       "set classifier.arch to the checkpoint's architecture") from error
    return model


def eval_transform(image_size: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize((image_size, image_size), antialias=True),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def train_transform(image_size: int, augment: bool) -> transforms.Compose:
    if not augment:
        return eval_transform(image_size)
    return transforms.Compose([
        transforms.RandomResizedCrop(image_size, scale=(0.7, 1.0), ratio=(0.75, 4 / 3), antialias=True),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
