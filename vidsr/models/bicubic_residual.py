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

    def add_to(self, detail: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``detail + self(x)``: the network's phases plus the bicubic's, the sum in ``x``'s precision.

        Under autocast (mixed-precision training) the convolution and the sum would otherwise run in
        bfloat16 or float16 and round the output to it: bfloat16's step near 1.0 is 1/256, about a trained
        model's remaining L1 error, so the signs of the L1 gradient turned to noise (cosine -0.44 to -0.02
        with the float32 gradient on the x2 large run at step 4712; 0.9995 with the sum kept in float32:
        ``benchmarks/train_precision.py``).
        Outside autocast (inference, export) it is the plain sum."""
        if not torch.is_autocast_enabled(x.device.type):
            return detail + self(x)
        with torch.autocast(x.device.type, enabled=False):
            return detail.to(x.dtype) + self(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, channels={self.channels}"
