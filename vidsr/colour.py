"""Y'CbCr <-> R'G'B' with the matrix and range the video says it uses.

Video stores Y'CbCr; RGB models need R'G'B'.  Converting with the wrong matrix
(BT.601 on HD footage, say) shifts every colour, the classic upscaler bug, so
the matrix and range travel with the frames and every conversion names them.
All tensors are float, code values scaled to [0, 1] (8-bit value / 255).

:func:`rgb8_to_planes` and :func:`planes_to_rgb8` are the CPU fast path of the same
arithmetic for 8-bit images: numpy, conversion and rounding fused per channel, interleaved
R'G'B' read and written in place of separate permutes, in row chunks that stay in cache.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
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


def _luma_weights(fmt: YCbCrFormat) -> tuple[float, float, float]:
    kr, kb = _KR_KB[fmt.matrix]
    return kr, 1.0 - kr - kb, kb


def rgb_to_ycbcr(rgb: torch.Tensor, fmt: YCbCrFormat = BT601_STUDIO) -> torch.Tensor:
    """``(..., 3, H, W)`` R'G'B' in [0, 1] to Y'CbCr code values in [0, 1], same shape."""
    kr, kg, kb = _luma_weights(fmt)
    r, g, b = rgb.unbind(-3)
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb))
    cr = (r - y) / (2.0 * (1.0 - kr))
    off, yspan, cspan = _scales(fmt.full_range)
    mid = 128.0 / 255.0
    return torch.stack((off + yspan * y, mid + cspan * cb, mid + cspan * cr), dim=-3)


def ycbcr_to_rgb(ycbcr: torch.Tensor, fmt: YCbCrFormat = BT601_STUDIO) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`; the result is not clamped."""
    kr, kg, kb = _luma_weights(fmt)
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


def _quantise_into(dst: np.ndarray, t: np.ndarray) -> None:
    """Round (half to even, as :func:`vidsr.resample.to_uint8`), clamp and store float ``t`` into uint8 ``dst``."""
    np.rint(t, out=t)
    np.clip(t, 0.0, 255.0, out=t)
    np.copyto(dst, t, casting="unsafe")


def rgb8_to_planes(rgb: np.ndarray, fmt: YCbCrFormat = BT601_STUDIO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(H, W, 3)`` uint8 R'G'B' -> Y' as float32 in [0, 1] (unrounded: a model's input), Cb and Cr as uint8.

    The same arithmetic as :func:`rgb_to_ycbcr` in 8-bit code values.
    """
    kr, kg, kb = _luma_weights(fmt)
    off, yspan, cspan = _scales(fmt.full_range)
    r, g, b = (rgb[..., i] for i in range(3))
    f32 = np.float32
    luma = np.multiply(r, f32(kr), dtype=f32)  # R'G'B' weighted, in codes
    t = np.multiply(g, f32(kg), dtype=f32)
    luma += t
    np.multiply(b, f32(kb), out=t)
    luma += t
    chroma = []
    for plane, k in ((b, kb), (r, kr)):
        np.subtract(plane, luma, out=t)
        t *= f32(cspan / (2.0 * (1.0 - k)))
        t += f32(128.0)
        out = np.empty(rgb.shape[:2], np.uint8)
        _quantise_into(out, t)
        chroma.append(out)
    luma *= f32(yspan / 255.0)
    luma += f32(off)
    return luma, chroma[0], chroma[1]


# Rows per chunk of the fused conversions: about 128K pixels, so each float temporary (512 KB)
# stays in the core's cache between passes.  Measured on the 2-core development CPU at 1080p:
# 23.5 ms for the whole frame at once, 9.8 ms chunked, 7.7 ms with the chunks on two threads.
_CHUNK_PIXELS = 1 << 17
_pool: ThreadPoolExecutor | None = None


def _row_chunks(height: int, width: int) -> list[slice]:
    rows = max(1, _CHUNK_PIXELS // max(1, width))
    return [slice(start, min(height, start + rows)) for start in range(0, height, rows)]


def _chunk_pool() -> ThreadPoolExecutor:
    """Two threads for the chunks (numpy releases the GIL): made once, on first use."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1), thread_name_prefix="vidsr-colour")
    return _pool


def planes_to_rgb8(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, fmt: YCbCrFormat = BT601_STUDIO) -> np.ndarray:
    """Y' float in [0, 1] (unclamped: a model's output) with uint8 Cb, Cr of the same size -> ``(H, W, 3)``
    uint8 R'G'B', rounded and clamped: :func:`ycbcr_to_rgb` then :func:`vidsr.resample.to_uint8`, fused."""
    out = np.empty((*y.shape, 3), np.uint8)
    chunks = _row_chunks(*y.shape)
    if len(chunks) == 1:
        _planes_to_rgb8_into(out, y, cb, cr, fmt)
        return out
    list(_chunk_pool().map(lambda rows: _planes_to_rgb8_into(out[rows], y[rows], cb[rows], cr[rows], fmt), chunks))
    return out


def _planes_to_rgb8_into(out: np.ndarray, y: np.ndarray, cb: np.ndarray, cr: np.ndarray, fmt: YCbCrFormat) -> None:
    kr, kg, kb = _luma_weights(fmt)
    off, yspan, cspan = _scales(fmt.full_range)
    f32 = np.float32
    base = np.multiply(y, f32(255.0 / yspan), dtype=f32)  # Y' in codes, range removed
    base -= f32(255.0 * off / yspan)
    cbf = np.subtract(cb, f32(128.0), dtype=f32)
    crf = np.subtract(cr, f32(128.0), dtype=f32)
    rb = 2.0 * (1.0 - kr) / cspan  # per chroma code
    bb = 2.0 * (1.0 - kb) / cspan
    t = np.empty(y.shape, f32)
    np.multiply(crf, f32(rb), out=t)
    t += base
    _quantise_into(out[..., 0], t)
    np.multiply(cbf, f32(bb), out=t)
    t += base
    _quantise_into(out[..., 2], t)
    crf *= f32(-kr * rb / kg)
    cbf *= f32(-kb * bb / kg)
    np.add(base, crf, out=t)
    t += cbf
    _quantise_into(out[..., 1], t)
