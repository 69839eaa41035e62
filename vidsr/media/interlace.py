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

Film transferred to video with 3:2 pulldown looks interlaced to both, but deinterlacing it would blend
two film pictures into 2 frames of every 5.  So where the first seconds are not plainly progressive (or
idet saw repeated fields, pulldown's mark), the cadence scan (:mod:`.cadence`) cuts the file into
sections; film found anywhere is inverse telecined (:mod:`.telecine`) instead of deinterlaced.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vidsr.errors import InputError, UnsupportedError
from vidsr.media import cadence
from vidsr.media.filtergraph import build, drain
from vidsr.media.metadata import FIELD_ORDER_NAMES, FIELD_PROGRESSIVE
from vidsr.media.pyav import fraction, open_container
from vidsr.media.telecine import Telecine, from_tag

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off", "ivtc")
DETECT_SECONDS = 2.0  # how much of the start idet looks at
DETECT_FRAMES = 60  # and at most this many frames (a 60i second is 30 frames)
# A video stream tag with a verdict made elsewhere: the pieces of a segmented batch run carry the one made
# for the whole file (each piece alone could look otherwise: a still start, a container flag NUT drops).
# A piece's upscaled output carries it too, set to what its fields are then (progressive, once deinterlaced).
VERDICT_TAG = "vidsr_fields"
VERDICTS = ("tff", "bff", "progressive")
DEINTERLACED = "deinterlaced"  # the verdict tag of an output whose fields were woven into frames
# Beside the verdict, a piece of a telecined file carries where its decimation cycles begin, the whole
# file's frame rate and its video-rate sections (telecine.Telecine.tag), so it is handled, frame for
# frame, as one pass over the whole file would handle it.
CADENCE_TAG = "vidsr_cadence"
# AVFieldOrder values, by which field comes first in time.
_TOP_FIRST, _BOTTOM_FIRST = {2, 4}, {3, 5}


@dataclass(frozen=True)
class Interlace:
    """What was found out about the input's fields, and what is done about them."""

    flags: str  # what the stream says: tff, bff, progressive, unknown
    idet: dict[str, int] | None  # idet's counts over the first frames (None: not run)
    detected: str  # the verdict: tff, bff or progressive
    reason: str  # why, in words
    mode: str = "auto"  # asked: auto, on, off, ivtc
    field_rate: bool = False
    telecine: Telecine | None = None  # 3:2 pulldown found (or inverse telecine asked for): how to undo it
    sections: tuple[cadence.Section, ...] = ()  # what the cadence scan found, where it ran

    @property
    def ivtc(self) -> bool:
        """Inverse telecine rather than deinterlace."""
        return self.telecine is not None and self.mode in ("auto", "ivtc")

    @property
    def deinterlace(self) -> bool:
        """Whether the fields are woven into whole frames (by bwdif or by inverse telecine)."""
        return self.mode == "on" or self.ivtc or (self.mode == "auto" and self.detected != "progressive")

    @property
    def verdict(self) -> str:
        """In a word or two: progressive, interlaced tff, telecined bff."""
        if self.telecine is not None and self.mode != "off":
            return f"telecined {self.telecine.order}"
        return "progressive" if self.detected == "progressive" else f"interlaced {self.detected}"

    @property
    def parity(self) -> str:
        """The field order bwdif is told (top first where nothing says otherwise, as FFmpeg assumes)."""
        return "bff" if self.detected == "bff" or (self.detected == "progressive" and self.flags == "bff") else "tff"

    @property
    def done(self) -> str:
        if not self.deinterlace:
            return "none"
        if self.ivtc:
            assert self.telecine is not None
            t = self.telecine
            return (
                f"inverse telecine {t.order} (fieldmatch + decimate), {float(t.rate):.3f} -> "
                f"{float(t.film_rate):.3f} fps; frames no field matches deinterlaced (bwdif)"
            )
        return f"bwdif {self.parity}, " + ("one frame per field (double rate)" if self.field_rate else "frame rate")

    def describe(self) -> dict[str, Any]:
        t = self.telecine if self.ivtc else None
        return {
            "flags": self.flags,
            "idet": self.idet,
            "detected": self.detected,
            "verdict": self.verdict,
            "reason": self.reason,
            "mode": self.mode,
            "deinterlaced": self.deinterlace,
            "field_rate": self.deinterlace and self.field_rate and not self.ivtc,
            "ivtc": self.ivtc,
            "cycle_start": t.cycle_start if t else None,
            "done": self.done,
            "sections": [s.describe() for s in self.sections],
        }


def flag_order(stream: av.video.stream.VideoStream) -> str:
    order = stream.codec_context.field_order if stream.codec_context else 0
    if order in _TOP_FIRST:
        return "tff"
    if order in _BOTTOM_FIRST:
        return "bff"
    return FIELD_ORDER_NAMES[FIELD_PROGRESSIVE] if order == FIELD_PROGRESSIVE else "unknown"


def run_idet(
    path: Path, index: int, *, seconds: float = DETECT_SECONDS, frames: int = DETECT_FRAMES
) -> tuple[dict[str, int], int]:
    """idet's multi-frame counts (tff, bff, progressive, undetermined) over the start of ``path``, its
    count of frames repeating a field of the frame before (``repeated``: 3:2 pulldown's mark, 2 in 5),
    and how many frames carried the decoder's interlaced flag."""
    counts = {"tff": 0, "bff": 0, "progressive": 0, "undetermined": 0, "repeated": 0}
    flagged = 0
    graph = None
    last: av.VideoFrame | None = None
    with open_container(path) as container:
        stream = container.streams[index]
        seen = 0
        try:
            for frame in container.decode(stream):
                if graph is None:
                    graph = build(frame, stream.time_base, ("idet", None))
                flagged += bool(frame.interlaced_frame)
                graph.vpush(frame)
                for out in drain(graph):
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
            for out in drain(graph):
                last = out
    if last is not None:
        for key in ("tff", "bff", "progressive", "undetermined"):
            counts[key] = round(float(last.metadata.get(f"lavfi.idet.multiple.{key}", 0)))
        counts["repeated"] = sum(
            round(float(last.metadata.get(f"lavfi.idet.repeated.{key}", 0))) for key in ("top", "bottom")
        )
    return counts, flagged


def decide(flags: str, idet: dict[str, int] | None, flagged_frames: int = 0) -> tuple[str, str]:
    """The verdict (tff, bff, progressive) and its reason, from the flags and idet's counts."""
    interlaced_flags = flags in ("tff", "bff") or flagged_frames > 0
    if idet is None:
        if interlaced_flags:
            return (flags if flags in ("tff", "bff") else "tff"), f"flags say {flags}"
        return "progressive", f"flags say {flags}"
    tff, bff, prog = idet["tff"], idet["bff"], idet["progressive"]
    # idet leaves most frames of still or soft footage undetermined: said, so "0 tff, 0 bff, 0
    # progressive" reads as a verdict on nothing, not as a scan that failed.
    unsure = idet.get("undetermined", 0)
    frames = tff + bff + prog + unsure
    seen = f"idet: {tff} tff, {bff} bff, {prog} progressive, {unsure} undetermined of the first {frames} frames"
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


def detect(
    path: Path,
    stream: av.video.stream.VideoStream,
    mode: str = "auto",
    field_rate: bool = False,
    scan: cadence.ScanOptions | None = None,
) -> Interlace:
    """Find out about ``path``'s fields (its video ``stream`` opened already) for ``mode``."""
    if mode not in MODES:
        raise InputError(f"--deinterlace must be one of {', '.join(MODES)}, not {mode!r}")
    flags = flag_order(stream)
    verdict = stream.metadata.get(VERDICT_TAG)
    if verdict in VERDICTS and mode != "off":
        telecine = _tagged_telecine(stream, verdict, mode)
        return Interlace(flags, None, verdict, "found for the whole file before it was cut", mode, field_rate, telecine)
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
    found = Interlace(flags, counts, detected, reason, mode, field_rate)
    plainly_progressive = detected == "progressive" and counts["repeated"] < 2
    if mode == "on" or (mode == "auto" and plainly_progressive):
        return found  # as before the cadence scan existed: nothing there for it to find
    return _with_cadence(found, path, stream, scan)


def _rate(stream: av.video.stream.VideoStream) -> Fraction:
    return fraction(stream.average_rate) or fraction(stream.guessed_rate) or Fraction(30000, 1001)


def _with_cadence(
    found: Interlace, path: Path, stream: av.video.stream.VideoStream, options: cadence.ScanOptions | None
) -> Interlace:
    """``found`` with the cadence scan's sections, and inverse telecine where it found film."""
    try:
        scanned = cadence.scan(path, stream.index, options)
    except (av.error.FFmpegError, ValueError) as exc:
        log.debug("the cadence scan could not run on %s: %s", path, exc)
        scanned = None
    sections = scanned.sections if scanned else ()
    film = scanned.telecined if scanned else None
    rate = _rate(stream)
    if film is None:
        if found.mode != "ivtc":
            return replace(found, sections=sections)
        telecine = Telecine(found.parity, 0, rate)
        reason = f"--deinterlace ivtc, though no 3:2 cadence was found; {found.reason}"
        return replace(found, detected=found.parity, reason=reason, telecine=telecine, sections=sections)
    order = found.detected if found.detected != "progressive" else (film.order or "tff")
    frames = sum(s.end - s.first for s in sections if s.kind == cadence.TELECINED)
    looked = sum(s.end - s.first for s in sections)
    regular = f", cadence regular in {film.regular:.0%} of its matched frames" if film.regular is not None else ""
    reason = (
        f"film with 3:2 pulldown in {frames} of {looked} frames looked at (first from {film.start:.2f} s{regular}); "
        f"{found.reason}"
    )
    video = tuple((s.first, s.end) for s in sections if s.kind == cadence.INTERLACED)
    telecine = Telecine(order, film.cycle_start or 0, rate, video)
    return replace(found, detected=order, reason=reason, telecine=telecine, sections=sections)


def _tagged_telecine(stream: av.video.stream.VideoStream, verdict: str, mode: str) -> Telecine | None:
    """A piece's inverse telecine settings, as the whole file's scan left them in its tags."""
    tag = stream.metadata.get(CADENCE_TAG)
    order = verdict if verdict in ("tff", "bff") else "tff"
    if tag is None:
        return Telecine(order, 0, _rate(stream)) if mode == "ivtc" else None
    try:
        return from_tag(order, tag)
    except ValueError:
        raise InputError(f"damaged {CADENCE_TAG} tag {tag!r} on a piece of a segmented run") from None


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
        return build(first, self.time_base, ("bwdif", f"mode={mode}:parity={self.interlace.parity}:deint=all"))

    def push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        if frame is None and self._graph is None:
            return []
        if self._graph is None:
            try:
                self._graph = self._build(frame)
            except (av.error.FFmpegError, ValueError) as exc:
                raise UnsupportedError(f"cannot deinterlace {frame.format.name} video: {exc}") from None
        self._graph.vpush(frame)
        return [self._retime(f) for f in drain(self._graph)]

    def _retime(self, frame: av.VideoFrame) -> av.VideoFrame:
        # bwdif always answers in half the input's clock; in frame mode every pts is even there.
        if frame.pts is not None and not self.interlace.field_rate:
            frame.pts = frame.pts // 2
        frame.time_base = self.output_time_base
        return frame


def output_tags(video_tags: dict[str, str], found: Interlace) -> dict[str, str]:
    """The video tags for the output: a verdict tag (a piece's) says what the output's fields are; the
    cadence tag stays with the piece (its output has no cadence left)."""
    if VERDICT_TAG not in video_tags:
        return video_tags
    kept = {k: v for k, v in video_tags.items() if k != CADENCE_TAG}
    return {**kept, VERDICT_TAG: DEINTERLACED if found.deinterlace else found.detected}
