"""Film inside video: find the 3:2 pulldown cadence of telecined material, section by section.

NTSC film transfers spread 4 film pictures over 5 interlaced frames (10 fields: 2, 3, 2, 3 per picture),
so of every 5 frames 3 are whole pictures and 2 are woven from two pictures.  Tapes switch between film
and video-rate material (a title shot on video, then the film; an edit that breaks the cadence), so the
verdict is made per section, not once per file.

One pass of FFmpeg's own filters gives three witnesses per frame (``buffer -> idet -> fieldmatch``):

* ``fieldmatch`` (with ``combmatch=full``) weaves each frame's field with the other field of the
  previous, same or next frame, keeps the weave that is not combed, and flags the frame still combed when
  none is.  Telecined: 2 frames in 5 are *matched* (changed by a weave with a neighbour), none stays
  combed.  Video-rate interlaced: every moving frame stays combed (its two fields never make a picture).
  Progressive: nothing changes, nothing is combed.
* ``idet``'s repeated-field call: telecine repeats one top and one bottom field every 5 frames.
* ``idet``'s multi-frame call (tff, bff, progressive) gives the field order.

Frames are judged in blocks of :data:`BLOCK` (two cadence cycles), and runs of blocks with the same
verdict form :class:`Section` s.  A telecined section's matched frames sit at two neighbouring positions
of the 5-frame cycle; the frame three after the first of them begins a film cycle (its own picture,
after a frame holding only the previous picture's fields): that residue modulo 5 is where decimation
cycles start (:attr:`Section.cycle_start`), and where a file may be cut into pieces
(:meth:`CadenceScan.clean_cut`).

The first :attr:`ScanOptions.full_seconds` are looked at frame by frame, the rest in windows reached by
seeking (sections there are placed to the window).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from vidsr.media.filtergraph import build, drain
from vidsr.media.pyav import fraction, open_container

log = logging.getLogger(__name__)

CYCLE = 5  # 3:2 pulldown repeats every 5 video frames (4 film pictures)
BLOCK = 2 * CYCLE  # frames judged together: two cycles show the cadence however it is phased
PROGRESSIVE, INTERLACED, TELECINED = "progressive", "interlaced", "telecined"
# Mean absolute luma difference (8-bit levels) above which a frame counts as changed: by a weave with
# its neighbour's field (matched) or from the previous frame (moving).  Coding noise of a good encode
# stays well under it; a field from another film picture is tens of levels away in moving film.
CHANGED_LEVEL = 1.0
MIN_MOVING = 3  # a block with fewer moving frames shows nothing of its fields: its neighbours decide
MIN_MATCHED = 2  # telecine matches 4 frames a block; slow video-rate material a few at random
MIN_REPEATS = 2  # telecine repeats 4 fields a block (2 a cycle); one may fall to an edit


@dataclass(frozen=True)
class ScanOptions:
    """How much of a file the cadence scan looks at."""

    full_seconds: float = 60.0  # from the start, every frame (sections exact to the frame)
    window_seconds: float = 4.0  # then windows this long...
    every_seconds: float = 60.0  # ...this far apart, reached by seeking


@dataclass(frozen=True)
class FrameFields:
    """What the filters saw of one frame."""

    index: int  # position in the file (estimated from its time in windows reached by seeking)
    time: float  # seconds from the start of the stream
    moving: bool  # differs from the frame before
    combed: bool  # still combed after field matching: no neighbour's field makes it a picture
    matched: bool  # changed by field matching: woven from two film pictures, whole once matched
    repeated: str  # idet: the field repeating the previous frame's (top, bottom, neither)
    order: str  # idet's multi-frame call: tff, bff, progressive, undetermined


@dataclass(frozen=True)
class Section:
    """A run of frames of one kind."""

    kind: str  # progressive, interlaced, telecined
    first: int  # frame index
    end: int  # one past the last frame
    start: float  # seconds
    stop: float
    order: str | None = None  # interlaced and telecined: tff or bff, as idet saw them
    cycle_start: int | None = None  # telecined: frames whose index % 5 is this begin a film cycle
    regular: float | None = None  # telecined: share of matched frames at the cadence's two positions

    @property
    def verdict(self) -> str:
        return self.kind if self.order is None else f"{self.kind} {self.order}"

    def describe(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CadenceScan:
    frames: tuple[FrameFields, ...]
    sections: tuple[Section, ...]
    complete: bool  # every frame was looked at (not windows)

    @property
    def telecined(self) -> Section | None:
        """The first telecined section: its cadence anchors the decimation cycles of the whole file."""
        return next((s for s in self.sections if s.kind == TELECINED), None)

    def section_at(self, index: int) -> Section | None:
        return next((s for s in self.sections if s.first <= index < s.end), None)

    def clean_cut(self, index: int, cycle_start: int) -> bool:
        """Whether a piece may begin at frame ``index`` and come out as it would in one pass.

        The cut must fall on a decimation cycle boundary of the whole file (``index % 5 ==
        cycle_start``), away from a section change, and, in film, between two whole frames (neither
        matched nor combed): then field matching needs nothing across the cut and no film picture has
        fields on both sides."""
        if not self.complete or index % CYCLE != cycle_start % CYCLE or index < CYCLE:
            return False
        if index + CYCLE > len(self.frames):
            return False
        section = self.section_at(index)
        if (
            section is None
            or section is not self.section_at(index - CYCLE)
            or section is not self.section_at(index + CYCLE - 1)
        ):
            return False
        if section.kind != TELECINED:
            return True
        before, after = self.frames[index - 1], self.frames[index]
        return not (before.matched or before.combed or after.matched or after.combed)


def scan(path: Path, index: int, options: ScanOptions | None = None) -> CadenceScan:
    """Look at the fields of stream ``index`` of ``path`` and cut it into sections."""
    options = options or ScanOptions()
    frames: list[FrameFields] = []
    complete = True
    with open_container(path) as container:
        stream = container.streams[index]
        stream.thread_type = "AUTO"
        time_base = fraction(stream.time_base) or Fraction(1, 1000)
        rate = fraction(stream.average_rate) or fraction(stream.guessed_rate) or Fraction(30000, 1001)
        start = stream.start_time or 0
        duration = float(stream.duration * time_base) if stream.duration else (container.duration or 0) / 1e6
        spans = [(0.0, options.full_seconds)]
        at = options.full_seconds + options.every_seconds
        while at < duration:
            spans.append((at, at + options.window_seconds))
            complete = False
            at += options.every_seconds
        for begin, end in spans:
            if begin > 0:
                with contextlib.suppress(av.error.FFmpegError):
                    container.seek(start + int(begin / time_base), stream=stream, backward=True)
            window = WindowScan(time_base, rate, start)
            for decoded in _decode(container, stream, end, time_base, start):
                frames += window.push(decoded)
            frames += window.push(None)
            if not frames and begin == 0:
                break
    frames.sort(key=lambda f: f.index)
    unique = list({f.index: f for f in frames}.values())
    return CadenceScan(tuple(unique), sections(unique, rate), complete and _contiguous(unique))


def _contiguous(frames: list[FrameFields]) -> bool:
    return all(f.index == i for i, f in enumerate(frames))


def _decode(container, stream, end: float, time_base: Fraction, start: int) -> Iterator[av.VideoFrame]:
    try:
        for frame in container.decode(stream):
            if frame.pts is not None and float((frame.pts - start) * time_base) >= end:
                return
            yield frame
    except av.error.FFmpegError as exc:
        log.debug("cadence scan stopped early: %s", exc)


class WindowScan:
    """The filters over a run of consecutive frames (push decoded frames in order, None at the end),
    and what they say of each frame (:class:`FrameFields`, a frame or two later)."""

    def __init__(self, time_base: Fraction, rate: Fraction, start: int) -> None:
        self.time_base, self.rate, self.start = time_base, rate, start
        self.graph: av.filter.Graph | None = None
        self.first: int | None = None  # the file index of the window's first frame
        self.count = 0
        self.pending: dict[int, tuple[np.ndarray, bool, float]] = {}  # luma, moving, time by local index
        self.previous: np.ndarray | None = None
        self.scale = 1.0

    def push(self, frame: av.VideoFrame | None) -> list[FrameFields]:
        if frame is None:
            if self.graph is None:
                return []
            with contextlib.suppress(av.error.FFmpegError):
                self.graph.vpush(None)
            return self._pull()
        time = float(((frame.pts if frame.pts is not None else self.start) - self.start) * self.time_base)
        if self.first is None:
            self.first = round(time * self.rate)
            self.graph = self._build(frame)
            self.scale = float(1 << (max(c.bits for c in frame.format.components) - 8))
        luma = _luma(frame)
        moving = self.previous is not None and _changed(luma, self.previous, self.scale)
        self.previous = luma
        self.pending[self.count] = (luma, moving, time)
        frame.pts, frame.time_base = self.count, 1 / self.rate  # fieldmatch reads nothing but the order
        self.count += 1
        self.graph.vpush(frame)
        return self._pull()

    def _build(self, first: av.VideoFrame) -> av.filter.Graph:
        return build(first, 1 / self.rate, ("idet", None), ("fieldmatch", "combmatch=full"), rate=self.rate)

    def _pull(self) -> list[FrameFields]:
        found = []
        assert self.graph is not None and self.first is not None
        for out in drain(self.graph):
            luma, moving, time = self.pending.pop(out.pts)
            meta = out.metadata
            found.append(
                FrameFields(
                    index=self.first + out.pts,
                    time=time,
                    moving=moving,
                    combed=bool(out.interlaced_frame),
                    matched=_changed(_luma(out), luma, self.scale),
                    repeated=meta.get("lavfi.idet.repeated.current_frame", "neither"),
                    order=meta.get("lavfi.idet.multiple.current_frame", "undetermined"),
                )
            )
        return found


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """Every other column of the luma plane (rows all kept: each field is every other row)."""
    plane = frame.planes[0]
    dtype = np.uint16 if max(c.bits for c in frame.format.components) > 8 else np.uint8
    item = np.dtype(dtype).itemsize
    view = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // item)[:, : plane.width : 2]
    return view.astype(np.int32)


def _changed(a: np.ndarray, b: np.ndarray, scale: float) -> bool:
    return a.shape == b.shape and float(np.abs(a - b).mean()) > CHANGED_LEVEL * scale


# -- sections ----------------------------------------------------------------------------------------
def sections(frames: list[FrameFields], rate: Fraction) -> tuple[Section, ...]:
    """Blocks of frames judged, runs of one verdict joined, edges moved to the frame where it changes.
    Frames between windows belong to the section either side when both sides agree, else to none."""
    blocks = [stretch[i : i + BLOCK] for stretch in _stretches(frames) for i in range(0, len(stretch), BLOCK)]
    kinds = [_judge(b) for b in blocks]
    known = [k for k in kinds if k is not None]
    fill = known[0] if known else PROGRESSIVE
    for i, kind in enumerate(kinds):  # a still block goes with the one before it (the first, after it)
        kinds[i] = fill = kind or fill
    runs: list[list[FrameFields]] = []
    run_kinds: list[str] = []
    for block, kind in zip(blocks, kinds, strict=True):
        if run_kinds and run_kinds[-1] == kind:  # across a gap between windows too: the same on both sides
            runs[-1] += block
        else:
            runs.append(list(block))
            run_kinds.append(kind)
    _move_edges(runs, run_kinds)
    runs, run_kinds = _split_at_breaks(runs, run_kinds)
    step = 1 / float(rate)
    return tuple(_section(run, kind, step) for run, kind in zip(runs, run_kinds, strict=True) if run)


def _stretches(frames: list[FrameFields]) -> list[list[FrameFields]]:
    """Runs of consecutive frames (the start, then each window reached by seeking)."""
    out: list[list[FrameFields]] = []
    for f in frames:
        if out and f.index == out[-1][-1].index + 1:
            out[-1].append(f)
        else:
            out.append([f])
    return out


def _judge(block: list[FrameFields]) -> str | None:
    """A block's kind.  Film repeats a field twice every 5 frames; video-rate material never does, and
    either stays combed or (moving slowly) is changed by weaves with its neighbours all the same."""
    moving = [f for f in block if f.moving]
    if len(moving) < MIN_MOVING:
        return None
    repeats = sum(f.repeated in ("top", "bottom") for f in moving)
    if 2 * sum(f.combed for f in moving) >= len(moving):
        return INTERLACED
    if repeats >= MIN_REPEATS:
        return TELECINED
    if sum(f.matched for f in moving) >= MIN_MATCHED:
        return INTERLACED  # fields that match their neighbours' but never repeat: slow video, not film
    return PROGRESSIVE


def _speaks_for(f: FrameFields, kind: str, film_phase: int | None) -> bool:
    """Whether frame ``f`` is evidence of ``kind`` (progressive has none: it is the absence of the others).
    ``film_phase``: the cycle start of the film next to it, to tell its matched frames (2 and 3 after a
    cycle start) from a video frame's."""
    on_phase = film_phase is not None and (f.index - film_phase) % CYCLE in (2, 3)
    if kind == TELECINED:  # a repeated field: slow video matches its neighbours' fields too, but never repeats
        return f.repeated in ("top", "bottom")
    if kind == INTERLACED:
        return f.combed or (f.matched and not on_phase)
    return False


