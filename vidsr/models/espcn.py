"""ESPCN: efficient sub-pixel CNN (Shi et al., CVPR 2016).

All convolutions run at the low resolution; one PixelShuffle rearranges
scale^2 channels into the high-resolution image.  vidsr runs it on luma.
"""

from __future__ import annotations

import torch
from torch import nn


class ESPCN(nn.Module):
    def __init__(self, scale: int, channels: int = 1, features: int = 64, hidden: int = 32) -> None:
        super().__init__()
        self.scale = scale
        # The paper's f1=5, f2=3, f3=3 with n1=64, n2=32 and tanh activations.
        self.body = nn.Sequential(
            nn.Conv2d(channels, features, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(features, hidden, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(hidden, channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x))


def espcn(*, scale: int) -> ESPCN:
    """ESPCN for one luma channel at ``scale`` (2, 3 or 4)."""
    return ESPCN(scale)
