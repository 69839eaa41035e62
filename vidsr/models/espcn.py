"""ESPCN: efficient sub-pixel CNN (Shi et al., CVPR 2016), and a deeper variant of the same family.

All convolutions run at the low resolution; one PixelShuffle rearranges
scale^2 channels into the high-resolution image.  vidsr runs it on luma.

Two configurations ship (a weights file names its own in its metadata, under
``arch_config``, so ``build_model`` builds the network that fits it):

* ``paper``: the paper's 5x5-64, 3x3-32, 3x3-s^2 with tanh.  Fast, but too small
  to both recognise and undo more than one degradation (measured: trained on a
  mixture of degradations it learns to do almost nothing).
* ``robust``: 8 convolutions of 48 channels with ReLU, whose PixelShuffle output is
  added to a bicubic upscale of the input (a global residual, as VDSR): the
  network only has to learn the missing detail, which is what lets a small CPU
  budget train it on blurred, aliased, noisy and compressed inputs at once.
  About 5x the paper's FLOPs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from vidsr.models.bicubic_residual import BicubicPhases


@dataclass(frozen=True)
class ESPCNConfig:
    """The shape of an ESPCN-family network.  ``features``: widths of the hidden layers, in order."""

    features: tuple[int, ...] = (64, 32)
    head_kernel: int = 5
    activation: Literal["tanh", "relu"] = "tanh"
    residual: bool = False  # add a bicubic upscale of the input to the output

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ESPCNConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "features" in known:
            known["features"] = tuple(int(f) for f in known["features"])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        return out

    @property
    def receptive_radius(self) -> int:
        """Low-resolution pixels each output pixel depends on, each side."""
        radius = self.head_kernel // 2 + len(self.features)  # every later conv is 3x3
        return max(radius, 2) if self.residual else radius  # bicubic reaches 2 pixels


PAPER = ESPCNConfig()
ROBUST = ESPCNConfig(features=(48,) * 7, head_kernel=3, activation="relu", residual=True)
CONFIGS = {"paper": PAPER, "robust": ROBUST}


class ESPCN(nn.Module):
    def __init__(self, scale: int, channels: int = 1, config: ESPCNConfig = PAPER) -> None:
        super().__init__()
        self.scale = scale
        self.config = config
        self.receptive_radius = config.receptive_radius
        act = nn.Tanh if config.activation == "tanh" else nn.ReLU
        layers: list[nn.Module] = []
        width, kernel = channels, config.head_kernel
        # Sequential indices 0, 2, 4, ... hold the convolutions: the paper weights' key names.
        for features in config.features:
            layers += [nn.Conv2d(width, features, kernel, padding=kernel // 2), act()]
            width, kernel = features, 3
        layers.append(nn.Conv2d(width, channels * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(scale)
        self.bicubic = BicubicPhases(scale, channels) if config.residual else None
        if config.activation == "relu":
            self._init_relu()

    def _init_relu(self) -> None:
        # PyTorch's default conv init shrinks activations layer by layer; eight plain ReLU layers
        # then pass almost no gradient, and training sat at bicubic for thousands of steps
        # (measured).  He init keeps the signal's scale; a zero output layer starts the
        # residual network as exactly its bicubic branch.
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        if self.config.residual:
            nn.init.zeros_(convs[-1].weight)
            nn.init.zeros_(convs[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phases = self.body(x)
        if self.bicubic is not None:
            phases = self.bicubic.add_to(phases, x)  # the bicubic upscale, added before the shuffle
        return self.shuffle(phases)


def espcn(*, scale: int, config: ESPCNConfig | dict[str, Any] | str = PAPER) -> ESPCN:
    """An ESPCN-family network for one luma channel at ``scale`` (2, 3 or 4); ``config`` a name, dict or config."""
    if isinstance(config, str):
        config = CONFIGS[config]
    elif isinstance(config, dict):
        config = ESPCNConfig.from_dict(config)
    return ESPCN(scale, config=config)
