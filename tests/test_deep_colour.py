"""10- and 12-bit masters keep their depth: 16-bit planes in and out, models fed normalised floats."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from archival_clips import grey_chroma, moving_picture, noise_planes, psnr, read_planes, write_clip

from vidsr.colour import BT601_STUDIO
from vidsr.media.depth import SampleDepth, quantise, to_float
from vidsr.media.sink import EncodeOptions
from vidsr.models import LoadedModel, get_spec
from vidsr.models.srresnet import srresnet
from vidsr.upscaler import PlaneBatch, Upscaler, output_geometry
from vidsr.video import upscale_video

SUBSAMPLING = {"420": (2, 2), "422": (2, 1), "444": (1, 1)}


def upscale(src, dst, model="nearest", **encode):
    return upscale_video(
        src,
        dst,
        model=model,
        scale=2,
        device="cpu",
        backend="torch-cpu",  # the reference backend, and no ONNX export to wait for
        encode=EncodeOptions(**encode),
        progress=False,
    )


def pix_fmt_of(path):
    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.pix_fmt


def nearest_psnr(src, dst, bits):
    """Worst PSNR over frames and planes between the input and every second output sample (nearest x2)."""
    worst = float("inf")
    for (_, a), (_, b) in zip(read_planes(src), read_planes(dst), strict=True):
        for plane_in, plane_out in zip(a, b, strict=True):
            worst = min(worst, psnr(plane_out[::2, ::2], plane_in, peak=(1 << bits) - 1))
    return worst


@pytest.mark.parametrize(
    ("pix_fmt", "bits"),
    [("yuv420p10le", 10), ("yuv422p10le", 10), ("yuv444p10le", 10), ("yuv420p12le", 12)],
)
def test_ffv1_master_round_trip_keeps_every_bit(tmp_path, pix_fmt, bits):
    chroma = SUBSAMPLING[pix_fmt[3:6]]
    src = write_clip(tmp_path / "master.mkv", noise_planes(4, bits=bits, sub=chroma), pix_fmt=pix_fmt)
    dst = tmp_path / "out.mkv"
    summary = upscale(src, dst, codec="ffv1", pix_fmt=None)
    assert pix_fmt_of(dst) == pix_fmt  # auto: the input's layout and depth
    assert summary.frames_out == 4 and not summary.warnings, summary.warnings
    assert nearest_psnr(src, dst, bits) == float("inf")
    values = np.concatenate([p.ravel() for _, planes in read_planes(dst) for p in planes])
    assert (values % (1 << (bits - 8))).any()  # codes an 8-bit path cannot make


def test_8bit_path_would_have_lost_precision(tmp_path):
    """The measure above can fail: through 8 bits the same master loses its two low bits."""
    src = write_clip(tmp_path / "master.mkv", noise_planes(2, bits=10), pix_fmt="yuv420p10le")
    dst = tmp_path / "out.mkv"
    summary = upscale(src, dst, codec="ffv1", pix_fmt="yuv420p")
    assert any("written at 8 bits (yuv420p)" in w for w in summary.warnings), summary.warnings
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    ins = read_planes(src)
    outs = read_planes(dst)
    err = max(
        np.abs(b[0][::2, ::2].astype(int) * 4 - a[0].astype(int)).max()
        for (_, a), (_, b) in zip(ins, outs, strict=True)
    )
    assert 0 < err <= 3


def test_x264_10bit_lossless_and_8bit_default_for_8bit_input(tmp_path):
    src = write_clip(tmp_path / "master.mkv", noise_planes(3, bits=10), pix_fmt="yuv420p10le")
    dst = tmp_path / "out.mp4"
    upscale(src, dst, pix_fmt=None, lossless=True)  # .mp4: x264 at qp 0, High 4:4:4 Predictive, 10-bit
    assert pix_fmt_of(dst) == "yuv420p10le"
    assert nearest_psnr(src, dst, 10) == float("inf")
    eight = write_clip(tmp_path / "eight.mkv", noise_planes(2))
    upscale(eight, tmp_path / "eight.mp4", pix_fmt=None)
    assert pix_fmt_of(tmp_path / "eight.mp4") == "yuv420p"


def test_encoder_without_10bit_falls_back_to_8bit_with_a_warning(tmp_path):
    src = write_clip(tmp_path / "master.mkv", noise_planes(2, bits=10), pix_fmt="yuv420p10le")
    summary = upscale(src, tmp_path / "out.avi", pix_fmt=None)  # AVI: mpeg4, 8-bit only
    assert pix_fmt_of(tmp_path / "out.avi") == "yuv420p"
    assert "mpeg4 cannot encode 10-bit video: written at 8 bits" in summary.warnings


def test_learned_luma_model_on_10bit_matches_its_8bit_output(tmp_path):
    """ESPCN sees the same floats from 10-bit codes as from 8-bit ones (10-bit = 8-bit x 4 here), so its
    10-bit output, divided by 4, is its 8-bit output give or take rounding: the normalisation is right."""
    pictures = [moving_picture(t) for t in range(3)]
    eight = write_clip(tmp_path / "eight.mkv", [grey_chroma(p) for p in pictures])
    ten = write_clip(
        tmp_path / "ten.mkv",
        [tuple(p.astype(np.uint16) * 4 for p in grey_chroma(p)) for p in pictures],
        pix_fmt="yuv420p10le",
    )
    upscale(eight, tmp_path / "out8.mkv", model="espcn", codec="ffv1", pix_fmt=None)
    upscale(ten, tmp_path / "out10.mkv", model="espcn", codec="ffv1", pix_fmt=None)
    assert pix_fmt_of(tmp_path / "out10.mkv") == "yuv420p10le"
    for (_, a), (_, b) in zip(read_planes(tmp_path / "out8.mkv"), read_planes(tmp_path / "out10.mkv"), strict=True):
        diff = np.abs(b[0].astype(np.float64) / 4 - a[0])
        assert diff.max() <= 1.0 and diff.mean() < 0.3
        assert (b[0] % 4).any()  # and it used the extra precision


class PassThrough(torch.nn.Module):
    """A random SRResNet's texture over the pixel-repeated input (a random network alone writes near-black)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = srresnet(scale=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") + self.net(x)


