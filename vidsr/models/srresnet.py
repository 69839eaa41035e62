"""SRResNet, the SRGAN generator (Ledig et al., CVPR 2017).

A 9x9 head, 16 residual blocks of 64 channels with batch norm and PReLU, a
long skip, then PixelShuffle x2 stages (one x3 stage for scale 3) and a 9x9
tail.  ``srresnet`` is this network trained on pixel loss; ``srgan`` is the
same network fine-tuned with VGG content and adversarial losses.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1),
            nn.BatchNorm2d(features),
            nn.PReLU(features),
            nn.Conv2d(features, features, 3, padding=1),
            nn.BatchNorm2d(features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _upsample_stages(scale: int, features: int) -> list[nn.Module]:
    factors = {2: [2], 3: [3], 4: [2, 2]}.get(scale)
    if factors is None:
        raise ValueError(f"SRResNet supports scales 2, 3 and 4, not {scale}")
    stages: list[nn.Module] = []
    for f in factors:
        stages += [nn.Conv2d(features, features * f * f, 3, padding=1), nn.PixelShuffle(f), nn.PReLU(features)]
    return stages


class SRResNet(nn.Module):
    def __init__(self, scale: int, channels: int = 3, features: int = 64, blocks: int = 16) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(channels, features, 9, padding=4), nn.PReLU(features))
        self.body = nn.Sequential(*(ResidualBlock(features) for _ in range(blocks)))
        self.body_tail = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.BatchNorm2d(features))
        self.upsample = nn.Sequential(*_upsample_stages(scale, features))
        self.tail = nn.Conv2d(features, channels, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        body = self.body_tail(self.body(head)) + head
        return self.tail(self.upsample(body))


def srresnet(*, scale: int, blocks: int = 16) -> SRResNet:
    """SRResNet / SRGAN generator for RGB at ``scale`` (2, 3 or 4)."""
    return SRResNet(scale, blocks=blocks)
