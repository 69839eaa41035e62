"""Inverse telecine: film pictures back out of 3:2 pulldown video, through FFmpeg's filters.

Two PyAV filter graphs in a row:

1. ``fieldmatch`` (``combmatch=full``) weaves each frame's field with the matching field of the frame
   before or after, so the 2 frames in 5 that 3:2 pulldown wove from two film pictures become whole
   pictures again.  What no neighbour's field can make whole (an orphan field at an edit) it flags as
   still interlaced, and ``bwdif`` with ``deint=interlaced`` deinterlaces those frames alone: nothing
   is left combed, nothing is dropped.  Sections the cadence scan found to be video-rate material
   (:attr:`Telecine.video`) go through ``bwdif`` alone instead, every frame deinterlaced: slow motion
   there combs too faintly for fieldmatch to call it combed, and weaving its fields with a neighbour's
   would mix two moments.  Each section gets its own graph, flushed where the next begins.
2. ``decimate`` (``mixed=1``) drops, of every cycle of 5 frames, the one that repeats its predecessor
   (after matching, each film picture of 3:2 pulldown shows twice once every 5 frames).  A cycle with no
   repeat (video-rate material, a cadence broken by an edit) keeps all 5 frames at the video rate: no
   film picture is lost for a cycle that does not fit.

Decimation cycles are counted from a frame the cadence scan chose (:attr:`Telecine.cycle_start`): the
first frame of a film cycle, so that a cycle never holds parts of two.  The frames before it (fewer than
five) skip decimation.  A piece of a segmented batch run begins on such a frame and so cuts the file on
the same cycles as one pass over it.

Timestamps: frames enter the graphs numbered 0, 1, 2... at the input's nominal rate.  decimate times its
output on a grid of a quarter input frame (4 film frames span 5 video frames); each output frame's time
is that offset from the start of its cycle added to the source time of the cycle's first frame, in a
clock fine enough to hold both exactly (:func:`output_clock`).  So timing stays tied to the source's
own timestamps, cycle by cycle, and audio (copied untouched) stays in sync.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from fractions import Fraction

import av

from vidsr.errors import UnsupportedError
from vidsr.media.cadence import CYCLE
from vidsr.media.filtergraph import build, drain
from vidsr.media.pyav import fraction

FILM_RATIO = Fraction(CYCLE - 1, CYCLE)  # 4 film pictures for every 5 video frames


@dataclass(frozen=True)
class Telecine:
    """What inverse telecine is told: the field order and where the decimation cycles begin."""

    order: str  # tff or bff: fieldmatch's order, bwdif's parity
    cycle_start: int = 0  # frames with index % 5 == this begin a cycle; those before skip decimation
    rate: Fraction = Fraction(30000, 1001)  # the input's nominal frame rate
    video: tuple[tuple[int, int], ...] = ()  # frame ranges [first, end) of video-rate material

    @property
    def film_rate(self) -> Fraction:
        return self.rate * FILM_RATIO

    def is_video(self, index: int) -> bool:
        return any(first <= index < end for first, end in self.video)

    def tag(self, first_frame: int) -> str:
        """This, for a piece of the file that begins at frame ``first_frame`` (see :func:`from_tag`)."""
        video = ",".join(f"{max(0, a - first_frame)}-{b - first_frame}" for a, b in self.video if b > first_frame)
        cycle_start = (self.cycle_start - first_frame) % CYCLE
        return f"cycle_start={cycle_start} rate={self.rate}" + (f" video={video}" if video else "")


def from_tag(order: str, tag: str) -> Telecine:
    """The :class:`Telecine` a piece was given by :meth:`Telecine.tag`; ValueError if it is damaged."""
    values = dict(item.split("=", 1) for item in tag.split() if "=" in item)
    try:
        video = tuple((int(a), int(b)) for a, b in (r.split("-") for r in values.get("video", "").split(",") if r))
        return Telecine(order, int(values["cycle_start"]), Fraction(values["rate"]), video)
    except (KeyError, ZeroDivisionError) as exc:
        raise ValueError(f"{tag!r}: {exc}") from None


def output_clock(time_base: Fraction, rate: Fraction) -> Fraction:
    """The coarsest clock holding both the input's timestamps and a quarter of its frame interval (the
    unit decimate times film and video-rate frames in): 1/120000 s for 29.97 frames in 1/1000 or 1/30000."""
    quarter = 1 / (4 * rate)
    return Fraction(
        math.gcd(time_base.numerator, quarter.numerator), math.lcm(time_base.denominator, quarter.denominator)
    )


@dataclass
class InverseTelecine:
    """Decoded frames in, film frames out (each with its pts in :attr:`output_time_base`)."""

    telecine: Telecine
    time_base: Fraction  # the input's
    _section: av.filter.Graph | None = field(default=None, init=False)  # the current section's graph
    _section_is_video: bool = field(default=False, init=False)
    _decimator: av.filter.Graph | None = field(default=None, init=False)
    _pushed: int = field(default=0, init=False)  # frames in
    _matched: int = field(default=0, init=False)  # frames out of the section graphs
    _times: dict[int, Fraction] = field(default_factory=dict, init=False)  # source seconds by frame index
    _last_time: Fraction | None = field(default=None, init=False)

    @property
    def output_time_base(self) -> Fraction:
        return output_clock(self.time_base, self.telecine.rate)

    def push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        """Frames out for ``frame`` in (often none: the filters look ahead); None flushes."""
        if frame is None:
            if self._decimator is None:
                return []
            return self._decimate(self._end_section(), flush=True)
        video = self.telecine.is_video(self._pushed)
        out: list[av.VideoFrame] = []
        if self._section is not None and video != self._section_is_video:
            out = self._decimate(self._end_section(), flush=False)  # its last frames, before the next's
        if self._section is None:
            try:
                self._section = self._build_section(frame, video)
                self._section_is_video = video
                self._decimator = self._decimator or self._build_decimator(frame)
            except (av.error.FFmpegError, ValueError) as exc:
                raise UnsupportedError(f"cannot inverse telecine {frame.format.name} video: {exc}") from None
        self._times[self._pushed] = self._source_time(frame)
        frame.pts, frame.time_base = self._pushed, 1 / self.telecine.rate
        self._pushed += 1
        self._section.vpush(frame)
        return out + self._decimate(drain(self._section), flush=False)

    def _end_section(self) -> list[av.VideoFrame]:
        """Flush the current section's graph: the frames it held back for their successors."""
        if self._section is None:
            return []
        self._section.vpush(None)
        out = drain(self._section)
        self._section = None
        return out

    def _source_time(self, frame: av.VideoFrame) -> Fraction:
        if frame.pts is None:  # none stated: one nominal frame after the last
            time = (self._last_time or Fraction(0)) + (1 / self.telecine.rate if self._last_time is not None else 0)
        else:
            time = frame.pts * self.time_base
        self._last_time = time
        return time

    def _build_section(self, first: av.VideoFrame, video: bool) -> av.filter.Graph:
        order, rate = self.telecine.order, self.telecine.rate
        if video:  # every frame two moments: deinterlaced whole, as plain interlaced input is
            return build(first, 1 / rate, ("bwdif", f"mode=send_frame:parity={order}:deint=all"), rate=rate)
        return build(
            first,
            1 / rate,
            ("fieldmatch", f"order={order}:combmatch=full"),
            ("bwdif", f"mode=send_frame:parity={order}:deint=interlaced"),
            rate=rate,
        )

    def _build_decimator(self, first: av.VideoFrame) -> av.filter.Graph:
        return build(first, 1 / self.telecine.rate, ("decimate", "mixed=1"), rate=self.telecine.rate)

    def _decimate(self, matched: list[av.VideoFrame], *, flush: bool) -> list[av.VideoFrame]:
        assert self._decimator is not None
        out: list[av.VideoFrame] = []
        for frame in matched:
            index = self._matched
            self._matched += 1
            if index < self.telecine.cycle_start:
                out.append(self._retime(frame, self._times.pop(index)))  # before the first cycle
                continue
            frame.pts, frame.time_base = index - self.telecine.cycle_start, 1 / self.telecine.rate
            self._decimator.vpush(frame)
            out += [self._cycle_time(f) for f in drain(self._decimator)]
        if flush:
            with contextlib.suppress(av.error.FFmpegError):  # nothing ever reached it: nothing to flush
                self._decimator.vpush(None)
            out += [self._cycle_time(f) for f in drain(self._decimator)]
        return out

    def _cycle_time(self, frame: av.VideoFrame) -> av.VideoFrame:
        """decimate's time (from its first frame) as the source time of the frame's cycle plus the offset
        within the cycle: exact for a constant rate, and tied to the source's clock cycle by cycle."""
        since_start = frame.pts * fraction(frame.time_base)
        cycle_length = CYCLE / self.telecine.rate
        cycle = math.floor(since_start / cycle_length)
        first = self.telecine.cycle_start + CYCLE * cycle
        start = self._times.get(first)
        if start is None:  # a cycle start we never saw (cannot happen for frames decimate had): estimate
            start = self._times[min(self._times)] if self._times else Fraction(0)
        for stale in [i for i in self._times if i < first]:
            del self._times[stale]
        return self._retime(frame, start + since_start - cycle * cycle_length)

    def _retime(self, frame: av.VideoFrame, seconds: Fraction) -> av.VideoFrame:
        clock = self.output_time_base
        frame.pts = round(seconds / clock)
        frame.time_base = clock
        return frame
