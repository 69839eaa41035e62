"""S3 sharpness and the temporal scores: they rank what they claim to rank, on pictures made for it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from vidsr.sharpness import s3_index, s3_map
from vidsr.temporal import temporal_score


def _texture(size: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # 1/f noise (a natural image's spectrum) with some hard edges, on 0..255.
    spectrum = np.fft.fft2(rng.standard_normal((size, size)))
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    image = np.real(np.fft.ifft2(spectrum / np.maximum(np.hypot(fy, fx), 1.0 / size)))
    image = 128 + 40 * image / image.std()
    image[size // 3 :, : size // 2] += 40
    return image.clip(0, 255)


def test_s3_falls_with_blur_and_rises_with_sharpening() -> None:
    image = _texture()
    blurred = [s3_index(ndimage.gaussian_filter(image, sigma)) for sigma in (0.5, 1.0, 2.0)]
    assert s3_index(image) > blurred[0] > blurred[1] > blurred[2]
    sharpened = image + 0.8 * (image - ndimage.gaussian_filter(image, 1.0))
    assert s3_index(sharpened.clip(0, 255)) > s3_index(image)


def test_s3_of_a_flat_picture_is_zero_and_small_pictures_are_refused() -> None:
    assert s3_index(np.full((96, 96), 120.0)) == 0.0
    assert s3_map(_texture(64)).shape == (64 // 8 - 3, 64 // 8 - 3)
    with pytest.raises(ValueError, match="at least 32"):
        s3_index(np.zeros((20, 100)))


def test_temporal_scores_see_shimmer_where_the_scene_is_still() -> None:
    rng = np.random.default_rng(1)
    scene = _texture(96)
    originals = [scene.copy() for _ in range(5)]
    originals[2][:16, :16] += 50  # one small change the output should follow
    steady = [f.copy() for f in originals]
    shimmer = [f + rng.normal(0, 2.0, f.shape) for f in originals]
    calm, busy = temporal_score(steady, originals), temporal_score(shimmer, originals)
    assert calm.tdiff_error == 0.0 and calm.static_flicker == 0.0
    assert busy.static_flicker == pytest.approx(2.0 * np.sqrt(2.0) * np.sqrt(2.0 / np.pi), rel=0.1)
    assert busy.tdiff_error > 1.0
    assert 0.8 < calm.still_fraction < 1.0  # the moved corner (and its 5x5 margin) is not still
    # Lagging behind a change the original makes is an error too.
    lagging = [originals[0], originals[1], originals[1], originals[3], originals[4]]
    assert temporal_score(lagging, originals).tdiff_error > 0.0


def test_temporal_score_needs_pairs() -> None:
    with pytest.raises(ValueError):
        temporal_score([np.zeros((8, 8))], [np.zeros((8, 8))])


def test_temporal_benchmark_updates_only_the_rows_it_measured_again() -> None:
    import sys

    from conftest import load_script

    temporal = load_script("temporal", "temporal_benchmark")
    try:
        old = [
            {"clip": "a.avi", "scale": 2, "name": "bicubic", "tdiff_error": 1.0},
            {"clip": "a.avi", "scale": 4, "name": "bicubic", "tdiff_error": 2.0},
            {"clip": "a.avi", "scale": 4, "name": "srgan paper", "tdiff_error": 3.0},
            {"clip": "b.mp4", "scale": 4, "name": "bicubic", "tdiff_error": 4.0},
        ]
        new = [
            {"clip": "a.avi", "scale": 4, "name": "srgan paper", "tdiff_error": 2.5},
            {"clip": "a.avi", "scale": 4, "name": "srgan x (candidate)", "tdiff_error": 2.6},
            {"clip": "c.avi", "scale": 4, "name": "bicubic", "tdiff_error": 5.0},
            {"clip": "a.avi", "scale": 3, "name": "bicubic", "tdiff_error": 1.5},
        ]
        rows = temporal.updated_rows(old, new)
    finally:
        sys.modules.pop("temporal_benchmark", None)
    assert [(r["clip"], r["scale"], r["name"], r["tdiff_error"]) for r in rows] == [
        ("a.avi", 2, "bicubic", 1.0),
        ("a.avi", 3, "bicubic", 1.5),
        ("a.avi", 4, "bicubic", 2.0),
        ("a.avi", 4, "srgan paper", 2.5),
        ("a.avi", 4, "srgan x (candidate)", 2.6),
        ("b.mp4", 4, "bicubic", 4.0),
        ("c.avi", 4, "bicubic", 5.0),
    ]
