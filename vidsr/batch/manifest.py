"""``OUT_DIR/vidsr-manifest.jsonl``: what happened to every input, readable after a crash at any instant.

Format: JSON lines, append-only; each line is one record and the last record for a ``key`` wins.
Why append + fsync rather than rewrite-temp-and-rename on every change: an append is O(1) however
big the archive (a rewrite per state change is O(files²) over a run), a crash can at worst tear the
last line, which the reader skips, and the history of attempts stays on disk for whoever debugs a
failure.  On opening, the file is compacted (last record per key, written to a temporary file,
fsynced and renamed over), which also drops a torn line, so it does not grow without bound over
many reruns.  One process writes it: the coordinator holds ``.vidsr-batch.lock`` (see :func:`lock`).

Records:

* ``{"type": "batch", "key": "#batch", "settings": {...}}``: the settings the outputs were made with.
* ``{"type": "file", "key": "<output path relative to OUT_DIR>", "state": "pending|running|done|failed",
  "input", "output", "attempts", "frames_in", "frames_out", "seconds", "error", "pid", "host", "fields",
  ...}``; ``fields`` (once done): the verdict on the input's fields, what was done about them and the
  frame rate before and after (``{"verdict": "telecined tff", "done": "inverse telecine ...",
  "frame_rate_in": 29.97, "frame_rate_out": 23.976}``, see :func:`vidsr.batch.report.fields_record`).
* ``{"type": "segment", "key": "<file key>#<index>", "file": "<file key>", "index", "plan", "state",
  "frames_in", "frames_out", ...}``: one per segment of a file run with ``--segment-seconds``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from vidsr.errors import OutputError, VidsrError
from vidsr.media.sink import output_error, pid_alive

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATES = (PENDING, RUNNING, DONE, FAILED)
BATCH_KEY = "#batch"
HOST = socket.gethostname()


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, from /proc), to tell a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner() -> dict[str, Any]:
    """Who is running an input: this process, on this host."""
    return {"pid": os.getpid(), "host": HOST, "pid_start": process_start(os.getpid())}


def is_dead(record: dict[str, Any]) -> bool | None:
    """Whether the process that marked ``record`` running is gone; None when it ran on another host."""
    if record.get("host") != HOST:
        return None
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not pid_alive(pid):
        return True
    started = record.get("pid_start")
    now = process_start(pid)
    return bool(started is not None and now is not None and started != now)


class Manifest:
    """The records of one OUT_DIR, in memory and on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.torn = 0  # unreadable lines skipped on load (a crash mid-write leaves at most one)
        self._file: TextIO | None = None

    # -- reading -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path) -> Manifest:
        manifest = cls(path)
        if path.exists():
            manifest._load()
            manifest._compact()
        try:
            manifest._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
        except OSError as exc:
            raise output_error(path, exc) from None
        return manifest

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise VidsrError(f"cannot read manifest {self.path}: {exc.strerror}") from None
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                self.torn += 1
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                self.records[record["key"]] = record
            else:
                self.torn += 1

    def _compact(self) -> None:
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "w", encoding="utf-8") as f:
                for record in self.records.values():
                    f.write(json.dumps(record, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise output_error(self.path, exc) from None

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def files(self) -> Iterator[dict[str, Any]]:
        return (r for r in self.records.values() if r.get("type") == "file")

    def segments(self, file_key: str) -> dict[int, dict[str, Any]]:
        return {
            r["index"]: r for r in self.records.values() if r.get("type") == "segment" and r.get("file") == file_key
        }

    # -- writing -------------------------------------------------------------------------------
    def put(self, *records: dict[str, Any]) -> None:
        """Append ``records`` and make them durable before returning (one fsync for them all)."""
        if self._file is None:
            raise VidsrError("manifest is closed")
        lines = []
        for record in records:
            record = {**record, "time": round(time.time(), 3)}
            self.records[record["key"]] = record
            lines.append(json.dumps(record, sort_keys=True) + "\n")
        try:
            self._file.write("".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def update(self, key: str, **changes: Any) -> dict[str, Any]:
        record = {**self.records.get(key, {"key": key}), **changes}
        self.put(record)
        return record

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _fsync_dir(folder: Path) -> None:
    # The rename itself must be durable too, or a crash could bring back the old file.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def lock(out_dir: Path) -> Iterator[None]:
    """One ``vidsr batch`` per OUT_DIR at a time.  An OS lock (flock) goes away with its process,
    however it dies, so a crashed run never blocks the next; what it left ``running`` is reclaimed."""
    path = out_dir / ".vidsr-batch.lock"
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the pid check on running records still applies
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise OutputError(f"another vidsr batch ({holder}) is already writing to {out_dir}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {HOST}".encode(), 0)
        yield
    finally:
        os.close(fd)
