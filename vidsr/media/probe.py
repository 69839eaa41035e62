"""``vidsr probe``: what is in a file, from its headers and one pass over its packets."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vidsr.errors import InputError
from vidsr.media import interlace, metadata
from vidsr.media.inputs import open_input, truncation, video_stream
from vidsr.media.pyav import text
from vidsr.media.tags import ColourTags


@dataclass
class StreamInfo:
    index: int
    type: str
    codec: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class MediaInfo:
    path: str
    container: str
    duration: float | None
    streams: list[StreamInfo]
    width: int
    height: int
    pix_fmt: str
    video_codec: str
    frames: int  # video packets carrying data (or decoded pictures, with decode=True)
    frames_header: int | None  # what the container claims
    frames_counted: str  # "packets" (fast; a packet may hold no picture) or "decoded" (exact)
    frame_rate: float | None  # average over the stream
    variable_frame_rate: bool
    colour: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    interlace: dict[str, Any] = field(default_factory=dict)  # flags, idet's counts, the verdict
    metadata: dict[str, Any] = field(default_factory=dict)  # timecode, rotation, chapters, titles

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_variable(pts: list[int], time_base: Fraction) -> bool:
    """Frame intervals that differ by more than a millisecond (rounding of a fixed rate is not VFR)."""
    if len(pts) < 3:
        return False
    pts = sorted(pts)
    steps = [b - a for a, b in itertools.pairwise(pts) if b > a]
    if not steps:
        return False
    return float((max(steps) - min(steps)) * time_base) > 0.0011


def probe(path: str | Path, *, decode: bool = False) -> MediaInfo:
    """Describe ``path``: streams, codecs, frame count, frame rate (constant or variable), colour, duration.

    Frames are counted from packets (fast); ``decode=True`` counts decoded pictures
    instead, which is exact where a packet holds no picture or a damaged one.
    """
    path = Path(path)
    with open_input(path) as container:
        video = video_stream(container, path)
        cc = video.codec_context
        streams = []
        for s in container.streams:
            ctx = s.codec_context
            details: dict[str, Any] = {}
            if s.type == "audio" and ctx is not None:
                details = {"sample_rate": ctx.sample_rate, "channels": ctx.channels, "layout": ctx.layout.name}
            elif s.type == "video" and ctx is not None:
                details = {"width": ctx.width, "height": ctx.height, "pix_fmt": ctx.pix_fmt}
            if s.metadata.get("language"):
                details["language"] = text(s.metadata["language"])
            streams.append(StreamInfo(s.index, s.type, ctx.name if ctx else "unknown", details))
        pts: list[int] = []
        end: int | None = None
        try:
            for packet in container.demux(video):
                if packet.size:
                    pts.append(packet.pts if packet.pts is not None else (packet.dts or 0))
                    if packet.pts is not None:
                        end = max(end or packet.pts, packet.pts + (packet.duration or 0))
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read {path}: damaged or truncated ({exc.strerror})") from None
        problem = truncation(container, video, end)
        warnings = [f"{path} {problem}"] if problem else []
        frames = len(pts)
        if decode:
            from vidsr.media.source import VideoSource

            with VideoSource(path) as source:
                frames = sum(1 for _ in source.items(convert=False) if not isinstance(_, av.Packet))
        duration = float(container.duration / av.time_base) if container.duration else None
        rate = None
        if len(pts) > 1 and video.time_base:
            span = float((max(pts) - min(pts)) * video.time_base)
            rate = round((len(pts) - 1) / span, 3) if span > 0 else None
        tags = ColourTags(cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc)
        fields = interlace.detect(path, video, "auto")
        meta = metadata.read(container, video, metadata.first_matrix(path, video.index))
        return MediaInfo(
            path=str(path),
            container=container.format.name,
            duration=duration,
            streams=streams,
            width=cc.width,
            height=cc.height,
            pix_fmt=cc.pix_fmt or "unknown",
            video_codec=cc.name,
            frames=frames,
            frames_header=video.frames or None,
            frames_counted="decoded" if decode else "packets",
            frame_rate=rate,
            variable_frame_rate=_is_variable(pts, video.time_base),
            colour=tags.describe(),
            warnings=warnings,
            interlace=fields.describe(),
            metadata=meta.describe(),
        )
