"""Tiny clips for the archival tests, written plane by plane with PyAV so every sample is known."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def noise_planes(count: int, size: tuple[int, int] = (64, 48), *, bits: int = 8, sub: tuple[int, int] = (2, 2), seed=0):
    """Random planes: incompressible, so any loss in a round trip shows."""
    rng = np.random.default_rng(seed)
    width, height = size
    dtype = np.uint8 if bits == 8 else np.uint16
    lo, hi = 16 << (bits - 8), 235 << (bits - 8)  # studio range, so no encoder clips anything
    ch, cw = -(-height // sub[1]), -(-width // sub[0])
    return [
        (
            rng.integers(lo, hi, (height, width), dtype=dtype),
            rng.integers(lo, hi, (ch, cw), dtype=dtype),
            rng.integers(lo, hi, (ch, cw), dtype=dtype),
        )
        for _ in range(count)
    ]


def _view(plane: av.video.plane.VideoPlane, dtype) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // item)[:, : plane.width]


def write_clip(
    path: Path,
    frames: list[Planes],
    *,
    codec: str = "ffv1",
    pix_fmt: str = "yuv420p",
    rate: int = 25,
    options: dict[str, str] | None = None,
    setup: Callable[[av.container.OutputContainer, av.video.stream.VideoStream], None] | None = None,
    audio_tags: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (Y, Cb, Cr planes; uint16 for >8-bit formats) as they are.  ``setup(out, stream)``
    runs before the first frame: metadata, side data, field order.  ``audio_tags``: add a silent AAC
    track with these tags."""
    height, width = frames[0][0].shape
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if path.suffix != ".mp4":  # MP4's muxer picks its own clock
            stream.time_base = Fraction(1, rate)
        if codec == "ffv1":
            stream.codec_context.gop_size = 1  # every frame a keyframe, as archives write FFV1 (cuts anywhere)
        if options:
            stream.options = options
        audio = None
        if audio_tags is not None:
            audio = out.add_stream("aac", rate=48000)
            audio.layout = "mono"
            audio.metadata.update(audio_tags)
        if setup is not None:
            setup(out, stream)
        for i, planes in enumerate(frames):
            frame = av.VideoFrame(width, height, pix_fmt)
            for plane, data in zip(frame.planes, planes, strict=True):
                _view(plane, data.dtype)[...] = data
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            samples = 48000 * len(frames) // rate
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                out.mux(audio.encode(chunk))
            out.mux(audio.encode(None))
    return path


def read_planes(path: Path) -> list[tuple[Fraction, Planes]]:
    """(time in seconds, planes) of every decoded frame, planes as stored (uint16 for >8-bit formats)."""
    result = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            deep = max(c.bits for c in frame.format.components) > 8
            dtype = np.uint16 if deep else np.uint8
            result.append((frame.pts * frame.time_base, tuple(_view(p, dtype).copy() for p in frame.planes[:3])))
    return result


def moving_picture(t: float, size: tuple[int, int] = (64, 48), *, bits: int = 8) -> np.ndarray:
    """Luma of a vertical-bar pattern moving right 3 px per picture, over a gentle vertical ramp:
    smooth down each column (so a field's lines predict the lines between them), sharp across."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    luma = 120 + 80 * np.sin((xx - 3 * t) / 2.0) + 0.4 * yy
    return (luma * (1 << (bits - 8))).round().astype(np.uint8 if bits == 8 else np.uint16)


def weave(first: np.ndarray, second: np.ndarray, order: str) -> np.ndarray:
    """One interlaced frame: the field shown first taken from ``first``, the other from ``second``.
    Top field first: the top field (even lines) is the earlier one."""
    frame = np.empty_like(first)
    early, late = (0, 1) if order == "tff" else (1, 0)
    frame[early::2] = first[early::2]
    frame[late::2] = second[late::2]
    return frame


def grey_chroma(luma: np.ndarray) -> Planes:
    h, w = luma.shape
    grey = np.full((h // 2, w // 2), 128, luma.dtype)
    return luma, grey, grey.copy()


def comb(luma: np.ndarray) -> float:
    """Combing: how far each line sits from the mean of the lines above and below it, the pattern
    two fields from different moments make.  Near 0 for a picture smooth down its columns."""
    y = luma.astype(np.float64)
    return float(np.abs(y[1:-1] - (y[:-2] + y[2:]) / 2).mean())


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(peak**2 / err))


def nearest_batch(inputs: list[Path], out: Path, encode, seconds: float | None = None):
    """``vidsr batch`` of ``inputs`` into ``out`` with the free model (nearest x2 on torch-cpu, one
    thread), cut into pieces of ``seconds`` when given: the report."""
    from vidsr.batch import BatchOptions, UpscaleSettings, run_batch
    from vidsr.batch.options import RuntimeSettings

    return run_batch(
        [str(i) for i in inputs],
        BatchOptions(
            out_dir=out,
            upscale=UpscaleSettings("nearest", 2, None, encode),
            runtime=RuntimeSettings(device="cpu", backend="torch-cpu", threads=1),
            segment_seconds=seconds,
            progress=False,
        ),
    )
