"""Where a run's time goes: seconds per pipeline stage, and start-up apart from the steady state.

The stages run in three threads (:mod:`vidsr.pipeline`): the decode thread ``decode`` and
``planes`` (decoded frame -> Y'CbCr planes), the caller's thread ``upload`` and ``model``, the
encode thread ``download`` (results to host memory), ``frames`` (planes -> encoder frames) and
``encode`` (the encoder and the muxer).  Each stage is timed by the one thread that runs it, so
the counters need no lock.  On CUDA the model's kernels run asynchronously: ``model`` is the
host's time to queue them and ``download`` includes waiting for them; likewise an encoder with
threads of its own (libx264's frame threads) does most of its work outside ``encode``.

A stage whose seconds come near the run's wall time is what bounds it; the sum exceeds the wall
time by however much the threads overlapped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STAGES = ("decode", "planes", "upload", "model", "download", "frames", "encode")


@dataclass
class StageClock:
    """Seconds per stage, and when the first frame and the first batch were written.

    ``started``: when the run began for the user (the CLI passes its process's start, so
    ``startup_s`` counts the imports and model loading too)."""

    started: float = field(default_factory=time.perf_counter)
    batch: int = 1  # frames in the first batch: the steady state starts once they are written
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    first_frame_at: float | None = None
    steady_from: float | None = None
    ended: float | None = None
    marks: dict[str, float] = field(default_factory=dict)  # named moments of the start-up, in order

    def mark(self, name: str, at: float | None = None) -> None:
        """``name`` happened now (or ``at``): start-up is reported as the time between marks."""
        self.marks[name] = time.perf_counter() if at is None else at

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        begun = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - begun

    def frame_written(self) -> None:
        now = time.perf_counter()
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = now
        if self.frames == self.batch:
            self.steady_from = now

    def finish(self) -> None:
        self.ended = time.perf_counter()

    @property
    def startup_s(self) -> float | None:
        """From the start to the first output frame written: loading, compiling, the first batch."""
        return None if self.first_frame_at is None else self.first_frame_at - self.started

    @property
    def steady_fps(self) -> float | None:
        """Frames a second after the first batch (None when the run had no second batch)."""
        if self.steady_from is None or self.ended is None or self.frames <= self.batch:
            return None
        span = self.ended - self.steady_from
        return (self.frames - self.batch) / span if span > 0 else None

    @property
    def startup_phases(self) -> dict[str, float]:
        """Start-up by phase: seconds from the previous mark (or the start) to each mark, then to the
        first frame written, e.g. ``{"model ready": 3.1, "input open": 0.4, "first frame": 1.2}``."""
        moments = sorted(self.marks.items(), key=lambda item: item[1])
        if self.first_frame_at is not None:
            moments.append(("first frame", self.first_frame_at))
        phases, previous = {}, self.started
        for name, at in moments:
            phases[name] = round(max(0.0, at - previous), 3)
            previous = max(previous, at)
        return phases

    def report(self) -> dict[str, float]:
        """The stages' seconds, rounded, for summaries and benchmark rows."""
        return {name: round(seconds, 3) for name, seconds in self.seconds.items()}


def process_started() -> float:
    """When this process started, on :func:`time.perf_counter`'s clock: from ``/proc`` on Linux (the
    kernel's start time, to 10 ms), else now.  ``vidsr upscale`` counts its start-up from here, so
    interpreter start, imports and model loading are in it."""
    try:
        with open("/proc/self/stat") as f:
            # Field 22, counted after the command name (which may hold spaces, inside parentheses).
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        elapsed = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter()
    return time.perf_counter() - max(0.0, elapsed)