def _move_edges(runs: list[list[FrameFields]], kinds: list[str]) -> None:
    """Blocks put an edge on a multiple of :data:`BLOCK`; move it, within a block either side, to where
    the fewest frames speak for the kind of the other side (film ending at a cycle's end where that
    leaves a choice)."""
    for i in range(len(runs) - 1):
        a, b = runs[i], runs[i + 1]
        if a[-1].index + 1 != b[0].index:
            continue  # a gap between windows: nothing to move
        phase = next((_cadence(r)[0] for r, k in ((a, kinds[i]), (b, kinds[i + 1])) if k == TELECINED), None)
        near = a[-BLOCK:] + b[:BLOCK]
        before = [_speaks_for(f, kinds[i + 1], phase) for f in near]  # wrong on a's side
        after = [_speaks_for(f, kinds[i], phase) for f in near]  # wrong on b's side
        costs = [sum(before[:k]) + sum(after[k:]) for k in range(len(near) + 1)]
        best = [k for k, c in enumerate(costs) if c == min(costs)]
        on_cycle = [k for k in best if phase is not None and k < len(near) and near[k].index % CYCLE == phase]
        k = (on_cycle or best)[0]
        edge = near[k].index if k < len(near) else near[-1].index + 1
        both = a + b
        a[:] = [f for f in both if f.index < edge]
        b[:] = [f for f in both if f.index >= edge]


