"""Where a run records what happens to each input: in memory (a :class:`FileOutcome` per input, for
the report) and on disk (the manifest, for the next run), always in step.  Only the coordinator
writes here; workers only upscale."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidsr.batch import segments as seg
from vidsr.batch.discover import Job
from vidsr.batch.manifest import DONE, FAILED, Manifest
from vidsr.batch.progress import BatchProgress
from vidsr.batch.report import FileOutcome
from vidsr.batch.worker import Task, TaskResult


@dataclass
class Active:
    """A file being worked on: its tasks not yet submitted, and how many are in flight."""

    job: Job
    queue: deque[Task] = field(default_factory=deque)
    running: int = 0
    plan: seg.SegmentPlan | None = None  # set when the file runs as pieces
    pieces: dict[int, TaskResult] = field(default_factory=dict)  # pieces done, by index
    failed: str | None = None
    started: float = field(default_factory=time.perf_counter)


class Ledger:
    def __init__(self, manifest: Manifest, out: Path, notes: list[str]) -> None:
        self.manifest = manifest
        self.out = out
        self.notes = notes  # for the report, in the order they happened
        self.outcomes: dict[str, FileOutcome] = {}
        self.active: dict[str, Active] = {}
        self.progress = BatchProgress()

    def file_record(self, job: Job, state: str, **extra: Any) -> dict[str, Any]:
        """A file's manifest record in ``state``."""
        return {
            "key": job.key,
            "type": "file",
            "state": state,
            "input": str(job.source),
            "output": str(job.output(self.out)),
            "attempts": 0,
            **extra,
        }

    def file_done(
        self,
        key: str,
        frames_in: int,
        frames_out: int,
        seconds: float,
        warnings: list[str],
        fields: dict[str, Any] | None = None,
    ) -> None:
        outcome = self.outcomes[key]
        final = Path(outcome.output)
        try:
            size = final.stat().st_size  # recorded, so a later run notices an output changed since
        except OSError as exc:
            self.file_failed(key, f"output vanished after writing: {exc.strerror}")
            return
        active = self.active.pop(key, None)
        segments = len(active.plan.segments) if active and active.plan else None
        self.manifest.update(
            key,
            state=DONE,
            frames_in=frames_in,
            frames_out=frames_out,
            seconds=round(seconds, 3),
            output_size=size,
            error=None,
            warnings=warnings,
            segments=segments,
            fields=fields,
        )
        outcome.state, outcome.frames_in, outcome.frames_out = DONE, frames_in, frames_out
        outcome.fields = fields
        outcome.seconds, outcome.warnings, outcome.segments, outcome.error = round(seconds, 3), warnings, segments, None
        self.progress.file_finished()

    def file_failed(self, key: str, error: str) -> None:
        active = self.active.get(key)
        if active is not None:
            active.failed = error
            active.queue.clear()
            # Pieces still in flight finish (and are kept for a retry); the file is failed now.
            if active.running == 0:
                self.active.pop(key, None)
        self.manifest.update(key, state=FAILED, error=error)
        outcome = self.outcomes[key]
        folder = Path(outcome.output).parent
        if folder != self.out:
            with contextlib.suppress(OSError):
                folder.rmdir()  # made for this output; only removed when nothing else is in it
        outcome.state, outcome.error = FAILED, error
        self.progress.file_finished()
