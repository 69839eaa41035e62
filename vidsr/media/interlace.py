"""Interlaced input: find out whether the frames hold two fields, and weave them into whole pictures
before the model sees them.

Upscaled as progressive pictures, the comb teeth between the two fields of a moving interlaced frame
are magnified along with everything else.  So interlaced input is deinterlaced first, with FFmpeg's
``bwdif`` (motion adaptive, using the fields before and after), through a PyAV filter graph.

Detection (:func:`detect`) weighs two witnesses.  The stream's flags (the container's field order,
the decoder's per-frame interlaced flag) are often missing (a capture re-encoded as progressive) or
wrong (progressive film flagged interlaced).  FFmpeg's ``idet`` filter looks at the pictures of the
first seconds and counts frames that look top field first, bottom field first or progressive.  Flags
win unless idet clearly disagrees; without interlaced flags, idet decides.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vidsr.errors import InputError, UnsupportedError
from vidsr.media.metadata import FIELD_ORDER_NAMES, FIELD_PROGRESSIVE
from vidsr.media.pyav import open_container

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
DETECT_SECONDS = 2.0  # how much of the start idet looks at
DETECT_FRAMES = 60  # and at most this many frames (a 60i second is 30 frames)
# A video stream tag with a verdict made elsewhere: the pieces of a segmented batch run carry the one made
# for the whole file (each piece alone could look otherwise: a still start, a container flag NUT drops).
# A piece's upscaled output carries it too, set to what its fields are then (progressive, once deinterlaced).
VERDICT_TAG = "vidsr_fields"
VERDICTS = ("tff", "bff", "progressive")
DEINTERLACED = "deinterlaced"  # the verdict tag of an output whose fields were woven into frames
# AVFieldOrder values, by which field comes first in time.
_TOP_FIRST, _BOTTOM_FIRST = {2, 4}, {3, 5}


@dataclass(frozen=True)
class Interlace:
    """What was found out about the input's fields, and what is done about them."""

    flags: str  # what the stream says: tff, bff, progressive, unknown
    idet: dict[str, int] | None  # idet's counts over the first frames (None: not run)
    detected: str  # the verdict: tff, bff or progressive
    reason: str  # why, in words
    mode: str = "auto"  # asked: auto, on, off
    field_rate: bool = False

    @property
    def deinterlace(self) -> bool:
        return self.mode == "on" or (self.mode == "auto" and self.detected != "progressive")

    @property
    def parity(self) -> str:
        """The field order bwdif is told (top first where nothing says otherwise, as FFmpeg assumes)."""
        return "bff" if self.detected == "bff" or (self.detected == "progressive" and self.flags == "bff") else "tff"

    @property
    def done(self) -> str:
        if not self.deinterlace:
            return "none"
        return f"bwdif {self.parity}, " + ("one frame per field (double rate)" if self.field_rate else "frame rate")

    def describe(self) -> dict[str, Any]:
        return {
            "flags": self.flags,
            "idet": self.idet,
            "detected": self.detected,
            "reason": self.reason,
            "mode": self.mode,
            "deinterlaced": self.deinterlace,
            "field_rate": self.deinterlace and self.field_rate,
            "done": self.done,
        }


def flag_order(stream: av.video.stream.VideoStream) -> str:
    order = stream.codec_context.field_order if stream.codec_context else 0
    if order in _TOP_FIRST:
        return "tff"
    if order in _BOTTOM_FIRST:
        return "bff"
    return FIELD_ORDER_NAMES[FIELD_PROGRESSIVE] if order == FIELD_PROGRESSIVE else "unknown"


def _drain(graph: av.filter.Graph) -> Iterator[av.VideoFrame]:
    while True:
        try:
            yield graph.vpull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return


def _graph(first: av.VideoFrame, time_base: Fraction, *filters: tuple[str, str | None]) -> av.filter.Graph:
    """buffer -> filters -> buffersink, shaped by the first frame (its size and pixel format)."""
    graph = av.filter.Graph()
    nodes = [graph.add_buffer(width=first.width, height=first.height, format=first.format, time_base=time_base)]
    nodes += [graph.add(name, args) for name, args in filters]
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes).configure()
    return graph


def run_idet(
    path: Path, index: int, *, seconds: float = DETECT_SECONDS, frames: int = DETECT_FRAMES
) -> tuple[dict[str, int], int]:
    """idet's multi-frame counts (tff, bff, progressive, undetermined) over the start of ``path``, and
    how many frames carried the decoder's interlaced flag."""
    counts = {"tff": 0, "bff": 0, "progressive": 0, "undetermined": 0}
    flagged = 0
    graph = None
    last: av.VideoFrame | None = None
    with open_container(path) as container:
        stream = container.streams[index]
        seen = 0
        try:
            for frame in container.decode(stream):
                if graph is None:
                    graph = _graph(frame, stream.time_base, ("idet", None))
                flagged += bool(frame.interlaced_frame)
                graph.vpush(frame)
                for out in _drain(graph):
                    last = out
                seen += 1
                elapsed = float((frame.pts or 0) * stream.time_base - (stream.start_time or 0) * stream.time_base)
                if seen >= frames or elapsed >= seconds:
                    break
        except av.error.FFmpegError as exc:
            log.debug("idet stopped early: %s", exc)
        if graph is not None:
            with contextlib.suppress(av.error.FFmpegError):
                graph.vpush(None)
            for out in _drain(graph):
                last = out
    if last is not None:
        for key in counts:
            counts[key] = round(float(last.metadata.get(f"lavfi.idet.multiple.{key}", 0)))
    return counts, flagged


