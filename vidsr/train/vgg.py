"""VGG19's convolutional ``features``, laid out with torchvision's layer indices, for the SRGAN content loss.

torchvision is not a dependency (and ImageNet weights cannot be downloaded at
run time), so the network is written here and takes a torchvision-format state
dict (``features.N.weight`` / ``features.N.bias``) from a file the user supplies.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vidsr.errors import ModelError

# torchvision's "E" configuration: numbers are conv widths, "M" a 2x2 max-pool.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# features[35] is relu5_4, the activation before the 5th max-pool: the paper's VGG5,4.
RELU5_4 = 35
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features() -> nn.Sequential:
    """``torchvision.models.vgg19().features`` with the same indices (conv, ReLU, ..., MaxPool)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """ImageNet-normalised VGG19 features up to and including ``features[last]``; frozen."""

    def __init__(self, features: nn.Sequential | None = None, last: int = RELU5_4) -> None:
        super().__init__()
        features = features if features is not None else vgg19_features()
        self.features = features[: last + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.features((rgb - self.mean) / self.std)


def load_vgg19(path: str | Path | None, last: int = RELU5_4) -> VGGFeatures:
    """VGG19 features with ImageNet weights from ``path`` (torchvision format), or a :class:`ModelError`."""
    hint = (
        "SRGAN's content loss needs ImageNet VGG19 weights, which vidsr cannot download: save "
        "torchvision.models.vgg19(weights='IMAGENET1K_V1').state_dict() with torch.save on a machine that has "
        "them and pass the file with --vgg-weights"
    )
    if path is None:
        raise ModelError(f"no VGG19 weights given. {hint}")
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"VGG19 weights {path} do not exist. {hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read VGG19 weights {path}: {exc}") from None
    if not isinstance(state, dict):
        raise ModelError(f"VGG19 weights {path} hold no state dict")
    features = vgg19_features()
    wanted = {k: v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict({k.removeprefix("features."): v for k, v in wanted.items()})
    except RuntimeError as exc:
        raise ModelError(f"VGG19 weights {path} do not fit torchvision's vgg19 features: {exc}") from None
    return VGGFeatures(features, last)
