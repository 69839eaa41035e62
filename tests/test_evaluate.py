"""The evaluation protocol: bicubic figures recomputed independently with Pillow + numpy, and DESIGN's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import data_path
from PIL import Image

from vidsr.errors import InputError, ModelError
from vidsr.evaluate import bicubic_down, evaluate_folder, evaluate_images, load_rgb, protocol_lr
from vidsr.models.espcn import espcn
from vidsr.models.weights import save_weights


def _pillow_bicubic_psnr(path: Path, scale: int) -> float:
    """The protocol written out with Pillow and numpy only: nothing shared with vidsr."""
    with Image.open(path) as im:
        hr = im.convert("RGB")
    w, h = hr.size
    hr = hr.crop((0, 0, w - w % scale, h - h % scale))
    w, h = hr.size
    lr = hr.resize((w // scale, h // scale), Image.BICUBIC)
    up = lr.resize((w, h), Image.BICUBIC)

    def y(img: Image.Image) -> np.ndarray:
        rgb = np.asarray(img, dtype=np.float64) / 255.0
        return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]  # MATLAB rgb2ycbcr

    a, b = y(up)[scale:-scale, scale:-scale], y(hr)[scale:-scale, scale:-scale]
    return 10.0 * math.log10(255.0**2 / np.mean((a - b) ** 2))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_psnr_matches_pillow_numpy(scale: int) -> None:
    paths = [data_path("val", "butterfly.png"), data_path("val", "smarties.png")]
    result = evaluate_images([(p.name, load_rgb(p)) for p in paths], scale, None)
    for path, score in zip(paths, result.images, strict=True):
        assert score.bicubic_psnr == pytest.approx(_pillow_bicubic_psnr(path, scale), abs=1e-6)
    assert result.bicubic_psnr == pytest.approx(np.mean([_pillow_bicubic_psnr(p, scale) for p in paths]), abs=1e-6)


def test_lr_is_pillows_downscale() -> None:
    path = data_path("val", "smarties.png")
    with Image.open(path) as im:
        w, h = im.size
        expected = np.asarray(im.convert("RGB").resize((w // 4, h // 4), Image.BICUBIC)).astype(int)
    hr = load_rgb(path)
    ours = protocol_lr(hr, 4).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, expected)
    # Training's batched torch version: Pillow's fixed-point weights differ by one code value on a few pixels.
    batched = bicubic_down(hr[None], 4)[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy().astype(int)
    assert np.abs(batched - expected).max() <= 1
    assert np.mean(batched != expected) < 0.005


@pytest.mark.slow
def test_design_bicubic_figures_on_full_val() -> None:
    folder = data_path("val")
    for scale, figure in ((2, 31.74), (3, 29.05), (4, 27.56)):
        result = evaluate_folder(folder, model="bicubic", scale=scale)
        assert len(result.images) == 14
        assert result.bicubic_psnr == pytest.approx(figure, abs=0.05)
        assert result.psnr == result.bicubic_psnr


def _tiny_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    yy, xx = np.mgrid[0:36, 0:40]
    rgb = np.stack([xx * 6, yy * 7, (xx + yy) * 3], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "a.png")
    return folder


def test_evaluate_folder_with_given_weights(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path)
    torch.manual_seed(0)
    weights = tmp_path / "e.safetensors"
    save_weights(espcn(scale=2), weights, {"architecture": "espcn", "scale": 2})
    result = evaluate_folder(folder, model="espcn", scale=2, weights=weights)
    (score,) = result.images
    assert score.name == "a.png"
    assert math.isfinite(score.psnr) and 0 < score.ssim < 1
    assert set(result.to_dict()) >= {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "images"}
    with pytest.raises(ModelError, match="not espcn x3"):
        evaluate_folder(folder, model="espcn", scale=3, weights=weights)


def test_evaluate_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images"):
        evaluate_folder(tmp_path, model="bicubic", scale=2)
    with pytest.raises(InputError, match="not a folder"):
        evaluate_folder(tmp_path / "missing", model="bicubic", scale=2)
