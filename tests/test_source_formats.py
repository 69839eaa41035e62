"""Decoded layouts other than 8-bit planar Y'CbCr, and a mid-stream size change, through VideoSource.

Each clip is written here with PyAV from planes the test chose, losslessly (FFV1, raw video,
x264 at crf 0), so what the source hands on can be compared with what went in: 10-bit samples
kept at 10 bits in 16-bit planes, nv12's interleaved chroma split into two planes, grey given neutral
chroma, and frames after a size change scaled to the first frame's size.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidsr.media.sink import EncodeOptions
from vidsr.media.source import DecodedFrame, VideoSource
from vidsr.video import upscale_video

RNG = np.random.default_rng(0)


def frame_from_planes(planes: list[np.ndarray], fmt: str, width: int, height: int) -> av.VideoFrame:
    """A VideoFrame of ``fmt`` whose planes hold exactly ``planes`` (uint8 or uint16 arrays)."""
    frame = av.VideoFrame(width, height, fmt)
    for plane, data in zip(frame.planes, planes, strict=True):
        padded = np.zeros((plane.height, plane.line_size // data.itemsize), data.dtype)
        padded[:, : data.shape[1]] = data
        plane.update(padded.tobytes())
    return frame


def write(path: Path, codec: str, pix_fmt: str, frames: list[av.VideoFrame], *, full_range: bool = False) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, pix_fmt
        if full_range:
            stream.codec_context.color_range = 2
        for i, frame in enumerate(frames):
            frame.pts = i
            if full_range:
                frame.color_range = 2
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decoded_planes(path: Path) -> tuple[VideoSource, list[DecodedFrame]]:
    with VideoSource(path) as source:
        return source, [item for item in source.items() if isinstance(item, DecodedFrame)]


@pytest.mark.parametrize("full_range", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize(("pix_fmt", "sub"), [("yuv420p10le", 2), ("yuv444p10le", 1)])
def test_ten_bit_input_keeps_its_depth(tmp_path, pix_fmt, sub, full_range):
    width, height = 32, 24
    low, high = (0, 1023) if full_range else (64, 940)
    ten = [RNG.integers(low, high + 1, (height // s, width // s)).astype(np.uint16) for s in (1, sub, sub)]
    clip = write(
        tmp_path / "ten.mkv", "ffv1", pix_fmt, [frame_from_planes(ten, pix_fmt, width, height)], full_range=full_range
    )
    source, frames = decoded_planes(clip)
    assert source.note is None
    assert (source.layout.sub_x, source.layout.sub_y, source.layout.bits) == (sub, sub, 10)
    assert source.tags.color_range == (2 if full_range else 1)
    (frame,) = frames
    for got, want in zip(frame.planes, ten, strict=True):  # 16-bit planes, every sample as stored
        assert got.dtype == np.uint16 and np.array_equal(got, want)


def test_nv12_chroma_is_split_into_two_planes(tmp_path):
    width, height = 32, 24
    y = RNG.integers(16, 236, (height, width)).astype(np.uint8)
    uv = RNG.integers(16, 241, (height // 2, width)).astype(np.uint8)  # Cb, Cr, Cb, Cr, ...
    clip = write(tmp_path / "nv12.nut", "rawvideo", "nv12", [frame_from_planes([y, uv], "nv12", width, height)])
    source, (frame,) = decoded_planes(clip)
    assert source.note is None and (source.layout.sub_x, source.layout.sub_y) == (2, 2)
    assert np.array_equal(frame.planes[0], y)
    assert np.array_equal(frame.planes[1], uv[:, 0::2]) and np.array_equal(frame.planes[2], uv[:, 1::2])


def test_grey_input_gets_neutral_chroma(tmp_path):
    width, height = 33, 25  # odd: the chroma planes round up
    grey = [RNG.integers(0, 256, (height, width)).astype(np.uint8) for _ in range(2)]
    clip = write(tmp_path / "grey.mkv", "ffv1", "gray", [frame_from_planes([g], "gray", width, height) for g in grey])
    source, frames = decoded_planes(clip)
    assert (source.layout.width, source.layout.height, source.layout.sub_x, source.layout.sub_y) == (33, 25, 2, 2)
    assert len(frames) == 2
    for frame, want in zip(frames, grey, strict=True):
        y, cb, cr = frame.planes
        assert np.array_equal(y, want)
        assert cb.shape == cr.shape == (13, 17) and (cb == 128).all() and (cr == 128).all()


def _h264_ts(path: Path, size: tuple[int, int], frames: int, first_pts: int, blue: int) -> Path:
    width, height = size
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(frames):
            rgb = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, blue + i)], -1)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            frame.pts = first_pts + i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture
def size_change(tmp_path: Path) -> Path:
    """5 frames of 64x48 then 5 of 96x72 in one MPEG-TS stream (the way broadcast captures change size)."""
    first = _h264_ts(tmp_path / "a.ts", (64, 48), 5, 0, 40)
    second = _h264_ts(tmp_path / "b.ts", (96, 72), 5, 5, 200)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    return joined


def test_mid_stream_size_change_is_scaled_to_the_first_size(size_change):
    with av.open(str(size_change)) as c:
        originals = list(c.decode(video=0))
        sizes = [(f.width, f.height) for f in originals]
        planes = [_yuv420_planes(f) for f in originals]
        times = [f.pts for f in originals]
    assert sizes == [(64, 48)] * 5 + [(96, 72)] * 5  # the clip does change size
    source, frames = decoded_planes(size_change)
    assert (source.layout.width, source.layout.height) == (64, 48)
    assert [f.pts for f in frames] == times
    for frame, want in zip(frames[:5], planes[:5], strict=True):
        assert all(np.array_equal(g, w) for g, w in zip(frame.planes, want, strict=True))
    for frame, want in zip(frames[5:], planes[5:], strict=True):
        for got, big in zip(frame.planes, want, strict=True):
            assert got.shape == (big.shape[0] * 2 // 3, big.shape[1] * 2 // 3)
            # Smooth gradients: any sane resampler lands within a few code values of Pillow's.
            smaller = np.asarray(Image.fromarray(big).resize(got.shape[::-1], Image.BILINEAR)).astype(int)
            assert np.abs(got.astype(int) - smaller).mean() < 2


def _yuv420_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    h, w = frame.height, frame.width
    flat = frame.to_ndarray(format="yuv420p").reshape(-1)
    y = flat[: h * w].reshape(h, w)
    u = flat[h * w : h * w + (h // 2) * (w // 2)].reshape(h // 2, w // 2)
    v = flat[h * w + (h // 2) * (w // 2) :].reshape(h // 2, w // 2)
    return [y, u, v]


@pytest.mark.parametrize("kind", ["ten_bit", "nv12", "grey", "size_change"])
def test_each_layout_upscales_end_to_end(tmp_path, size_change, kind):
    width, height = 32, 24
    if kind == "ten_bit":
        planes = [RNG.integers(64, 941, (height // s, width // s)).astype(np.uint16) for s in (1, 2, 2)]
        frames = [frame_from_planes(planes, "yuv420p10le", width, height) for _ in range(3)]
        clip = write(tmp_path / "in.mkv", "ffv1", "yuv420p10le", frames)
    elif kind == "nv12":
        planes = [RNG.integers(16, 236, (height, width)).astype(np.uint8), np.full((12, 32), 128, np.uint8)]
        frames = [frame_from_planes(planes, "nv12", width, height) for _ in range(3)]
        clip = write(tmp_path / "in.nut", "rawvideo", "nv12", frames)
    elif kind == "grey":
        frames = [
            frame_from_planes([RNG.integers(0, 256, (height, width)).astype(np.uint8)], "gray", 32, 24)
            for _ in range(3)
        ]
        clip = write(tmp_path / "in.mkv", "ffv1", "gray", frames)
    else:
        clip, (width, height) = size_change, (64, 48)
    count = 10 if kind == "size_change" else 3
    out = tmp_path / "out.mkv"
    summary = upscale_video(
        clip, out, model="bicubic", scale=2, device="cpu", progress=False, encode=EncodeOptions(preset="ultrafast")
    )
    assert summary.frames_in == summary.frames_out == count
    assert (summary.width, summary.height) == (2 * width, 2 * height)
    assert not any("8 bits" in w for w in summary.warnings)  # auto: 10-bit in, 10-bit out
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == ("yuv420p10le" if kind == "ten_bit" else "yuv420p")
        assert [(f.width, f.height) for f in c.decode(video=0)] == [(2 * width, 2 * height)] * count


def test_raw_h264_without_timestamps_keeps_the_frame_rate(tmp_path):
    clip = tmp_path / "raw.h264"
    with av.open(str(clip), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    source, frames = decoded_planes(clip)
    times = [float(f.pts * source.time_base) for f in frames]
    assert times == pytest.approx([i / 25 for i in range(5)], abs=1e-3)
