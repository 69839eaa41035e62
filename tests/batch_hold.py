"""For the signal tests (tests/test_batch_signals.py): loaded into a ``vidsr batch`` under test, it
makes one input unable to finish before a stop request reaches the task upscaling it.

Why: a test that stops a batch while a given file is being upscaled must not lose the race on a
starved machine, where that file can finish between the test seeing it start and the signal
arriving.  The file runs as usual (decoded, upscaled, encoded by the same threads) up to its
``frames``-th frame; there the encode thread waits, but only until the task's stop flag is set (the
flag the worker's SIGINT handler sets), so the stop still lands wherever it happens to land and does
what it does in any run.  The wait is bounded (a hang fails the test by its own deadline, not here).

A ``vidsr batch`` process started by a test imports this module and calls :func:`install`; the
workers it spawns get the hold with their entry point (a spawned process imports this module by its
parent's ``sys.path``).  A batch run inside the test process takes only the workers' :func:`entry`.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from vidsr.batch import worker

_BOUND = 300.0  # seconds: as the tests' HANG


def install(key: str, frames: int) -> None:
    """Hold task ``key`` after ``frames`` frames, in this process and in every worker it spawns
    (for a ``vidsr batch`` process the test started: nothing undoes it)."""
    _hold(key, frames)
    worker.process_main = entry(key, frames)


def entry(key: str, frames: int) -> Any:
    """A worker entry point that holds task ``key``, to put in place of ``worker.process_main``.
    Pickled by reference into each spawned worker, where ``worker.process_main`` is the real one."""
    return functools.partial(_held_process_main, key, frames)


def _held_process_main(key: str, frames: int, *args: Any) -> None:
    _hold(key, frames)
    worker.process_main(*args)


def _hold(key: str, frames: int) -> None:
    update = worker._Counter.update

    def counting(self: Any, n: int = 1) -> None:  # called by the encode thread after each frame
        update(self, n)
        self.held_seen = getattr(self, "held_seen", 0) + n
        if self.key == key and self.held_seen - n < frames <= self.held_seen:
            deadline = time.monotonic() + _BOUND
            while not worker.STATE.interrupted and time.monotonic() < deadline:
                time.sleep(0.01)

    worker._Counter.update = counting
