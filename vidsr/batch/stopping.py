"""What a stop (SIGINT, SIGTERM: see :mod:`vidsr.batch.signals`) leaves in the manifest.

A file stopped mid-way goes back to ``pending``, and its attempt is not counted: stopping a run is
not the file's fault, so it must not use up its ``--retry``.  A second signal does the same for
whatever was in flight, fast, and leaves.
"""

from __future__ import annotations

import contextlib

from vidsr.batch import pieces
from vidsr.batch.ledger import Active, Ledger
from vidsr.batch.manifest import PENDING
from vidsr.batch.worker import Task
from vidsr.errors import OutputError


def task_stopped(ledger: Ledger, active: Active, task: Task) -> None:
    """``task`` came back interrupted: its piece (if it is one) is pending again, and so is its
    file once none of its tasks is in flight any more."""
    key = active.job.key
    if task.piece is not None and active.plan is not None:
        piece = active.plan.segments[task.piece]
        ledger.manifest.put(pieces.record(key, active.plan, piece, PENDING, error="interrupted"))
    if active.failed or ledger.outcomes[key].state != PENDING:
        return
    if active.running == 0:
        park(ledger, key)


def park(ledger: Ledger, key: str) -> None:
    """Back to pending, and the attempt not counted."""
    outcome = ledger.outcomes[key]
    outcome.attempts = max(0, outcome.attempts - 1)
    ledger.manifest.update(key, state=PENDING, error="interrupted", attempts=outcome.attempts)
    ledger.active.pop(key, None)


def park_idle(ledger: Ledger) -> None:
    """After a clean stop: files started but with nothing in flight (pieces still queued) go back too."""
    for key, active in list(ledger.active.items()):
        if active.running == 0 and not active.failed and ledger.outcomes[key].state == PENDING:
            park(ledger, key)


def abandon(ledger: Ledger, error: str) -> None:
    """Second signal: record what was in flight as pending, in one write, and leave."""
    records = []
    for key, active in ledger.active.items():
        if not active.failed and ledger.outcomes[key].state == PENDING:
            outcome = ledger.outcomes[key]
            outcome.attempts = max(0, outcome.attempts - 1)
            records.append(
                {
                    **(ledger.manifest.get(key) or {"key": key}),
                    "state": PENDING,
                    "error": error,
                    "attempts": outcome.attempts,
                }
            )
    if records:
        # If this fails they stay "running": the next run reclaims them, this pid being dead by then.
        with contextlib.suppress(OutputError):
            ledger.manifest.put(*records)
