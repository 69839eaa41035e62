"""The degradations: each named kernel against an independent reference, and the random recipe's reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.degrade import MATRIX, RobustRecipe, downscale, matrix_rows, quantise, recipe, row_rng
from vidsr.errors import InputError
from vidsr.evaluate import protocol_lr
from vidsr.metrics import psnr


@pytest.fixture(scope="module")
def hr() -> torch.Tensor:
    # A smooth gradient plus detail, 8-bit values: every kernel has something to do.
    g = torch.Generator().manual_seed(3)
    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    base = torch.stack([x, y, (x + y) / 2]) * 0.6 + 0.2
    return quantise((base + 0.15 * torch.rand(3, 48, 64, generator=g)).clamp(0, 1))


def _cubic_taps_x2() -> np.ndarray:
    # Keys' cubic with a = -0.75 (OpenCV's INTER_CUBIC) at distances 1.5, 0.5, 0.5, 1.5: the four
    # HR pixels around an LR pixel centre at x2, worked out by hand.
    a = -0.75
    near = ((a + 2) * 0.5 - (a + 3)) * 0.25 + 1
    far = a * (((1.5 - 5) * 1.5 + 8) * 1.5 - 4)
    return np.array([far, near, near, far])


def test_bicubic_without_antialiasing_is_point_sampled_keys_cubic(hr) -> None:
    taps = _cubic_taps_x2()
    arr = hr.double().numpy()

    def along_last(a: np.ndarray) -> np.ndarray:
        n = a.shape[-1]
        out = np.zeros((*a.shape[:-1], n // 2))
        for i in range(n // 2):
            idx = np.clip(np.arange(2 * i - 1, 2 * i + 3), 0, n - 1)  # edge pixels repeat
            out[..., i] = a[..., idx] @ taps
        return out

    want = along_last(along_last(arr).swapaxes(-1, -2)).swapaxes(-1, -2)
    got = downscale(hr, 2, "bicubic").double().numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_area_is_the_block_mean(hr) -> None:
    arr = hr.numpy()
    want = arr.reshape(3, 12, 4, 16, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(downscale(hr, 4, "area").numpy(), want, atol=1e-6)


def test_blur_then_decimation_matches_scipy(hr) -> None:
    from scipy.ndimage import gaussian_filter

    sigma = 1.2
    blurred = np.stack([gaussian_filter(c, sigma, mode="mirror", truncate=4.0) for c in hr.double().numpy()])
    # At x2 the LR centre lies between four HR pixels: decimation there is their mean.
    want = blurred.reshape(3, 24, 2, 32, 2).mean(axis=(2, 4))
    got = downscale(hr, 2, "blur", sigma=sigma).double().numpy()
    # Our Gaussian is cut at 3 sigma (scipy's here at 4): the difference is the far tail only.
    np.testing.assert_allclose(got[:, 3:-3, 3:-3], want[:, 3:-3, 3:-3], atol=2e-3)


def test_the_protocol_row_is_pillows_antialiased_bicubic(hr) -> None:
    assert torch.equal(MATRIX["bicubic-aa"].make(hr, 4, row_rng("bicubic-aa", "x")), protocol_lr(hr, 4))


@pytest.mark.parametrize("name", ["jpeg", "h264"])
def test_compression_rows_damage_a_little_and_are_repeatable(hr, name) -> None:
    clean = protocol_lr(hr, 2)
    once = MATRIX[name].make(hr, 2, row_rng(name, "x"))
    again = MATRIX[name].make(hr, 2, row_rng(name, "x"))
    assert once.shape == clean.shape
    assert torch.equal(once, again)  # single-threaded codec: the same bits every run
    quality = psnr(once * 255, clean * 255)
    assert 22.0 < quality < 45.0, quality  # visibly compressed, still the same picture


def test_video_codec_keeps_odd_sizes() -> None:
    from vidsr.degrade import video_codec

    img = torch.rand(3, 15, 21)
    for codec, q in (("h264", 20), ("mpeg4", 3)):
        assert video_codec(quantise(img), codec, q).shape == (3, 15, 21)


def test_noise_row_has_the_stated_sigma_and_is_fixed_per_image(hr) -> None:
    big = quantise(torch.rand(3, 384, 384) * 0.5 + 0.25)  # no clipping at 0 or 1
    clean = protocol_lr(big, 2)
    noisy = MATRIX["noise"].make(big, 2, row_rng("noise", "a.png"))
    std = float((noisy - clean).std() * 255)
    assert 4.6 < std < 5.4, std  # sigma 5, plus rounding's 1/sqrt(12)
    assert torch.equal(noisy, MATRIX["noise"].make(big, 2, row_rng("noise", "a.png")))
    assert not torch.equal(noisy, MATRIX["noise"].make(big, 2, row_rng("noise", "b.png")))


def test_matrix_rows_by_name() -> None:
    assert [r.name for r in matrix_rows("all")] == list(MATRIX)
    assert [r.name for r in matrix_rows("noise,area")] == ["area", "noise"]  # the matrix's order
    with pytest.raises(InputError, match="unknown degradation sharpen"):
        matrix_rows("area,sharpen")


@pytest.mark.parametrize("name", ["robust-v1", "robust-v2", "robust-v5", "robust-v6"])
def test_robust_recipe_is_reproducible_from_the_seed_and_varied(hr, name) -> None:
    make = recipe(name)
    assert isinstance(make, RobustRecipe)
    first = [make(hr, 2, rng) for rng in [np.random.default_rng(7)] for _ in range(12)]
    rng = np.random.default_rng(7)
    second = [make(hr, 2, rng) for _ in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    # Twelve draws are not twelve times the same degradation.
    distinct = {round(float(lr.sum()), 3) for lr in first}
    assert len(distinct) >= 8
    assert all(lr.shape == (3, 24, 32) for lr in first)
    assert all(torch.equal(lr, quantise(lr.clone())) for lr in first)  # 8-bit, as a file holds it


def test_unknown_recipe_and_bad_sizes() -> None:
    with pytest.raises(InputError, match="unknown degradation recipe"):
        recipe("vintage")
    assert recipe("protocol") is None
    with pytest.raises(InputError, match="multiple of the scale"):
        downscale(torch.rand(3, 10, 10), 4, "area")


def test_the_train_command_offers_every_recipe_and_photo_source() -> None:
    from vidsr.cli.train import EXTRA_SOURCES as CLI_SOURCES
    from vidsr.cli.train import RECIPE_NAMES
    from vidsr.degrade import RECIPES
    from vidsr.train.data import EXTRA_SOURCES

    assert RECIPE_NAMES == RECIPES
    assert CLI_SOURCES == EXTRA_SOURCES


def test_robust_v2_records_its_own_name_and_milder_tails() -> None:
    from vidsr.degrade import describe_recipe

    v1, v2 = describe_recipe("robust-v1"), describe_recipe("robust-v2")
    assert (v1["name"], v2["name"]) == ("robust-v1", "robust-v2")
    assert v2["h264_crf"][1] < v1["h264_crf"][1] and v2["noise_sigma"][1] < v1["noise_sigma"][1]


def test_robust_v5_draws_kernels_as_often_as_the_six_matrix_rows() -> None:
    """Issue 24's six rows: three start from antialiased bicubic (clean, JPEG, noise), one each from the
    other kernels; one in six adds noise.  v5 draws the same, bilinear standing in for a little of each."""
    from vidsr.degrade import describe_recipe

    six = ("bicubic-aa", "bicubic", "area", "blur", "jpeg", "noise")
    start = {"jpeg": "bicubic-aa", "noise": "bicubic-aa"}
    wanted = {k: sum(start.get(r, r) == k for r in six) / len(six) for k in ("bicubic-aa", "bicubic", "area", "blur")}
    v5 = describe_recipe("robust-v5")
    drawn = dict(v5["kernels"])
    assert sum(drawn.values()) == pytest.approx(1.0)
    antialiased = drawn["bicubic-aa"] + drawn["bilinear-aa"]
    aliased = drawn["bicubic"] + drawn["bilinear"]
    assert antialiased == pytest.approx(wanted["bicubic-aa"])
    assert aliased == pytest.approx(wanted["bicubic"], abs=0.05)
    assert (drawn["area"], drawn["blur"]) == pytest.approx((wanted["area"], wanted["blur"]), abs=0.02)
    assert v5["noise_p"] == pytest.approx(1 / 6, abs=0.05)
    # v4 drew half its LR without antialiasing; v5 gives that share back to the other rows.
    v4 = dict(describe_recipe("robust-v4")["kernels"])
    assert aliased < v4["bicubic"] + v4["bilinear"]


def test_robust_v6_compresses_around_the_matrix_settings_and_keeps_v5s_kernels() -> None:
    """v6 changes only the compression: its ranges hold the JPEG and H.264 rows' settings near their middle."""
    from vidsr.degrade import H264_ROW_CRF, JPEG_ROW_QUALITY, describe_recipe

    v5, v6 = describe_recipe("robust-v5"), describe_recipe("robust-v6")
    changed = {k for k in v5 if v5[k] != v6[k]}
    assert changed == {"name", "codecs", "jpeg_quality", "h264_crf"}
    lo, hi = v6["jpeg_quality"]
    assert lo < JPEG_ROW_QUALITY < hi and abs((lo + hi) / 2 - JPEG_ROW_QUALITY) <= 5
    lo, hi = v6["h264_crf"]
    assert lo < H264_ROW_CRF < hi and abs((lo + hi) / 2 - H264_ROW_CRF) <= 1
    codecs = dict(v6["codecs"])
    assert sum(codecs.values()) == pytest.approx(1.0)
    assert abs(codecs["jpeg"] - codecs["h264"]) <= 0.1