def decide(flags: str, idet: dict[str, int] | None, flagged_frames: int = 0) -> tuple[str, str]:
    """The verdict (tff, bff, progressive) and its reason, from the flags and idet's counts."""
    interlaced_flags = flags in ("tff", "bff") or flagged_frames > 0
    if idet is None:
        if interlaced_flags:
            return (flags if flags in ("tff", "bff") else "tff"), f"flags say {flags}"
        return "progressive", f"flags say {flags}"
    tff, bff, prog = idet["tff"], idet["bff"], idet["progressive"]
    seen = f"idet: {tff} tff, {bff} bff, {prog} progressive of the first frames"
    idet_order = "tff" if tff >= bff else "bff"
    if interlaced_flags:
        order = flags if flags in ("tff", "bff") else idet_order
        if prog >= 5 and prog >= 3 * (tff + bff):
            return "progressive", f"flags say {order}, but the pictures are progressive ({seen})"
        if order != idet_order and max(tff, bff) >= 5 and max(tff, bff) >= 2 * min(tff, bff) + 1:
            return idet_order, f"flags say {order}, the pictures {idet_order} ({seen})"
        return order, f"flags say {order} ({seen})"
    if tff + bff >= 2 and tff + bff > prog:
        return idet_order, f"no interlaced flags, but the pictures are {idet_order} ({seen})"
    return "progressive", f"flags say {flags} ({seen})"


def detect(path: Path, stream: av.video.stream.VideoStream, mode: str = "auto", field_rate: bool = False) -> Interlace:
    """Find out about ``path``'s fields (its video ``stream`` opened already) for ``mode``."""
    if mode not in MODES:
        raise InputError(f"--deinterlace must be one of {', '.join(MODES)}, not {mode!r}")
    flags = flag_order(stream)
    verdict = stream.metadata.get(VERDICT_TAG)
    if verdict in VERDICTS and mode != "off":
        return Interlace(flags, None, verdict, "found for the whole file before it was cut", mode, field_rate)
    if mode == "off":
        detected, reason = decide(flags, None)
        return Interlace(flags, None, detected, reason, mode, field_rate)
    try:
        counts, flagged = run_idet(path, stream.index)
    except (av.error.FFmpegError, ValueError) as exc:  # a pixel format no filter takes, a decoder that gave up
        log.debug("idet could not run on %s: %s", path, exc)
        detected, reason = decide(flags, None)
        return Interlace(flags, None, detected, f"{reason}; idet could not look at the pictures", mode, field_rate)
    detected, reason = decide(flags, counts, flagged)
    return Interlace(flags, counts, detected, reason, mode, field_rate)


@dataclass
class Deinterlacer:
    """bwdif over decoded frames, built on the first.  Frame rate: one picture per frame, each with its
    input frame's pts.  Field rate: two per frame, the second midway to the next frame, in a clock twice
    as fine (``time_base``)."""

    interlace: Interlace
    time_base: Fraction  # the input's
    _graph: av.filter.Graph | None = field(default=None, init=False)

    @property
    def output_time_base(self) -> Fraction:
        return self.time_base / 2 if self.interlace.field_rate else self.time_base

    def _build(self, first: av.VideoFrame) -> av.filter.Graph:
        mode = "send_field" if self.interlace.field_rate else "send_frame"
        # deint=all: unflagged interlaced frames (idet found them) are deinterlaced too.
        return _graph(first, self.time_base, ("bwdif", f"mode={mode}:parity={self.interlace.parity}:deint=all"))

    def push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        if frame is None and self._graph is None:
            return []
        if self._graph is None:
            try:
                self._graph = self._build(frame)
            except (av.error.FFmpegError, ValueError) as exc:
                raise UnsupportedError(f"cannot deinterlace {frame.format.name} video: {exc}") from None
        self._graph.vpush(frame)
        return [self._retime(f) for f in _drain(self._graph)]

    def _retime(self, frame: av.VideoFrame) -> av.VideoFrame:
        # bwdif always answers in half the input's clock; in frame mode every pts is even there.
        if frame.pts is not None and not self.interlace.field_rate:
            frame.pts = frame.pts // 2
        frame.time_base = self.output_time_base
        return frame


def output_tags(video_tags: dict[str, str], found: Interlace) -> dict[str, str]:
    """The video tags for the output: a verdict tag (a piece's) says what the output's fields are."""
    if VERDICT_TAG not in video_tags:
        return video_tags
    return {**video_tags, VERDICT_TAG: DEINTERLACED if found.deinterlace else found.detected}
