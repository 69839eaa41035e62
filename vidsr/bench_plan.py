"""Which benchmark steps fit a time budget: estimated up front, re-estimated as steps finish.

A GPU lease is short and fixed, so a benchmark that would overrun it drops whole steps *by
plan* instead of being cut off by a timeout halfway through a row.  Each :class:`Step` says how
much work it is (frames x output pixels, plus a fixed overhead: building the backend, the first
batch, a subprocess's start) and how fast its kind is assumed to go, conservatively.  Before each
step the remaining ones are planned again against the time left, in priority order, with speeds
measured so far (:class:`Estimator`); what does not fit is dropped, and may come back if later
steps run faster than planned.  :func:`run_plan` does this; :func:`format_plan` prints a plan.
"""

from __future__ import annotations

import logging
import statistics
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Measured speeds are trusted to this fraction: the next step of a kind may be a bigger frame or a
# busier moment, and a step that overruns costs the rest of the lease.
MEASURED_MARGIN = 0.8
OVERHEAD_MARGIN = 1.25


@dataclass(frozen=True)
class Step:
    """One thing to measure.  ``run()`` returns the fps it measured (None for steps that are not
    frames through a pipeline) and raises on failure."""

    key: str  # what the plan, the log and the results call it
    kind: str  # steps of one kind share a measured speed (e.g. "pipeline espcn", "io_ceiling")
    priority: int  # lower is kept first when time is short
    order: int  # when it runs among the steps kept
    frames: int = 0
    pixels: int = 0  # output pixels per frame
    overhead_s: float = 0.0  # fixed cost, whatever the frame count
    rate_mpps: float = 1.0  # conservative output megapixels a second before anything is measured
    run: Callable[[], float | None] | None = field(default=None, compare=False, repr=False)

    @property
    def work_mp(self) -> float:
        return self.frames * self.pixels / 1e6

    def default_estimate(self) -> float:
        return self.overhead_s + self.work_mp / self.rate_mpps

    @property
    def default_fps(self) -> float | None:
        return self.rate_mpps * 1e6 / self.pixels if self.pixels else None


@dataclass
class _Seen:
    rates: list[float] = field(default_factory=list)  # measured output megapixels a second
    overheads: list[float] = field(default_factory=list)  # measured seconds beyond the frames
    factors: list[float] = field(default_factory=list)  # measured / default estimate, frame-less steps


class Estimator:
    """Seconds a step will take: its defaults until a step of its kind has run, then that kind's
    measured speed (the slowest seen, with a margin).  Kinds not seen yet keep their defaults,
    stretched when everything so far ran slower than planned (never shrunk: the defaults are the
    conservative side)."""

    def __init__(self) -> None:
        self.seen: dict[str, _Seen] = {}
        self.slowdowns: list[float] = []  # measured / default estimate, every step

    def observe(self, step: Step, seconds: float, fps: float | None) -> None:
        seen = self.seen.setdefault(step.kind, _Seen())
        if step.default_estimate() > 0:
            self.slowdowns.append(seconds / step.default_estimate())
        if fps and step.frames and step.pixels:
            seen.rates.append(fps * step.pixels / 1e6)
            seen.overheads.append(max(0.0, seconds - step.frames / fps))
        elif step.default_estimate() > 0:
            seen.factors.append(seconds / step.default_estimate())

    def estimate(self, step: Step) -> float:
        seen = self.seen.get(step.kind)
        if seen and seen.rates:
            # Start-up grows with the frame size too (cuDNN's search, graph capture): half the default at least.
            overhead = max(max(seen.overheads) * OVERHEAD_MARGIN, step.overhead_s / 2)
            return overhead + step.work_mp / (min(seen.rates) * MEASURED_MARGIN)
        if seen and seen.factors:
            return step.default_estimate() * max(seen.factors)
        return step.default_estimate() * self.slowdown()

    def slowdown(self) -> float:
        return max(1.0, statistics.median(self.slowdowns)) if self.slowdowns else 1.0


@dataclass
class Decision:
    step: Step
    estimate_s: float
    keep: bool
    reason: str = ""


