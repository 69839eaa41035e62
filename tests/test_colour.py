"""Y'CbCr conversions and colour tags."""

from __future__ import annotations

import pytest
import torch

from vidsr.colour import BT601_STUDIO, MATRICES, YCbCrFormat, rgb_to_ycbcr, ycbcr_to_rgb
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
