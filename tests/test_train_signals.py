"""Signals against a real ``vidsr train`` drawing its batches in worker processes.

SIGTERM stops it as Ctrl-C does (a checkpoint to resume from, one ``Error:`` line, exit 143) and its
batch workers go with it; SIGKILL leaves no checkpoint, but its workers still go.  Before, SIGTERM killed
the trainer outright, and after either signal the DataLoader's worker, a child of multiprocessing's
forkserver, lived on (its watchdog watches the forkserver, not the trainer).  Waits are on conditions
(the progress bar has counted steps, the process group is empty) with generous deadlines, so a loaded
machine only makes it slower.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import make_photos
from test_batch_signals import _group

pytestmark = pytest.mark.signals

HANG = 300.0  # seconds after which a wait is a hang, not slowness (a loaded 2-core machine)


def steps_shown(stderr: list[str]) -> int:
    """The highest step count the progress bar has printed ("| 57/1000000")."""
    return max((int(n) for n in re.findall(r"\| (\d+)/1000000", "".join(stderr))), default=0)


@contextlib.contextmanager
def training(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, list[str], Path]]:
    """An endless ``vidsr train`` with one batch worker, in its own process group, once it has taken
    steps on the worker's batches; afterwards, whatever happened, nothing of its group is left."""
    data, val = make_photos(tmp_path / "train", 3, 64, 0), make_photos(tmp_path / "val", 1, 36, 1)
    out = tmp_path / "run.pt"
    command = [sys.executable, "-c", "from vidsr.cli import main; main()", "train", "-m", "espcn", "-s", "2"]
    command += ["--data", str(data), "--val", str(val), "--val-side", "all", "--steps", "1000000"]
    command += ["--val-every", "1000000", "--batch", "4", "--patch", "16", "--data-workers", "1", "--out", str(out)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + HANG
        while steps_shown(stderr) < 2:
            assert proc.poll() is None, f"vidsr train exited early: {''.join(stderr)}"
            assert time.monotonic() < deadline, "vidsr train took no step"
            time.sleep(0.05)
        yield proc, stderr, out
        proc.wait(timeout=HANG)
        reader.join(timeout=HANG)
        deadline = time.monotonic() + HANG
        while _group(proc.pid):
            assert time.monotonic() < deadline, f"processes outlived vidsr train: {_group(proc.pid)}"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _group(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_checkpoints_and_takes_the_batch_workers_with_it(tmp_path: Path) -> None:
    with training(tmp_path) as (proc, stderr, out):
        proc.send_signal(signal.SIGTERM)
    text = "".join(stderr)
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert "Error: interrupted by SIGTERM" in text
    # Python 3.13's resource_sharer thread in the worker used to print a ConnectionResetError here.
    assert "Traceback" not in text, text
    assert torch.load(out, map_location="cpu", weights_only=True)["step"] >= 2


def test_sigkill_of_the_trainer_still_ends_its_batch_workers(tmp_path: Path) -> None:
    """Nothing can run in a SIGKILLed process: the worker notices by itself (its trainer-watching thread)."""
    with training(tmp_path) as (proc, _stderr, _out):
        assert len(_group(proc.pid)) > 1  # the worker (and the forkserver) to be ended
        proc.kill()
    assert proc.returncode == -signal.SIGKILL


def test_the_trainer_watch_polls_where_there_is_no_pidfd() -> None:
    """The fallback of ``_end_with_trainer``'s thread: a live pid is alive, an exited (reaped) one is not."""
    from vidsr.media.sink import pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=HANG)
    assert pid_alive(os.getpid())
    assert not pid_alive(child.pid)


def test_a_worker_keeps_quiet_about_a_connection_the_trainer_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    """The worker's excepthook drops the lost hand-over of a stopping trainer, and only that."""
    from vidsr.train.data import _quiet_about_lost_trainer

    reset, broken = ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "Broken pipe")
    for lost in (reset, broken, EOFError()):
        _quiet_about_lost_trainer(type(lost), lost, None)
    assert capsys.readouterr().err == ""
    _quiet_about_lost_trainer(ValueError, ValueError("a real bug"), None)
    assert "ValueError: a real bug" in capsys.readouterr().err
