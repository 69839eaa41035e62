"""SIGINT / SIGTERM during a batch: the first asks for a clean stop, the second stops at once.

Clean stop: no new task starts, running tasks are told to stop (each removes its partial output),
their inputs go back to ``pending`` in the manifest, and the summary is printed.  A second signal
raises :class:`Abort` in the coordinator, which kills the workers without waiting; whatever they
leave is under hidden temporary names (never a final name), removed by the next run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGINT, signal.SIGTERM)
STOP_SIGNALS = set(HANDLED)


class Abort(KeyboardInterrupt):
    """The second signal: stop now."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequest:
    """Set by the first signal; ``signum`` says which (the exit code is 128 + signum)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum else None


@contextmanager
def stop_on_signals(on_first: Callable[[], None]) -> Iterator[StopRequest]:
    """Install the handlers for the duration of a batch (main thread only; elsewhere, none)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.requested:
            raise Abort(signum)
        stop.signum = signum
        on_first()  # may raise KeyboardInterrupt into a task running in this thread (inline executor)

    previous = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
