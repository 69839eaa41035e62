"""Interpolation baselines as models: the yardstick every benchmark compares against."""

from __future__ import annotations

import torch
from torch import nn

from vidsr.resample import resize


class Interpolation(nn.Module):
    def __init__(self, scale: int, kernel: str) -> None:
        super().__init__()
        self.scale = scale
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return resize(x, (h * self.scale, w * self.scale), self.kernel)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, kernel={self.kernel!r}"


def interpolation(kernel: str):
    def build(*, scale: int) -> Interpolation:
        return Interpolation(scale, kernel)

    build.__doc__ = f"{kernel} interpolation at ``scale``."
    return build
