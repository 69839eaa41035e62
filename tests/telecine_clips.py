"""Film transferred to NTSC video, made with FFmpeg's own ``telecine`` filter (3:2 pulldown, pattern 23):
24 distinct film pictures a second spread over 30 interlaced frames, 2 of every 5 woven from two film
pictures.  Clips are tiny and their every film picture is known, so an output frame can be traced back
to the picture it shows."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from archival_clips import Planes, grey_chroma, psnr, weave

from vidsr.media.filtergraph import drain

FILM_RATE = Fraction(24000, 1001)
VIDEO_RATE = Fraction(30000, 1001)
SIZE = (96, 64)  # fieldmatch's combing blocks are 16x16 inside an 8-pixel border: room for a few
FIELD_ORDER = {"tff": 2, "bff": 3}  # AVFieldOrder


def film_picture(t: float, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Luma of film picture ``t``: two bar patterns moving against each other and a slow vertical wave,
    so that no two pictures of a clip look alike (any other is 25-31 dB PSNR from a picture).  Smooth
    down each column, so two pictures woven together comb; changing ~5% a picture, as film does, so
    FFmpeg's filters see motion, not scene cuts."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    luma = 110 + 30 * np.sin((xx - 2 * t) / 3.0) + 15 * np.sin((xx + 3 * t) / 11.0)
    luma += 10 * np.cos(yy / 9.0 + 0.25 * t) + 0.3 * yy
    return luma.round().astype(np.uint8)


def film(count: int, start: int = 0) -> list[np.ndarray]:
    return [film_picture(t) for t in range(start, start + count)]


def _frame(planes: Planes, pts: int, time_base: Fraction) -> av.VideoFrame:
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, data in zip(frame.planes, planes, strict=True):
        view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        view[...] = data
    frame.pts, frame.time_base = pts, time_base
    return frame


def _planes(frame: av.VideoFrame) -> Planes:
    return tuple(
        np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in frame.planes[:3]
    )  # type: ignore[return-value]


def telecine(pictures: list[np.ndarray], order: str) -> list[Planes]:
    """``pictures`` at 23.976 through FFmpeg's ``telecine`` (pattern 23, the first field ``order``'s):
    the 29.97 interlaced frames a film transfer gives."""
    height, width = pictures[0].shape
    time_base = 1 / FILM_RATE
    graph = av.filter.Graph()
    source = graph.add(
        "buffer",
        video_size=f"{width}x{height}",
        pix_fmt="yuv420p",
        time_base=str(time_base),
        pixel_aspect="1/1",
        frame_rate=str(FILM_RATE),
    )
    first = "top" if order == "tff" else "bottom"
    graph.link_nodes(source, graph.add("telecine", f"first_field={first}:pattern=23"), graph.add("buffersink"))
    graph.configure()
    frames = []
    for i, luma in enumerate(pictures):
        graph.vpush(_frame(grey_chroma(luma), i, time_base))
        frames += drain(graph)
    graph.vpush(None)
    frames += drain(graph)
    return [_planes(f) for f in frames]


def video_rate(count: int, order: str, start: int = 1000) -> list[Planes]:
    """``count`` frames of video-rate material (a camera at 59.94 fields a second): every field a new
    moment, so no two fields of the clip make a whole picture."""
    pictures = [film_picture(start + t / 2) for t in range(2 * count)]
    return [grey_chroma(weave(pictures[2 * k], pictures[2 * k + 1], order)) for k in range(count)]


def write_ntsc(
    path: Path, frames: list[Planes], order: str | None, *, codec: str = "ffv1", audio: bool = False
) -> Path:
    """29.97 frames as an interlaced NTSC file: FFV1 in Matroska flagged ``order`` by the container (None:
    not flagged at all), or libx264 coded interlaced (``order`` in the bitstream) in MP4.  ``audio``: a
    440 Hz tone as AAC beside it, as long as the video."""
    height, width = frames[0][0].shape
    time_base = 1 / VIDEO_RATE
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=VIDEO_RATE)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if order is not None:
            stream.codec_context.field_order = FIELD_ORDER[order]
        if codec == "ffv1":
            stream.time_base = time_base
            stream.codec_context.gop_size = 1  # every frame a keyframe, as archives write FFV1
        else:
            stream.options = {"preset": "ultrafast", "crf": "6", "x264-params": f"interlaced=1:{order}=1"}
        sound = out.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i, planes in enumerate(frames):
            out.mux(stream.encode(_frame(planes, i, time_base)))
        out.mux(stream.encode(None))
        if sound is not None:
            samples = int(48000 * len(frames) / VIDEO_RATE)
            for start in range(0, samples, 1024):
                t = (np.arange(start, start + 1024) / 48000).astype(np.float32)
                tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
                chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def fields_of(frames: list[Planes], pictures: list[np.ndarray]) -> list[tuple[int, int]]:
    """For each interlaced frame, which picture its top and its bottom field come from."""

    def source(field: np.ndarray, parity: int) -> int:
        return int(np.argmax([psnr(field, p[parity::2]) for p in pictures]))

    return [(source(y[0::2], 0), source(y[1::2], 1)) for y, _, _ in frames]


def whole_pictures(frames: list[Planes], pictures: list[np.ndarray]) -> set[int]:
    """The pictures of which ``frames`` hold both fields: what inverse telecine can give back whole."""
    fields = fields_of(frames, pictures)
    tops, bottoms = {t for t, _ in fields}, {b for _, b in fields}
    return tops & bottoms


def traced(luma: np.ndarray, pictures: list[np.ndarray]) -> tuple[int, float, float]:
    """Which of ``pictures`` ``luma`` shows: (its index, PSNR against it, best PSNR against any other)."""
    scores = [psnr(luma, p) for p in pictures]
    best = int(np.argmax(scores))
    others = [s for i, s in enumerate(scores) if i != best]
    return best, scores[best], max(others)
