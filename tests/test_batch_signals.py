"""SIGTERM / SIGINT / SIGKILL against a real ``vidsr batch`` process and its workers: a clean stop,
a stop at once, a worker that dies during a stop, a coordinator killed outright; then a rerun that
finishes with outputs identical to an uninterrupted run, and no process left behind.

These must pass on a loaded machine (``make stress`` runs them with a CPU hog on every core), so
they wait on conditions (what the manifest says, the partial output file, marker files, the process
list), never on fixed sleeps followed by wall-clock bounds; the only clocks are generous deadlines for
a hang.  What a condition cannot rule out, that c.mp4 finishes between the test seeing it being
written and the signal arriving (on a starved machine the test process may wait its turn for
seconds), tests/batch_hold.py does: c.mp4 cannot finish before a stop reaches its task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_batch_support import clip, decoded, records

from vidsr.batch import BatchOptions, UpscaleSettings, run_batch
from vidsr.batch.executors import ProcessExecutor
from vidsr.batch.options import RuntimeSettings
from vidsr.media.sink import EncodeOptions

pytestmark = pytest.mark.signals

# Every encode setting explicit, here and in _options: the reruns (in this process) must resume what
# the CLI started, whatever the CLI's and the library's defaults are.
ARGS = ["-m", "bicubic", "-s", "2", "--preset", "ultrafast", "--crf", "0", "--pix-fmt", "yuv420p"]
ARGS += ["--threads", "1", "-q"]
# c.mp4 is the one the tests stop mid-way; it is held (see batch_hold) 10 frames before its end.
FRAMES = {"a.mp4": 40, "b.mp4": 41, "c.mp4": 200, "d.mp4": 43}
NAMES = list(FRAMES)
HOLD = ("c.mp4", FRAMES["c.mp4"] - 10)
TESTS = Path(__file__).parent
HANG = 300.0  # seconds after which a wait is a hang, not slowness (a loaded 2-core machine)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("signals") / "in"
    for name, frames in FRAMES.items():
        clip(root / name, frames=frames, size=(320, 240), audio=True)
    return root


@pytest.fixture(scope="module")
def reference(folder: Path, tmp_path_factory) -> Path:
    """The same batch, never interrupted."""
    out = tmp_path_factory.mktemp("reference") / "out"
    report = run_batch([str(folder)], _options(out))
    assert report.exit_code == 0
    return out


def _options(out: Path) -> BatchOptions:
    return BatchOptions(
        out_dir=out,
        upscale=UpscaleSettings("bicubic", 2, None, EncodeOptions(preset="ultrafast", crf=0, pix_fmt="yuv420p")),
        runtime=RuntimeSettings(device="cpu", threads=1),
        progress=False,
    )


# -- processes ----------------------------------------------------------------------------------
def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in "ZX":
                alive.append(int(stat.parent.name))
    return alive


def _workers(pgid: int, coordinator: int) -> list[int]:
    """The batch's worker processes (not the coordinator, not multiprocessing's resource tracker)."""
    found = []
    for pid in _group(pgid):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if pid != coordinator and b"spawn_main" in cmd:
                found.append(pid)
    return found


@pytest.fixture
def start() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``vidsr batch`` in its own process group; afterwards, whatever happened, kill the group
    (a failed test leaves nothing running) and check that nothing of it was left alive."""
    started: list[subprocess.Popen] = []

    def run(folder: Path, out: Path, *extra: str, code: str = "") -> subprocess.Popen:
        hold = f"import sys; sys.path.append({str(TESTS)!r}); import batch_hold; batch_hold.install{HOLD!r}\n"
        command = [sys.executable, "-c", hold + code + "from vidsr.cli import main; main()", "batch", str(folder)]
        proc = subprocess.Popen(
            [*command, "-o", str(out), *ARGS, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield run
    leftovers = {}
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        leftovers[proc.pid] = _group(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not any(leftovers.values()), f"processes left behind: {leftovers}"


def _wait_for(what: str, proc: subprocess.Popen, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"vidsr batch exited before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {HANG:.0f} s")
        time.sleep(0.02)


def _states(out: Path) -> dict[str, str]:
    return {k: r["state"] for k, r in records(out).items() if r.get("type") == "file"}


def _one_done_and_c_running(out: Path) -> bool:
    states = _states(out)
    return "done" in states.values() and states.get("c.mp4") == "running"


def _c_partials(out: Path) -> list[Path]:
    return list(out.glob(".c.vidsr-*.partial.mp4"))


def _c_being_written(out: Path) -> bool:
    """Another file is done, c.mp4 is running and its hidden partial output exists: its sink is open,
    so the stop finds it mid-file.  (The manifest says "running" a moment before the task reaches a
    worker and the sink opens: a stop in that gap stops a file that has not begun.)"""
    return _one_done_and_c_running(out) and bool(_c_partials(out))


def _wait_group_gone(pgid: int) -> None:
    """Processes of a batch that exited must go too (workers die with their coordinator)."""
    deadline = time.monotonic() + 60
    while _group(pgid):
        assert time.monotonic() < deadline, f"processes outlived vidsr batch: {_group(pgid)}"
        time.sleep(0.05)


def _assert_clean_stop(out: Path, stopped: str, error: str) -> set[str]:
    """Only done and pending inputs; the one stopped mid-file is pending, its attempt not counted;
    nothing incomplete under a final name; no partial file."""
    manifest = records(out)
    states = _states(out)
    assert set(states.values()) <= {"done", "pending"}, states
    assert states[stopped] == "pending"
    assert manifest[stopped]["error"] == error and manifest[stopped]["attempts"] == 0
    done = {k for k, s in states.items() if s == "done"}
    assert done and done != set(NAMES)
    for name in NAMES:
        assert (out / name).exists() == (name in done), name
    assert not [p.name for p in out.rglob("*") if "partial" in p.name]
    return done


def _rerun_matches(folder: Path, reference: Path, out: Path, done: set[str]) -> None:
    before = {k: (out / k).stat().st_mtime_ns for k in done}
    report = run_batch([str(folder)], _options(out))
    assert report.exit_code == 0
    assert report.count("skipped") == len(done) and report.count("done") == len(NAMES) - len(done)
    assert {k: (out / k).stat().st_mtime_ns for k in done} == before
    for name in NAMES:
        assert decoded(out / name) == decoded(reference / name), name
    assert not [p.name for p in out.rglob("*") if "partial" in p.name]


# -- the tests ----------------------------------------------------------------------------------
def test_sigterm_stops_cleanly_and_rerun_matches(folder: Path, reference: Path, tmp_path: Path, start) -> None:
    out = tmp_path / "out"
    proc = start(folder, out, "--jobs", "2")
    _wait_for("c.mp4 being written", proc, lambda: _c_being_written(out))
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM: rerun the same command to continue" in stdout
    _wait_group_gone(proc.pid)
    done = _assert_clean_stop(out, "c.mp4", "interrupted")
    _rerun_matches(folder, reference, out, done)


def test_worker_dying_during_a_stop_neither_crashes_nor_hangs(
    folder: Path, reference: Path, tmp_path: Path, start
) -> None:
    """The CI failure: a worker died (SIGSEGV) while the batch stopped on SIGTERM, the other waited
    forever on a lock the dead one held, and ``vidsr batch`` never exited.  Now one worker is
    SIGKILLed just as the stop begins: the batch exits 143 with a consistent manifest."""
    out = tmp_path / "out"
    proc = start(folder, out, "--jobs", "2")
    _wait_for("c.mp4 being written", proc, lambda: _c_being_written(out))
    _wait_for("two workers", proc, lambda: len(_workers(proc.pid, proc.pid)) == 2)
    os.kill(_workers(proc.pid, proc.pid)[0], signal.SIGKILL)  # before the stop, so it is surely alive
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    _wait_group_gone(proc.pid)
    states = _states(out)
    assert set(states.values()) <= {"done", "pending"}, states
    assert not [p.name for p in out.rglob("*") if "partial" in p.name and not p.name.startswith(".")]
    done = {k for k, s in states.items() if s == "done"}
    _rerun_matches(folder, reference, out, done)  # also removes the dead worker's hidden partial


def test_second_sigint_stops_at_once(folder: Path, reference: Path, tmp_path: Path, start) -> None:
    """The first SIGINT starts a clean stop whose cleanup (removing the partial output) is made to
    take 60 s; the second SIGINT, sent once that cleanup has begun, must not wait for it."""
    out = tmp_path / "out"
    began, finished = tmp_path / "cleanup-began", tmp_path / "cleanup-finished"
    slow = (
        "import time; from pathlib import Path; from vidsr.media import sink; original = sink.VideoSink.abort\n"
        "def slow(self):\n"
        f"    Path({str(began)!r}).touch(); time.sleep(60); Path({str(finished)!r}).touch(); original(self)\n"
        "sink.VideoSink.abort = slow\n"
    )
    proc = start(folder, out, code=slow)  # one job: the coordinator upscales in its own process
    _wait_for("c.mp4 being written", proc, lambda: _c_being_written(out))
    proc.send_signal(signal.SIGINT)
    _wait_for("cleanup", proc, began.exists)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=HANG)
    assert not finished.exists()  # it did not wait for the cleanup
    assert proc.returncode == 130 and stderr.endswith("Error: interrupted\n") and stdout == "", stderr
    manifest = records(out)  # still readable, line by line
    states = _states(out)
    assert set(states.values()) <= {"done", "pending"}, states
    assert manifest["c.mp4"]["state"] == "pending" and manifest["c.mp4"]["error"] == "interrupted (SIGINT)"
    for name in NAMES:
        assert (out / name).exists() == (states[name] == "done"), name
    report = run_batch([str(folder)], _options(out))  # removes the partial the abort left
    assert report.exit_code == 0
    for name in NAMES:
        assert decoded(out / name) == decoded(reference / name), name
    assert not [p.name for p in out.rglob("*") if "partial" in p.name]


def test_killed_coordinator_takes_its_workers_with_it(folder: Path, reference: Path, tmp_path: Path, start) -> None:
    """SIGKILL leaves no time for cleanup: the workers must still go (no orphans), and the next run
    reclaims what was running and removes the partial outputs."""
    out = tmp_path / "out"
    proc = start(folder, out, "--jobs", "2")
    _wait_for("c.mp4 being written", proc, lambda: _c_being_written(out))
    _wait_for("two workers", proc, lambda: len(_workers(proc.pid, proc.pid)) == 2)
    proc.kill()
    proc.communicate(timeout=HANG)
    _wait_group_gone(proc.pid)
    assert _states(out)["c.mp4"] == "running"
    assert _c_partials(out)  # what the next run must clean up
    report = run_batch([str(folder)], _options(out))
    assert report.exit_code == 0
    assert any("reclaimed c.mp4" in note for note in report.notes)
    for name in NAMES:
        assert decoded(out / name) == decoded(reference / name), name
    assert not [p.name for p in out.rglob("*") if "partial" in p.name]


def test_a_stop_while_a_task_is_handed_over_stops_it_too(folder: Path, tmp_path: Path, monkeypatch) -> None:
    """The race behind issue 10's last flaky failure: the stop came after c.mp4 was marked running but
    before its task reached a worker.  Only the workers busy at that moment were told to stop, so
    c.mp4 was sent to one that was not, and ran to the end.  Here the signal lands in that gap."""
    out = tmp_path / "out"
    submit = ProcessExecutor.submit

    def submit_after_a_signal(self: ProcessExecutor, task):
        if task.key == "c.mp4":
            assert records(out)["c.mp4"]["state"] == "running"
            signal.raise_signal(signal.SIGTERM)  # its handler runs before this returns
        return submit(self, task)

    monkeypatch.setattr(ProcessExecutor, "submit", submit_after_a_signal)
    report = run_batch([str(folder)], dataclasses.replace(_options(out), jobs=2))
    assert report.interrupted == "SIGTERM" and report.exit_code == 128 + signal.SIGTERM
    c = records(out)["c.mp4"]
    assert (c["state"], c["error"], c["attempts"]) == ("pending", "interrupted", 0)
    assert not (out / "c.mp4").exists()
    assert not [p.name for p in out.rglob("*") if "partial" in p.name]