def choose(steps: Iterable[Step], left_s: float, estimator: Estimator) -> list[Decision]:
    """Keep steps in priority order while their estimates fit in ``left_s``; a step that does not fit
    is dropped and smaller ones after it may still be kept.  Returned in running order."""
    decisions = []
    planned = 0.0
    for step in sorted(steps, key=lambda s: (s.priority, s.order)):
        estimate = estimator.estimate(step)
        keep = planned + estimate <= left_s
        reason = ""
        if keep:
            planned += estimate
        else:
            reason = f"needs ~{estimate:.0f} s, {max(0.0, left_s - planned):.0f} s left after higher priorities"
        decisions.append(Decision(step, estimate, keep, reason))
    return sorted(decisions, key=lambda d: d.step.order)


@dataclass
class Outcome:
    """What became of a step: ``ran``, ``failed: ...`` or ``dropped: ...``."""

    key: str
    kind: str
    frames: int
    estimate_s: float  # the estimate when it was started (or last planned, when dropped)
    seconds: float | None
    fps: float | None
    status: str

    def to_dict(self) -> dict:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def run_plan(
    steps: list[Step],
    left_s: Callable[[], float],
    *,
    clock: Callable[[], float] = time.monotonic,
    on_plan: Callable[[list[Decision]], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run the steps that fit, re-planning before each one with what has been measured.

    ``left_s()`` is the time left for steps.  ``on_plan`` hears the first plan (to print it),
    ``on_outcome`` every step's outcome as it happens (to save results as they come: a hard
    timeout outside still leaves everything measured so far).  A step that raises is recorded as
    failed and the plan goes on.
    """
    estimator = Estimator()
    pending = list(steps)
    outcomes: list[Outcome] = []
    last: dict[str, Decision] = {}

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)

    while pending:
        decisions = choose(pending, left_s(), estimator)
        last.update({d.step.key: d for d in decisions})
        if on_plan and not outcomes:
            on_plan(decisions)
        kept = [d for d in decisions if d.keep]
        if not kept:
            break
        decision = kept[0]
        step = decision.step
        pending.remove(step)
        started = clock()
        try:
            fps = step.run() if step.run else None
            status = "ran"
        except Exception as exc:
            fps, status = None, f"failed: {type(exc).__name__}: {exc}"
            log.warning("benchmark step %s failed:\n%s", step.key, traceback.format_exc())
        seconds = clock() - started
        estimator.observe(step, seconds, fps)
        record(Outcome(step.key, step.kind, step.frames, decision.estimate_s, seconds, fps, status))
    for step in sorted(pending, key=lambda s: s.order):
        decision = last[step.key]
        record(
            Outcome(step.key, step.kind, step.frames, decision.estimate_s, None, None, f"dropped: {decision.reason}")
        )
    return outcomes


def format_plan(decisions: list[Decision], left_s: float) -> str:
    """The plan as a text table: every step, its frames, the fps and seconds it is planned at, kept or
    dropped and why; then the total."""
    head = f"{'#':>3}  {'step':<44} {'frames':>6} {'est fps':>8} {'est s':>6} {'prio':>4}  plan"
    lines = [head]
    for n, d in enumerate(decisions, 1):
        fps = d.step.default_fps
        fps_cell = f"{fps:8.1f}" if fps and d.step.frames else f"{'-':>8}"
        frames = str(d.step.frames) if d.step.frames else "-"
        verdict = "run" if d.keep else f"DROP ({d.reason})"
        lines.append(
            f"{n:>3}  {d.step.key:<44} {frames:>6} {fps_cell} {d.estimate_s:6.1f} {d.step.priority:>4}  {verdict}"
        )
    kept = sum(d.estimate_s for d in decisions if d.keep)
    dropped = [d.step.key for d in decisions if not d.keep]
    lines.append(
        f"planned {kept:.0f} s of {left_s:.0f} s; "
        + (f"dropped by plan: {', '.join(dropped)}" if dropped else "nothing dropped")
    )
    return "\n".join(lines)


def outcomes_table(outcomes: list[Outcome]) -> str:
    """Markdown: each step, what was estimated, what it took, and what became of it."""
    lines = ["| step | frames | estimate s | seconds | fps | result |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for o in outcomes:
        seconds = "–" if o.seconds is None else f"{o.seconds:.1f}"
        fps = "–" if not o.fps else f"{o.fps:.1f}"
        frames = o.frames or "–"
        status = o.status.replace("|", "/")
        lines.append(f"| {o.key} | {frames} | {o.estimate_s:.1f} | {seconds} | {fps} | {status} |")
    return "\n".join(lines)
