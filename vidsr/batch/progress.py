"""The batch's one progress bar: frames of every file together, "done/total files" as its description,
and which worker has which file as its postfix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av

from vidsr.batch.discover import Job
from vidsr.batch.worker import Event
from vidsr.media.pyav import fraction, open_container
from vidsr.progress import progress_bar


class BatchProgress:
    """Safe to call before and after the bar is shown: then it only counts."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.files_total = 0
        self.files_finished = 0
        self.workers: dict[str, str] = {}  # worker name -> the file (or piece) it works on

    @contextmanager
    def shown(self, todo: list[Job], *, enabled: bool) -> Iterator[None]:
        self.files_total = len(todo)
        # Opening every input costs little next to upscaling it, and makes the bar's total honest.
        estimate = sum(n for n in (estimate_frames(j.source) for j in todo) if n) or None
        with progress_bar(total=estimate, desc=self._desc(), enabled=enabled) as bar:
            self.bar = bar
            try:
                yield
            finally:
                self.bar = None

    def frames(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def on_event(self, event: Event) -> None:
        name, kind, key, frames = event
        if kind == "frames":
            self.frames(frames)
            return
        if kind == "start":
            self.workers[name] = Path(key).name  # the file's name, with "#<piece>" for a piece
        elif kind == "end":
            self.workers.pop(name, None)
        if self.bar is not None:
            self.bar.set_postfix_str(" ".join(f"{w}={k}" for w, k in sorted(self.workers.items())), refresh=False)

    def file_finished(self) -> None:
        self.files_finished += 1
        if self.bar is not None:
            self.bar.set_description_str(self._desc(), refresh=False)

    def _desc(self) -> str:
        return f"{self.files_finished}/{self.files_total} files"


def estimate_frames(path: Path) -> int | None:
    """The container's own frame count (or duration x rate): instant, good enough for a progress bar."""
    try:
        with open_container(path) as c:
            video = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
            if not video:
                return None
            s = video[0]
            if s.frames:
                return int(s.frames)
            rate = fraction(s.average_rate) or fraction(s.guessed_rate)
            if c.duration and rate:
                return int(c.duration / 1_000_000 * float(rate))
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    return None
