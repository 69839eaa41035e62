"""NIQE: the feature fits, the shipped pristine model, and the score moving the way naturalness does."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import data_path
from PIL import Image
from scipy import ndimage

from vidsr.errors import InputError
from vidsr.evaluate import list_images, load_rgb
from vidsr.metrics import luma_255
from vidsr.niqe import MODEL_FILE, _luma, aggd, fit_pristine, mean_niqe, niqe


@pytest.fixture
def lumas() -> list[np.ndarray]:
    return [_luma(p) for p in list_images(data_path("val"))[:5]]


def test_aggd_recovers_known_shapes():
    rng = np.random.default_rng(0)
    assert aggd(rng.laplace(size=200_000))[0] == pytest.approx(1.0, abs=0.03)
    alpha, mean, left, right = aggd(rng.normal(scale=2.0, size=200_000))
    # A Gaussian of deviation s is a generalised Gaussian of shape 2 and scale s * sqrt(2).
    assert alpha == pytest.approx(2.0, abs=0.05) and abs(mean) < 0.05
    assert left == pytest.approx(2.0 * np.sqrt(2), rel=0.03) and right == pytest.approx(left, rel=0.03)
    skewed = np.concatenate([-rng.exponential(1.0, 100_000), rng.exponential(3.0, 100_000)])
    _, mean, left, right = aggd(skewed)
    assert right > 2.5 * left and mean > 0


def _bicubic_x4(luma: np.ndarray) -> np.ndarray:
    h, w = luma.shape
    small = Image.fromarray(luma, mode="F").resize((w // 4, h // 4), Image.Resampling.BICUBIC)
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC))


def test_blur_noise_and_upscaling_score_worse(lumas):
    # One image's score is noisy (25 patches, 36 features); a few images' mean is what NIQE is for.
    def mean(change) -> float:
        return float(np.mean([niqe(change(luma)) for luma in lumas]))

    rng = np.random.default_rng(1)
    clean = mean(lambda x: x)
    assert mean(lambda x: ndimage.gaussian_filter(x, 2.0)) > clean + 1.0
    assert mean(_bicubic_x4) > clean + 1.0
    assert mean(lambda x: (x + rng.normal(scale=15.0, size=x.shape)).astype(np.float32)) > clean + 5.0


def test_mean_niqe_of_bicubic_is_worse_than_the_originals():
    # Photos with texture and sharp detail: a smooth one (apple.png) already scores like an upscale.
    images = [(n, load_rgb(data_path("val", n))) for n in ("building.png", "fruits.png", "squirrel_cls.png")]
    originals = float(np.mean([niqe(luma_255(hr).numpy()) for _, hr in images]))
    assert mean_niqe(images, 4, None) > originals + 1.0


def test_shipped_model_is_what_the_fit_command_makes():
    """Regenerate with ``python -m vidsr.niqe --fit ../shared/data/train``."""
    shipped = json.loads(MODEL_FILE.read_text())
    paths = list_images(data_path("train"))
    assert shipped["fit_on"]["images"] == len(paths)
    mean, cov = fit_pristine([_luma(p) for p in paths])
    np.testing.assert_allclose(mean, shipped["mean"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cov, shipped["cov"], rtol=1e-3, atol=1e-6)


def test_small_image_is_refused():
    with pytest.raises(InputError, match="larger than 192x192"):
        niqe(np.zeros((100, 300), np.float32))
