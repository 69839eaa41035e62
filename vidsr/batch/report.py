"""The outcome of a batch: per-file results, the summary table, the JSON form and the exit code."""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

DONE, SKIPPED, FAILED, PENDING = "done", "skipped", "failed", "pending"


@dataclass
class FileOutcome:
    key: str  # output path relative to OUT_DIR
    input: str
    output: str
    state: str  # done (this run), skipped (done before), failed, pending (interrupted or not reached)
    frames_in: int = 0
    frames_out: int = 0
    seconds: float = 0.0
    error: str | None = None
    attempts: int = 0
    segments: int | None = None
    warnings: list[str] = field(default_factory=list)
    fields: dict[str, Any] | None = None  # see :func:`fields_record`


def fields_record(
    interlace: dict[str, Any] | None, rate_in: float | None, rate_out: float | None
) -> dict[str, Any] | None:
    """What an archivist audits per file: the verdict on its fields (progressive, interlaced tff,
    telecined bff...), what was done about them, and the frame rate before and after (inverse telecine
    turns 29.97 into 23.976 and so writes fewer frames than it reads)."""
    if interlace is None:
        return None
    return {
        "verdict": interlace.get("verdict"),
        "done": interlace.get("done"),
        "frame_rate_in": rate_in,
        "frame_rate_out": rate_out,
    }


@dataclass
class BatchReport:
    files: list[FileOutcome]
    notes: list[str]
    seconds: float
    manifest: str
    executor: str
    interrupted: str | None = None  # the signal's name when a signal stopped the run

    def count(self, state: str) -> int:
        return sum(1 for f in self.files if f.state == state)

    @property
    def failures(self) -> list[FileOutcome]:
        return [f for f in self.files if f.state == FAILED]

    @property
    def exit_code(self) -> int:
        """0 only when every input is done (now or before); 128 + signal when stopped by one."""
        if self.interrupted:
            return 128 + int(signal.Signals[self.interrupted])
        return 0 if all(f.state in (DONE, SKIPPED) for f in self.files) else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": self.count(DONE),
            "skipped": self.count(SKIPPED),
            "failed": self.count(FAILED),
            "pending": self.count(PENDING),
            "frames": sum(f.frames_out for f in self.files if f.state == DONE),
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "manifest": self.manifest,
            "executor": self.executor,
            "exit_code": self.exit_code,
            "notes": self.notes,
            "files": [asdict(f) for f in self.files],
        }


def format_summary(report: BatchReport) -> str:
    """The table printed at the end of ``vidsr batch``, then every failure with its reason."""
    rows = [
        (
            "done",
            report.count(DONE),
            sum(f.frames_out for f in report.files if f.state == DONE),
            sum(f.seconds for f in report.files if f.state == DONE),
        ),
        ("skipped", report.count(SKIPPED), None, None),
        ("failed", report.count(FAILED), None, None),
    ]
    if report.count(PENDING):
        rows.append(("pending", report.count(PENDING), None, None))
    lines = [f"{'':<8} {'files':>6} {'frames':>8} {'seconds':>9}"]
    for name, files, frames, seconds in rows:
        frames_text = "" if frames is None else str(frames)
        seconds_text = "" if seconds is None else f"{seconds:.1f}"
        lines.append(f"{name:<8} {files:>6} {frames_text:>8} {seconds_text:>9}".rstrip())
    lines.append(f"{'total':<8} {len(report.files):>6} {'':>8} {report.seconds:>9.1f}")
    verdicts = _verdicts(report)
    if verdicts:
        lines.append(f"fields: {verdicts}")
    if report.interrupted:
        lines.append(f"stopped by {report.interrupted}: rerun the same command to continue")
    warned = [(f.key, w) for f in report.files if f.state == DONE for w in f.warnings]
    if warned:
        lines.append("warnings:")
        lines += [f"  {key}: {w}" for key, w in warned]
    if report.failures:
        lines.append("failures:")
        lines += [f"  {f.key}: {f.error}" for f in report.failures]
    return "\n".join(lines)


def _verdicts(report: BatchReport) -> str:
    """How many finished files had each verdict, with the rates where they changed:
    ``3 progressive, 1 telecined tff (29.97 -> 23.976 fps)``."""
    seen: Counter[str] = Counter()
    for f in report.files:
        if f.state not in (DONE, SKIPPED) or not f.fields or not f.fields.get("verdict"):
            continue
        text = f.fields["verdict"]
        rate_in, rate_out = f.fields.get("frame_rate_in"), f.fields.get("frame_rate_out")
        if rate_in and rate_out and rate_in != rate_out:
            text += f" ({rate_in:g} -> {rate_out:g} fps)"
        seen[text] += 1
    return ", ".join(f"{n} {text}" for text, n in sorted(seen.items(), key=lambda item: (-item[1], item[0])))