def _split_at_breaks(runs: list[list[FrameFields]], kinds: list[str]) -> tuple[list[list[FrameFields]], list[str]]:
    """A telecined run whose cadence changes phase (an edit in the film, or a splice of two transfers)
    becomes one section per phase, split at the first frame off the old phase: an orphan field (combed)
    or a frame matched where the old cadence has whole pictures."""
    out_runs: list[list[FrameFields]] = []
    out_kinds: list[str] = []
    for run, kind in zip(runs, kinds, strict=True):
        while kind == TELECINED and (edge := _phase_break(run)) is not None:
            out_runs.append(run[:edge])
            out_kinds.append(kind)
            run = run[edge:]
        out_runs.append(run)
        out_kinds.append(kind)
    return out_runs, out_kinds


def _phase_break(run: list[FrameFields]) -> int | None:
    """Where in ``run`` the cadence of its first cycles stops holding (a position in ``run``), or None."""
    blocks = [run[i : i + BLOCK] for i in range(0, len(run), BLOCK)]
    phase = None
    for n, block in enumerate(blocks):
        if not any(f.matched for f in block):
            continue  # a still block says nothing of the phase
        here, _ = _cadence(block)
        if phase is None:
            phase = here
        elif here != phase:
            # the break lies in this block or at the end of the one before: the first frame off phase
            near = [f for b in blocks[max(0, n - 1) : n + 1] for f in b]
            for f in near:
                off = f.matched and (f.index - phase) % CYCLE not in (2, 3)
                if f.combed or off:
                    return run.index(f) if run.index(f) > 0 else None
            return run.index(block[0])
    return None


def _section(run: list[FrameFields], kind: str, step: float) -> Section:
    order = None
    if kind != PROGRESSIVE:
        votes = Counter(f.order for f in run if f.order in ("tff", "bff"))
        order = "bff" if votes["bff"] > votes["tff"] else "tff"
    cycle_start = regular = None
    if kind == TELECINED:
        cycle_start, regular = _cadence(run)
    return Section(kind, run[0].index, run[-1].index + 1, run[0].time, run[-1].time + step, order, cycle_start, regular)


def _cadence(run: list[FrameFields]) -> tuple[int, float]:
    """Where film cycles begin (index modulo 5) and how regular the cadence is.  The matched frames of a
    cycle are neighbours (positions 2 and 3 from the cycle's first frame): the pair of residues holding
    most of them says where, their share how regular."""
    residues = Counter(f.index % CYCLE for f in run if f.matched)
    total = sum(residues.values())
    if not total:
        return 0, 0.0
    first = max(range(CYCLE), key=lambda r: (residues[r] + residues[(r + 1) % CYCLE], -r))
    share = (residues[first] + residues[(first + 1) % CYCLE]) / total
    return (first + 3) % CYCLE, round(share, 3)
