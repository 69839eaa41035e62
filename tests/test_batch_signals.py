"""SIGTERM / SIGINT against a real ``vidsr batch`` process: a clean stop, then a rerun that finishes
with outputs identical to an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_batch_support import clip, decoded, records

from vidsr.batch import BatchOptions, UpscaleSettings, run_batch
from vidsr.batch.options import RuntimeSettings
from vidsr.media.sink import EncodeOptions

ARGS = ["-m", "bicubic", "-s", "2", "--preset", "ultrafast", "--crf", "0", "--threads", "1", "-q"]
NAMES = ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("signals") / "in"
    for i, name in enumerate(NAMES):
        clip(root / name, frames=40 + i, size=(320, 240), audio=True)
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
        upscale=UpscaleSettings("bicubic", 2, None, EncodeOptions(preset="ultrafast", crf=0)),
        runtime=RuntimeSettings(device="cpu", threads=1),
        progress=False,
    )


def _start(folder: Path, out: Path, *extra: str, slow_cleanup: bool = False) -> subprocess.Popen:
    code = "from vidsr.cli import main; main()"
    if slow_cleanup:
        # Removing a partial output takes 3 s here, so a second signal surely lands during cleanup.
        code = (
            "import time; from vidsr.media import sink; original = sink.VideoSink.abort\n"
            "def slow(self):\n    time.sleep(3)\n    original(self)\n"
            "sink.VideoSink.abort = slow\n" + code
        )
    return subprocess.Popen(
        [sys.executable, "-c", code, "batch", str(folder), "-o", str(out), *ARGS, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_done(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.get("state") == "done" for r in records(out).values()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    pytest.fail("no file finished in time")


def _assert_clean_stop(out: Path) -> set[str]:
    manifest = records(out)
    states = {k: r["state"] for k, r in manifest.items() if r.get("type") == "file"}
    assert "running" not in states.values()
    done = {k for k, s in states.items() if s == "done"}
    assert done and done != set(NAMES)
    for name in NAMES:
        assert (out / name).exists() == (name in done), name  # nothing incomplete under a final name
    assert not [p.name for p in out.iterdir() if "partial" in p.name]
    return done


def test_sigterm_stops_cleanly_and_rerun_matches(folder: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start(folder, out, "--jobs", "2")
    _wait_for_done(out, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM: rerun the same command to continue" in stdout
    done = _assert_clean_stop(out)
    stopped = [r for k, r in records(out).items() if k in NAMES and r["state"] == "pending" and r.get("error")]
    assert all(r["error"] == "interrupted" and r["attempts"] == 0 for r in stopped)
    before = {k: (out / k).stat().st_mtime_ns for k in done}

    report = run_batch([str(folder)], _options(out))
    assert report.exit_code == 0
    assert report.count("skipped") == len(done) and report.count("done") == len(NAMES) - len(done)
    assert {k: (out / k).stat().st_mtime_ns for k in done} == before
    for name in NAMES:
        assert decoded(out / name) == decoded(reference / name), name


def test_second_sigint_stops_at_once(folder: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start(folder, out, slow_cleanup=True)
    _wait_for_done(out, proc)
    time.sleep(0.3)  # into the next file
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)  # the clean stop is busy removing the partial file
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - started < 2.5  # did not wait for the 3 s cleanup
    assert proc.returncode == 130 and stderr.endswith("Error: interrupted\n") and stdout == ""
    manifest = records(out)  # still readable, line by line
    assert all(manifest[k]["state"] in ("done", "pending", "running") for k in NAMES)
    for name in NAMES:
        if manifest[name]["state"] != "done":
            assert not (out / name).exists()
    report = run_batch([str(folder)], _options(out))
    assert report.exit_code == 0
    for name in NAMES:
        assert decoded(out / name) == decoded(reference / name), name
    assert not [p.name for p in out.iterdir() if "partial" in p.name]
