"""Y'CbCr conversions and colour tags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.colour import (
    BT601_STUDIO,
    MATRICES,
    YCbCrFormat,
    planes_to_rgb8,
    rgb8_to_planes,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from vidsr.media.tags import ColourTags, resolve, ycbcr_format


@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("full", [False, True])
def test_round_trip(matrix, full):
    fmt = YCbCrFormat(matrix, full)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x, fmt), fmt), x, atol=1e-12)


def test_matlab_rgb2ycbcr_values():
    # MATLAB: rgb2ycbcr([1 0 0]) = [81.481 90.203 240] / 255 (BT.601 studio range)
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(3, 1, 1)
    ycc = rgb_to_ycbcr(red, BT601_STUDIO).flatten() * 255
    assert ycc.tolist() == pytest.approx([81.481, 90.203, 240.0], abs=1e-3)
    white = rgb_to_ycbcr(torch.ones(3, 1, 1, dtype=torch.float64), BT601_STUDIO).flatten() * 255
    assert white.tolist() == pytest.approx([235.0, 128.0, 128.0])


def test_bt709_differs_from_bt601():
    # the same code values mean different colours under the two matrices: that is the bug we avoid
    ycc = torch.tensor([0.5, 0.3, 0.7], dtype=torch.float64).view(3, 1, 1)
    a = ycbcr_to_rgb(ycc, YCbCrFormat("bt601"))
    b = ycbcr_to_rgb(ycc, YCbCrFormat("bt709"))
    assert (a - b).abs().max() > 0.03


def test_untagged_input_resolved_like_a_player():
    sd = resolve(ColourTags(), 720, 576)
    assert (sd.colorspace, sd.color_range, sd.primaries, sd.transfer) == (6, 1, 5, 6)
    ntsc = resolve(ColourTags(), 720, 480)
    assert ntsc.primaries == 6
    hd = resolve(ColourTags(), 1920, 1080)
    assert (hd.colorspace, hd.primaries, hd.transfer) == (1, 1, 1)
    full = resolve(ColourTags(), 640, 480, full_range_format=True)
    assert full.color_range == 2 and ycbcr_format(full).full_range
    tagged = resolve(ColourTags(9, 1, 9, 16), 640, 480)  # BT.2020 PQ kept as it is
    assert tagged == ColourTags(9, 1, 9, 16) and ycbcr_format(tagged).matrix == "bt2020"


@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("full", [False, True])
def test_uint8_fast_path_equals_the_float_formulas(matrix, full):
    """rgb8_to_planes / planes_to_rgb8 (numpy, fused) against rgb_to_ycbcr / ycbcr_to_rgb in float64."""
    fmt = YCbCrFormat(matrix, full)
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (19, 27, 3), dtype=np.uint8)
    rgb[0, :8] = [
        [0, 0, 0],
        [255, 255, 255],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [0, 255, 255],
        [1, 2, 3],
    ]
    y, cb, cr = rgb8_to_planes(rgb, fmt)
    ref = rgb_to_ycbcr(torch.from_numpy(rgb).permute(2, 0, 1).double() / 255, fmt)
    assert y.dtype == np.float32 and cb.dtype == cr.dtype == np.uint8
    assert np.abs(y - ref[0].numpy()).max() < 1e-5
    for got, want in ((cb, ref[1]), (cr, ref[2])):
        want8 = (want * 255).round().clamp(0, 255).numpy()
        assert np.abs(got.astype(float) - want8).max() <= 1  # float32 vs float64 on a rounding edge
        assert (got == want8).mean() > 0.99

    # Back: Y' unclamped (a model overshoots), chroma 8-bit; the result rounded and clamped.
    luma = rng.uniform(-0.1, 1.1, (19, 27)).astype(np.float32)
    cb8, cr8 = (rng.integers(0, 256, (19, 27), dtype=np.uint8) for _ in range(2))
    out = planes_to_rgb8(luma, cb8, cr8, fmt)
    ycc = torch.stack([torch.from_numpy(luma).double(), torch.from_numpy(cb8) / 255.0, torch.from_numpy(cr8) / 255.0])
    want = (ycbcr_to_rgb(ycc.double(), fmt) * 255).round().clamp(0, 255).permute(1, 2, 0).numpy()
    assert out.shape == (19, 27, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(float) - want).max() <= 1
    assert (out == want).mean() > 0.99
    assert out.min() == 0 and out.max() == 255  # the overshoot was clamped, not wrapped


def test_uint8_conversion_back_is_the_same_in_row_chunks():
    """A frame big enough to be converted in row chunks (on two threads) equals the same
    arithmetic row by row: chunk edges leave no seam."""
    from vidsr.colour import _row_chunks

    rng = np.random.default_rng(11)
    h, w = 301, 1100  # several chunks, the last one short
    assert len(_row_chunks(h, w)) > 2
    luma = rng.uniform(-0.1, 1.1, (h, w)).astype(np.float32)
    cb8, cr8 = (rng.integers(0, 256, (h, w), dtype=np.uint8) for _ in range(2))
    out = planes_to_rgb8(luma, cb8, cr8)
    rows = np.concatenate([planes_to_rgb8(luma[i : i + 1], cb8[i : i + 1], cr8[i : i + 1]) for i in range(h)])
    assert np.array_equal(out, rows)


def test_probe_count_converts_no_colour(monkeypatch):
    """``probe --count`` decodes every picture but never converts one (most of its time, before)."""
    from conftest import data_path

    from vidsr.media import source
    from vidsr.media.probe import probe

    path = data_path("video", "tree.avi")  # rgb24 Cinepak: the conversion is a full RGB -> Y'CbCr pass

    def no_conversion(self, frame):
        raise AssertionError("probe --count converted a frame")

    monkeypatch.setattr(source._FrameConverter, "__call__", no_conversion)
    assert probe(path, decode=True).frames == 68  # its 68 coded frames, in 444 frame slots
    with pytest.raises(AssertionError, match="converted a frame"):
        list(source.VideoSource(path).items())  # the upscale path still converts