@pytest.mark.parametrize("full_range", [False, True])
def test_rgb_model_sees_the_same_colours_at_10_bits(full_range):
    """The RGB path (Y'CbCr -> R'G'B' -> model -> Y'CbCr) on 10-bit planes against the same planes at 8 bits."""
    net = PassThrough().eval().requires_grad_(False)
    up = Upscaler(loaded=LoadedModel(get_spec("srresnet"), 2, net), backend="torch-cpu", tile_pixels=0)
    rng = np.random.default_rng(1)
    planes8 = [rng.integers(16, 236, (12, 16), dtype=np.uint8) for _ in range(3)]
    deep, fmt = SampleDepth(10, full_range), BT601_STUDIO
    # 8-bit code c is 10-bit 4c in limited range, and c * 1023 / 255 in full range.
    factor = 4.0 if not full_range else 1023 / 255
    planes10 = [np.round(p.astype(np.float64) * factor).astype(np.uint16) for p in planes8]
    g = output_geometry(12, 16, 2, 1, 1)
    out8 = up.upscale_planes(PlaneBatch.stack([tuple(planes8)]), fmt, fmt, g)
    out10 = up.upscale_planes(PlaneBatch.stack([tuple(planes10)]), fmt, fmt, g, deep, deep)
    for a, b in zip(out8.frames()[0], out10.frames()[0], strict=True):
        assert b.dtype == np.uint16
        assert np.abs(b.astype(np.float64) / factor - a).max() <= 1.0


def test_16bit_codes_survive_the_int16_transport():
    """Codes above 32767 (16-bit formats) come back whole through PlaneBatch and quantise."""
    codes = np.array([[0, 1, 32767, 32768, 65535, 40000]], np.uint16)
    batch = PlaneBatch.stack([(codes, codes, codes)])
    depth = SampleDepth(16, full_range=True)
    x = to_float(batch.y, depth)
    assert np.allclose(x.numpy() * 65535, codes)
    back = PlaneBatch(quantise(x, depth), batch.cb, batch.cr).frames()[0][0]
    assert back.dtype == np.uint16 and np.array_equal(back, codes)


def test_prores_takes_10bit_420_as_422(tmp_path):
    """ProRes has no 4:2:0: auto picks the nearest it has that loses nothing (4:2:2, still 10 bits)."""
    pictures = [moving_picture(t, bits=10) for t in range(3)]
    frames = [(p, *(np.full((24, 32), 512, np.uint16) for _ in range(2))) for p in pictures]
    src = write_clip(tmp_path / "master.mkv", frames, pix_fmt="yuv420p10le")
    summary = upscale(src, tmp_path / "out.mov", codec="prores_ks", pix_fmt=None)
    assert pix_fmt_of(tmp_path / "out.mov") == "yuv422p10le" and not summary.warnings
    for (_, a), (_, b) in zip(read_planes(src), read_planes(tmp_path / "out.mov"), strict=True):
        assert psnr(b[0][::2, ::2], a[0], peak=1023) > 40
        assert b[1].shape == (96, 64)  # 4:2:2 at twice the size
