"""Image quality metrics as the SR literature measures them: PSNR and SSIM on BT.601 studio-range Y.

Everything works on float tensors of 8-bit code values (0..255), so the numbers
compare with papers that used MATLAB's ``rgb2ycbcr`` and 8-bit images.
SSIM is Wang et al.'s: an 11x11 gaussian window (sigma 1.5), K1=0.01, K2=0.03,
population covariances; it matches scikit-image's ``structural_similarity``
with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``
(tested against it), without making scikit-image a runtime dependency.
"""

from __future__ import annotations

import math

import torch


def luma_255(rgb: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB in [0, 1] to BT.601 studio Y as float64 code values 0..255, ``(..., H, W)``.

    The same figures as :func:`vidsr.colour.rgb_to_luma` with ``BT601_STUDIO`` (tested), computed
    without the chroma planes: MATLAB's ``16 + 65.481 R + 128.553 G + 24.966 B``.
    """
    r, g, b = rgb.double().unbind(-3)
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def shave(x: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels from each side of the last two dims (the protocol shaves ``scale``)."""
    if border <= 0:
        return x
    return x[..., border:-border, border:-border]


def mod_crop(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Crop the last two dims down (bottom/right) to a multiple of ``multiple``, as the literature does."""
    h, w = x.shape[-2:]
    return x[..., : h - h % multiple, : w - w % multiple]


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two same-shape images; inf when identical."""
    if a.shape != b.shape:
        raise ValueError(f"psnr needs same-shape images, got {tuple(a.shape)} and {tuple(b.shape)}")
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    g /= g.sum()
    return g


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 255.0, *, sigma: float = 1.5, window: int = 11) -> float:
    """Mean SSIM of two same-shape single-channel images ``(H, W)``.

    Statistics are computed only where the whole window fits (a 'valid'
    filter), which is exactly the region scikit-image averages over.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"ssim needs two same-shape (H, W) images, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape) < window:
        raise ValueError(f"ssim needs images of at least {window}x{window} pixels, got {tuple(a.shape)}")
    g = _gaussian_window(window, sigma)
    x = a.double()
    y = b.double()

    def blur(t: torch.Tensor) -> torch.Tensor:
        # Separable, 'valid' region only, as weighted sums of shifted views: float64 convolutions
        # are slow on CPU, and float32 statistics would not match the reference to 1e-9.
        h, w = t.shape[-2:]
        rows = sum(g[k] * t[..., :, k : w - window + 1 + k] for k in range(window))
        return sum(g[k] * rows[..., k : h - window + 1 + k, :] for k in range(window))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean().item()


def psnr_ssim_y(sr_y: torch.Tensor, hr_y: torch.Tensor, scale: int) -> tuple[float, float]:
    """The protocol's figures for Y planes on the 0..255 scale: shave ``scale`` pixels, then PSNR and SSIM."""
    sr_y, hr_y = shave(sr_y, scale), shave(hr_y, scale)
    return psnr(sr_y, hr_y), ssim(sr_y, hr_y)
