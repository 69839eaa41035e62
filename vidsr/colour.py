"""Y'CbCr <-> R'G'B' with the matrix and range the video says it uses.

Video stores Y'CbCr; RGB models need R'G'B'.  Converting with the wrong matrix
(BT.601 on HD footage, say) shifts every colour, the classic upscaler bug, so
the matrix and range travel with the frames and every conversion names them.
All tensors are float, code values scaled to [0, 1] (8-bit value / 255).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Luma coefficients (Kr, Kb) per matrix; Kg = 1 - Kr - Kb.
_KR_KB = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
}
MATRICES = tuple(_KR_KB)


@dataclass(frozen=True)
class YCbCrFormat:
    """Which matrix and which range a Y'CbCr signal uses."""

    matrix: str = "bt601"
    full_range: bool = False

    def __post_init__(self) -> None:
        if self.matrix not in _KR_KB:
            raise ValueError(f"unknown colour matrix {self.matrix!r}; choose from {', '.join(MATRICES)}")


# The eval protocol's conversion: BT.601 studio range, as MATLAB's rgb2ycbcr.
BT601_STUDIO = YCbCrFormat("bt601", full_range=False)


def _scales(full_range: bool) -> tuple[float, float, float]:
    """(luma offset, luma span, chroma span) in [0, 1] code-value units."""
    if full_range:
        return 0.0, 1.0, 1.0
    return 16.0 / 255.0, 219.0 / 255.0, 224.0 / 255.0


def rgb_to_ycbcr(rgb: torch.Tensor, fmt: YCbCrFormat = BT601_STUDIO) -> torch.Tensor:
    """``(..., 3, H, W)`` R'G'B' in [0, 1] to Y'CbCr code values in [0, 1], same shape."""
    kr, kb = _KR_KB[fmt.matrix]
    kg = 1.0 - kr - kb
    r, g, b = rgb.unbind(-3)
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb))
    cr = (r - y) / (2.0 * (1.0 - kr))
    off, yspan, cspan = _scales(fmt.full_range)
    mid = 128.0 / 255.0
    return torch.stack((off + yspan * y, mid + cspan * cb, mid + cspan * cr), dim=-3)


def ycbcr_to_rgb(ycbcr: torch.Tensor, fmt: YCbCrFormat = BT601_STUDIO) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`; the result is not clamped."""
    kr, kb = _KR_KB[fmt.matrix]
    kg = 1.0 - kr - kb
    off, yspan, cspan = _scales(fmt.full_range)
    mid = 128.0 / 255.0
    yq, cbq, crq = ycbcr.unbind(-3)
    y = (yq - off) / yspan
    cb = (cbq - mid) / cspan
    cr = (crq - mid) / cspan
    r = y + 2.0 * (1.0 - kr) * cr
    b = y + 2.0 * (1.0 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return torch.stack((r, g, b), dim=-3)


def rgb_to_luma(rgb: torch.Tensor, fmt: YCbCrFormat = BT601_STUDIO) -> torch.Tensor:
    """Only the Y' plane of :func:`rgb_to_ycbcr`, shape ``(..., 1, H, W)``."""
    return rgb_to_ycbcr(rgb, fmt)[..., :1, :, :]
