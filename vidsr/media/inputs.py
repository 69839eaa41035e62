"""Opening an input file, with every way it can be bad turned into a clear InputError."""

from __future__ import annotations

import os
from pathlib import Path

import av

from vidsr.errors import InputError, UnsupportedError


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
        return av.open(str(path), mode="r", metadata_errors="replace", hwaccel=hwaccel)
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


def _reason(exc: av.error.FFmpegError) -> str:
    return (exc.strerror or type(exc).__name__).rstrip(".").lower()
