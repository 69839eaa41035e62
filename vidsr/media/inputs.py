"""Opening an input file, with every way it can be bad turned into a clear InputError."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av

from vidsr.errors import InputError, UnsupportedError
from vidsr.media.pyav import fraction, open_container

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image(path: Path) -> bool:
    """A still image, by its name (``vidsr upscale`` writes an image for an image)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def check_input_path(path: Path) -> None:
    """Fail early, with a precise message, on paths that cannot be media at all."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a media file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")


def open_input(path: Path, *, hwaccel: av.codec.hwaccel.HWAccel | None = None) -> av.container.InputContainer:
    """Open ``path`` for demuxing; a file FFmpeg cannot parse is an InputError naming it."""
    check_input_path(path)
    try:
        return open_container(path, hwaccel=hwaccel)
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot read {path}: not a media file, or damaged ({_reason(exc)})") from None


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The first real video stream (cover art is not video), with a decoder FFmpeg has."""
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        raise InputError(f"no video stream in {path} (it holds {kinds})")
    stream = streams[0]
    if stream.codec_context is None:
        raise UnsupportedError(f"cannot decode {path}: no decoder for its video codec")
    if not stream.codec_context.width or not stream.codec_context.height:
        raise InputError(f"cannot read {path}: its video stream has no frame size (damaged header?)")
    return stream


def truncation(
    container: av.container.InputContainer, video: av.video.stream.VideoStream, end: int | None
) -> str | None:
    """Why a file whose video packets end at pts ``end`` looks cut short, or None.

    A file cut short still demuxes cleanly; compare how far the video got with what the container
    declares.  (Headers that over-count frames but not time, like tree.avi's, pass: its 68 packets
    span the declared 444 ticks.)"""
    if end is None or not video.time_base:
        return None
    rate = fraction(video.average_rate) or fraction(video.guessed_rate) or Fraction(25)
    start = video.start_time or 0
    reached = float((end - start) * video.time_base)
    # AVI declares frame slots (its frame count); MP4 and MKV a duration. Take what is stated.
    declared = float(video.duration * video.time_base) if video.duration else 0.0
    if not declared and container.format.name.startswith("matroska") and container.duration:
        # Matroska states one duration for the whole segment (exact, unlike estimates from bitrate).
        declared = container.duration / av.time_base
    if video.frames and rate:
        declared = max(declared, video.frames / float(rate))
    if declared - reached > max(0.5, 2.0 / float(rate)):
        return f"is truncated: its video stops at {reached:.2f} s of {declared:.2f} s"
    return None


def _reason(exc: av.error.FFmpegError) -> str:
    return (exc.strerror or type(exc).__name__).rstrip(".").lower()
