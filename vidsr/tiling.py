"""Big frames in overlapping tiles, stitched with no seam.

A frame over the pixel budget is cut into a grid of *equal-sized* tiles (equal sizes
keep one CUDA graph / one TensorRT shape for all of them) that overlap by at least
``2 * overlap`` input pixels.  Each output pixel is taken from the tile in which it lies
farthest from a cut edge: the cut between two neighbours falls in the middle of their
overlap, so every kept pixel has at least ``overlap`` pixels of real context on each
side.  For a model whose receptive radius is at most ``overlap`` the stitched result
equals the untiled one (to float rounding); there is no blending to blur anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

# Input pixels each output pixel depends on, each side, per architecture (low-resolution units):
# ESPCN 5x5 + 3x3 + 3x3 -> 2+1+1.  SRResNet: 9x9 head (4) + 33 3x3 convs at LR (33) + the 3x3
# before the first shuffle, still at LR (1) + the 3x3 after a second x2 shuffle (1/2) + the 9x9
# tail, 4 HR pixels (2 LR pixels at x2, 4/3 at x3, 1 at x4) -> 40 at every scale.
# Interpolation: the kernel support.  tests/test_tiling.py measures these on the built models.
RECEPTIVE_RADIUS = {"espcn": 4, "srresnet": 40, "bicubic": 2, "bilinear": 1, "lanczos": 3, "nearest": 1}
DEFAULT_OVERLAP = 16
# About one 1080p frame: a 1080p input runs whole, 4K inputs are tiled.
DEFAULT_TILE_PIXELS = 1920 * 1088


def overlap_for(arch: str, module: object = None) -> int:
    """The overlap that makes tiling exact for ``arch``: its receptive radius.

    A network whose depth depends on its configuration (ESPCN's ``paper`` and ``robust``
    variants) states its own as ``module.receptive_radius``; that wins over the table.
    """
    own = getattr(module, "receptive_radius", None)
    if isinstance(own, int):
        return own
    return RECEPTIVE_RADIUS.get(arch, DEFAULT_OVERLAP)


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go along each axis: tile size and the start of every tile."""

    tile_h: int
    tile_w: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.starts_y) * len(self.starts_x)


def _axis(size: int, n: int, overlap: int, multiple: int, limit: int | None) -> tuple[int, tuple[int, ...]] | None:
    """Tile length and starts covering ``size`` with ``n`` tiles overlapping by >= 2*overlap+1."""
    if n == 1:
        return None if limit is not None and size > limit else (size, (0,))
    # n tiles of length t with even steps cover `size` with overlap (n*t - size)/(n - 1).
    # One extra pixel absorbs the rounding of the starts.
    tile = math.ceil((size + (n - 1) * (2 * overlap + 1)) / n) + 1
    tile = min(size, -(-tile // multiple) * multiple)
    if limit is not None and tile > limit:
        return None
    step = (size - tile) / (n - 1)
    starts = tuple(round(i * step) for i in range(n))
    return tile, starts


def plan_tiles(
    height: int,
    width: int,
    max_pixels: int,
    overlap: int,
    *,
    multiple: int = 1,
    max_hw: tuple[int, int] | None = None,
) -> TilePlan | None:
    """A grid of tiles for a ``height`` x ``width`` input, or None when the frame fits whole.

    Tiles hold at most ``max_pixels`` pixels and at most ``max_hw`` (a TensorRT profile).
    """
    fits_hw = max_hw is None or (height <= max_hw[0] and width <= max_hw[1])
    if height * width <= max_pixels and fits_hw:
        return None
    ny = nx = 1
    for _ in range(10_000):
        ay = _axis(height, ny, overlap, multiple, max_hw[0] if max_hw else None)
        ax = _axis(width, nx, overlap, multiple, max_hw[1] if max_hw else None)
        if ay and ax and ay[0] * ax[0] <= max_pixels:
            return TilePlan(ay[0], ax[0], ay[1], ax[1])
        # Split the axis whose tiles are longer (or the one that breaks the profile limit).
        if ay is None or (ax is not None and ay[0] >= ax[0]):
            ny += 1
        else:
            nx += 1
        if ny > height or nx > width:
            break
    raise ValueError(f"cannot tile {width}x{height} into tiles of {max_pixels} pixels with overlap {overlap}")


def _cuts(starts: tuple[int, ...], tile: int, size: int) -> list[tuple[int, int]]:
    """The [begin, end) input range each tile contributes: cut mid-way through each overlap."""
    bounds = [0]
    for i in range(len(starts) - 1):
        bounds.append((starts[i + 1] + starts[i] + tile) // 2)
    bounds.append(size)
    return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, plan: TilePlan) -> torch.Tensor:
    """``fn`` (an upscaler by ``scale``) applied tile by tile to ``x`` (N, C, H, W), stitched."""
    n, _, h, w = x.shape
    out: torch.Tensor | None = None
    rows = _cuts(plan.starts_y, plan.tile_h, h)
    cols = _cuts(plan.starts_x, plan.tile_w, w)
    for ys, (y0, y1) in zip(plan.starts_y, rows, strict=True):
        for xs, (x0, x1) in zip(plan.starts_x, cols, strict=True):
            tile = fn(x[:, :, ys : ys + plan.tile_h, xs : xs + plan.tile_w])
            if out is None:
                out = tile.new_empty((n, tile.shape[1], h * scale, w * scale))
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = tile[
                :, :, (y0 - ys) * scale : (y1 - ys) * scale, (x0 - xs) * scale : (x1 - xs) * scale
            ]
    assert out is not None
    return out
