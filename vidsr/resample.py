"""Separable image resampling with the kernels and arithmetic of Pillow.

Pillow's convolution resampler (support stretched by the scale factor when
shrinking, i.e. antialiased) is what the SR literature uses to make LR images,
and what DESIGN.md's bicubic figures were measured with.

Torch's antialiased bilinear/bicubic kernels are a port of Pillow's (a=-0.5), equal
to ours to 1e-15, and fast: :func:`resize` uses them for those kernels.  Lanczos,
Pillow's 8-bit intermediate rounding, and the reference the tests compare against
use our own taps, applied with one gather and one weighted sum per axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

KERNELS = ("nearest", "bilinear", "bicubic", "lanczos")


def _bicubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _triangle(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


_FILTERS: dict[str, tuple[Callable[[float], float], float]] = {
    "bilinear": (_triangle, 1.0),
    "bicubic": (_bicubic, 2.0),
    "lanczos": (_lanczos, 3.0),
}


@lru_cache(maxsize=64)
def _taps(in_size: int, out_size: int, kernel: str, antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights, each (out_size, taps), exactly as Pillow computes them."""
    scale = in_size / out_size
    if kernel == "nearest":
        idx = [[min(int((i + 0.5) * scale), in_size - 1)] for i in range(out_size)]
        return torch.tensor(idx, dtype=torch.long), torch.ones(out_size, 1, dtype=torch.float64)
    if kernel not in _FILTERS:
        raise ValueError(f"unknown resampling kernel {kernel!r}; choose from {', '.join(KERNELS)}")
    fn, base_support = _FILTERS[kernel]
    filter_scale = max(scale, 1.0) if antialias else 1.0
    support = base_support * filter_scale
    ntaps = math.ceil(support) * 2 + 1
    idx = torch.zeros(out_size, ntaps, dtype=torch.long)
    wts = torch.zeros(out_size, ntaps, dtype=torch.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        w = [fn((j + lo - center + 0.5) / filter_scale) for j in range(hi - lo)]
        total = sum(w)
        for k, wk in enumerate(w):
            idx[i, k] = lo + k
            wts[i, k] = wk / total if total else 0.0
    return idx, wts


def _resample_last(x: torch.Tensor, out_size: int, kernel: str, antialias: bool) -> torch.Tensor:
    in_size = x.shape[-1]
    if in_size == out_size and kernel != "nearest":
        return x
    idx, wts = _taps(in_size, out_size, kernel, antialias)
    idx = idx.to(x.device)
    wts = wts.to(device=x.device, dtype=x.dtype)
    gathered = x.index_select(-1, idx.flatten()).unflatten(-1, idx.shape)
    return (gathered * wts).sum(-1)


def resize(
    x: torch.Tensor,
    size: tuple[int, int],
    kernel: str = "bicubic",
    *,
    antialias: bool = True,
    like_pillow_8bit: bool = False,
) -> torch.Tensor:
    """Resize the last two dims of a float tensor ``(..., H, W)`` to ``size`` = (height, width).

    Values are not clamped: bicubic and Lanczos overshoot, the caller quantises.
    ``like_pillow_8bit`` rounds and clamps to the 8-bit grid between the horizontal
    and the vertical pass, as Pillow does for 8-bit images, so results match it exactly.
    """
    if not x.is_floating_point():
        raise TypeError("resize expects a floating-point tensor")
    height, width = size
    shrinking = height < x.shape[-2] or width < x.shape[-1]
    if kernel in _TORCH_MODES and not like_pillow_8bit and (antialias or not shrinking):
        return _torch_resize(x, size, kernel)
    return resize_reference(x, size, kernel, antialias=antialias, like_pillow_8bit=like_pillow_8bit)


_TORCH_MODES = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic"}


def _torch_resize(x: torch.Tensor, size: tuple[int, int], kernel: str) -> torch.Tensor:
    lead = x.shape[:-2]
    # uint8 planes as the channels of one image: torch's fixed-point resampler runs them in one
    # pass, 2.2x faster than one image a plane (two 1080p chroma planes x4: 8 ms, not 18; measured).
    flat = x.reshape(1, -1, *x.shape[-2:]) if x.dtype == torch.uint8 else x.reshape(-1, 1, *x.shape[-2:])
    if kernel == "nearest":
        out = F.interpolate(flat, size=size, mode="nearest-exact")
    else:
        out = F.interpolate(flat, size=size, mode=_TORCH_MODES[kernel], antialias=True, align_corners=False)
    return out.reshape(*lead, *size)


def resize_reference(
    x: torch.Tensor,
    size: tuple[int, int],
    kernel: str = "bicubic",
    *,
    antialias: bool = True,
    like_pillow_8bit: bool = False,
) -> torch.Tensor:
    """:func:`resize` computed from Pillow's taps, for every kernel."""
    height, width = size
    x = _resample_last(x, width, kernel, antialias)
    if like_pillow_8bit:
        x = x.mul(255.0).round_().clamp_(0.0, 255.0).div_(255.0)
    x = _resample_last(x.transpose(-1, -2), height, kernel, antialias).transpose(-1, -2)
    return x.contiguous()


def can_resize_uint8(x: torch.Tensor, kernel: str) -> bool:
    """Whether :func:`resize_uint8` takes ``x``: uint8 on the CPU, nearest/bilinear/bicubic.

    Torch resamples uint8 with these kernels directly, in fixed point: a port of Pillow's 8-bit
    resampler (Pillow's output within one code, over 99.9% of pixels equal: tested), and about
    10x faster than the float path on the development CPU.
    """
    return x.dtype == torch.uint8 and x.device.type == "cpu" and kernel in _TORCH_MODES


def resize_uint8(x: torch.Tensor, size: tuple[int, int], kernel: str = "bicubic") -> torch.Tensor:
    """Resize uint8 planes ``(..., H, W)`` to ``size`` as Pillow resizes an 8-bit image.

    Pillow rounds and clamps between its horizontal and vertical pass, so next to the float
    path (:func:`resize`, then :func:`to_uint8`) a pixel on a sharp edge can differ by a few
    codes, exactly as Pillow's own 8-bit output does.
    """
    if not can_resize_uint8(x, kernel):
        raise ValueError(f"resize_uint8 takes uint8 CPU tensors and {', '.join(_TORCH_MODES)}, not {kernel}")
    return _torch_resize(x, size, kernel)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Quantise [0, 1] floats to uint8 with rounding (half to even), as an 8-bit image would store them."""
    if x.device.type != "cpu":
        return x.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
    # On the CPU: numpy's single-threaded ufuncs, in place on one temporary.  Each torch
    # elementwise op forks its intra-op threads; on two cores shared with the decoder, the
    # encoder and the model that fork-join cost 36 ms for one 1080p plane, numpy 2 ms (measured).
    a = x.detach()
    if a.dtype not in (torch.float32, torch.float64):
        a = a.float()
    t = np.multiply(a.numpy(), 255.0, dtype=a.numpy().dtype)
    np.rint(t, out=t)
    np.clip(t, 0.0, 255.0, out=t)
    return torch.from_numpy(t.astype(np.uint8))


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 code values to float32 in [0, 1] (on the CPU with numpy, for the reason in :func:`to_uint8`)."""
    if x.device.type != "cpu":
        return x.float().div_(255.0)
    return torch.from_numpy(np.divide(x.numpy(), np.float32(255.0), dtype=np.float32))
