"""S3, a no-reference measure of perceived sharpness (Vu, Phan & Chandler, IEEE TIP 2012): higher is sharper.

NIQE asks whether local statistics look like a photograph's; S3 asks how much of the picture
looks in focus, which is the other half of what a perceptual SR model is for (an over-smoothed
output scores low, a faithful one close to the original photographs).  Two maps over the image:

* **spectral** (S1): for each 32x32 block (stride 8) of the luma, Hann-windowed, the slope
  alpha of the straight line through log |FFT| averaged over each radius against log frequency.
  Blur steepens the fall-off; S1 = 1 - 1 / (1 + exp(-3 (alpha - 2))).  Blocks of too little
  luminance contrast (flat sky, where a slope measures only noise) get 0, as in the paper;
* **spatial** (S2): for each 8x8 block, a quarter of the largest total variation of its 2x2
  neighbourhoods (the six absolute differences of their four pixels, over 255).

S3 = sqrt(S1 * S2) per 8x8 cell; the index is the mean of the sharpest 1 % of cells.  Written
from the paper's description: the radial average bins FFT magnitudes by integer radius (the
authors' code interpolates along circles), so values are close to, not equal to, published S3.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SPECTRAL_BLOCK = 32
CELL = 8  # the spatial block, and the stride of the spectral one
# The paper's sigmoid, and its luminance contrast gate (display luminance of 8-bit values).
TAU1, TAU2 = -3.0, 2.0
MIN_LUMINANCE_RANGE, MIN_MEAN_LUMINANCE = 5.0, 2.0


def _radial_bins(size: int) -> tuple[np.ndarray, np.ndarray]:
    """For an rfft2 of a ``size`` square: each coefficient's integer radius, and the radii 1..size/2 fitted."""
    fy = np.fft.fftfreq(size) * size
    fx = np.fft.rfftfreq(size) * size
    radius = np.rint(np.hypot(fy[:, None], fx[None, :])).astype(int)
    return radius, np.arange(1, size // 2 + 1)


def spectral_map(luma: np.ndarray) -> np.ndarray:
    """S1 for each block of :data:`SPECTRAL_BLOCK` pixels at stride :data:`CELL`, shape (rows, cols)."""
    size = SPECTRAL_BLOCK
    blocks = sliding_window_view(luma, (size, size))[::CELL, ::CELL]
    rows, cols = blocks.shape[:2]
    blocks = blocks.reshape(-1, size, size).astype(np.float64)
    luminance = (0.7656 + 0.0364 * blocks) ** 2.2
    lit = (np.ptp(luminance, axis=(1, 2)) > MIN_LUMINANCE_RANGE) & (luminance.mean(axis=(1, 2)) > MIN_MEAN_LUMINANCE)
    window = np.hanning(size)
    magnitude = np.abs(np.fft.rfft2(blocks * np.outer(window, window)))
    radius, radii = _radial_bins(size)
    profile = np.stack([magnitude[:, radius == r].mean(axis=1) for r in radii], axis=1)
    x = np.log(radii / size)
    y = np.log(profile + 1e-12)
    slope = ((x - x.mean()) * (y - y.mean(axis=1, keepdims=True))).sum(axis=1) / ((x - x.mean()) ** 2).sum()
    alpha = np.abs(slope)
    s1 = 1.0 - 1.0 / (1.0 + np.exp(TAU1 * (alpha - TAU2)))
    return np.where(lit, s1, 0.0).reshape(rows, cols)


def spatial_map(luma: np.ndarray) -> np.ndarray:
    """S2 for each :data:`CELL` x :data:`CELL` block, shape (H // CELL, W // CELL)."""
    x = luma.astype(np.float64)
    a, b, c, d = x[:-1, :-1], x[:-1, 1:], x[1:, :-1], x[1:, 1:]
    tv = (np.abs(a - b) + np.abs(a - c) + np.abs(a - d) + np.abs(b - c) + np.abs(b - d) + np.abs(c - d)) / 255.0
    # Each block takes the 2x2 neighbourhoods that start inside it and stay inside it.
    rows, cols = luma.shape[0] // CELL, luma.shape[1] // CELL
    tv = np.pad(tv, ((0, 1), (0, 1)))[: rows * CELL, : cols * CELL].reshape(rows, CELL, cols, CELL)
    return tv[:, : CELL - 1, :, : CELL - 1].max(axis=(1, 3)) / 4.0


def s3_map(luma: np.ndarray) -> np.ndarray:
    """sqrt(S1 * S2) per cell, each spectral block centred on its cell; cells without a whole block are dropped."""
    luma = np.asarray(luma, dtype=np.float64)
    if luma.ndim != 2 or min(luma.shape) < SPECTRAL_BLOCK:
        raise ValueError(f"S3 needs a 2-D luma image of at least {SPECTRAL_BLOCK} px a side, not {luma.shape}")
    s1 = spectral_map(luma)
    s2 = spatial_map(luma)
    # Spectral block i covers pixels [8i, 8i + 32); its centre, 8i + 16, is the top-left corner of cell i + 2.
    offset = SPECTRAL_BLOCK // (2 * CELL)
    s2 = s2[offset : offset + s1.shape[0], offset : offset + s1.shape[1]]
    s1 = s1[: s2.shape[0], : s2.shape[1]]
    return np.sqrt(s1 * s2)


def s3_index(luma: np.ndarray) -> float:
    """The S3 sharpness of one luma image (0..255 values): the mean of its sharpest 1 % of cells."""
    cells = np.sort(s3_map(luma).ravel())[::-1]
    top = max(1, cells.size // 100)
    return float(cells[:top].mean())
