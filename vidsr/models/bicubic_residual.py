"""The bicubic global residual as a convolution: one small filter per output phase.

An integer-factor bicubic upscale (``F.interpolate(x, scale_factor=s, mode="bicubic",
align_corners=False)``) gives output pixel ``(s*k + p)`` a fixed weighted sum of the 5 input
pixels ``k-2 .. k+2``: the weights depend only on the phase ``p``.  So the upscale is a 5x5
convolution with ``s*s`` outputs per channel (one per phase pair), on the input padded by edge
replication (how ``interpolate`` reads past the border), followed by the pixel shuffle.

The networks with a bicubic residual end in a pixel shuffle anyway, so the residual is added
to the phases before it: ``shuffle(conv(h) + phases(x))``, the same sum as ``shuffle(conv(h)) +
interpolate(x)``.  Exported to ONNX this is one more small convolution in place of a ``Resize``
node, which took 229 of the robust ESPCN's 473 ms at x4 on 480x270 in onnxruntime (measured on
the 2-core development CPU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_A = -0.75  # PyTorch's bicubic coefficient (OpenCV's too; Pillow uses -0.5)


def _cubic(x: float) -> float:
    x = abs(x)
    if x <= 1.0:
        return ((_A + 2.0) * x - (_A + 3.0)) * x * x + 1.0
    if x < 2.0:
        return ((_A * x - 5.0 * _A) * x + 8.0 * _A) * x - 4.0 * _A
    return 0.0


def phase_taps(scale: int) -> torch.Tensor:
    """``(scale, 5)``: for each output phase, the weights of input pixels ``k-2 .. k+2``."""
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for p in range(scale):
        src = (p + 0.5) / scale - 0.5  # the half-pixel centre convention of align_corners=False
        first = math.floor(src)
        t = src - first
        for i, weight in enumerate((_cubic(t + 1.0), _cubic(t), _cubic(1.0 - t), _cubic(2.0 - t))):
            taps[p, first - 1 + i + 2] += weight
    return taps


class BicubicPhases(nn.Module):
    """``(N, C, H, W)`` -> ``(N, C*s*s, H, W)``: the bicubic upscale's phases, in pixel-shuffle order."""

    def __init__(self, scale: int, channels: int) -> None:
        super().__init__()
        self.scale = scale
        self.channels = channels
        taps = phase_taps(scale)
        kernel = torch.einsum("ik,jl->ijkl", taps, taps).reshape(scale * scale, 1, 5, 5)
        # Not a parameter and not saved: it is arithmetic, and weights files stay as they were.
        self.register_buffer("kernel", kernel.repeat(channels, 1, 1, 1).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.conv2d(padded, self.kernel.to(x.dtype), groups=self.channels)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, channels={self.channels}"
