"""PSNR and SSIM: hand-computed PSNR, SSIM against scikit-image's reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidsr.colour import BT601_STUDIO, rgb_to_luma
from vidsr.metrics import luma_255, mod_crop, psnr, psnr_ssim_y, shave, ssim


def test_psnr_matches_hand_computation() -> None:
    a = torch.zeros(4, 4)
    b = torch.zeros(4, 4)
    b[0, 0] = 16.0  # MSE = 256 / 16 = 16 -> PSNR = 10 log10(255^2 / 16)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 16), abs=1e-12)
    assert psnr(a, a) == math.inf


def test_psnr_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same-shape"):
        psnr(torch.zeros(3, 3), torch.zeros(3, 4))


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_scikit_image(seed: int) -> None:
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(seed)
    # A smooth image plus noise, and a distorted copy: SSIM far from 0 and 1.
    yy, xx = np.mgrid[0:47, 0:61]
    a = 128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 10, (47, 61))
    b = a + rng.normal(0, 15, a.shape)
    expected = metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, abs=1e-9)


def test_ssim_of_identical_images_is_one() -> None:
    a = torch.rand(32, 32) * 255
    assert ssim(a, a) == pytest.approx(1.0)


def test_luma_is_bt601_studio() -> None:
    rgb = torch.tensor([0.0, 1.0]).view(1, 2, 1).expand(3, 2, 1)  # black and white pixels
    y = luma_255(rgb)
    assert y.flatten().tolist() == pytest.approx([16.0, 235.0])
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert luma_255(red).item() == pytest.approx(16 + 219 * 0.299)


def test_luma_matches_the_colour_module() -> None:
    rgb = torch.rand(3, 8, 9, dtype=torch.float64)
    expected = rgb_to_luma(rgb, BT601_STUDIO)[0] * 255.0
    assert torch.allclose(luma_255(rgb), expected, atol=1e-9)


def test_crop_and_shave() -> None:
    x = torch.zeros(3, 13, 10)
    assert mod_crop(x, 4).shape == (3, 12, 8)
    assert shave(x, 2).shape == (3, 9, 6)
    hr = torch.rand(30, 30) * 255
    p, s = psnr_ssim_y(hr + 1.0, hr, scale=3)  # a constant offset of 1: MSE 1
    assert p == pytest.approx(10 * math.log10(255**2))
    assert 0.99 < s < 1.0
