"""What runs inside a worker (a local process, a Ray task, or the coordinator itself with one job):
upscale one file or one piece, with the worker's one Upscaler, and report how it went as data.

Errors never escape as exceptions: a bad input becomes a failed :class:`TaskResult` carrying the
``VidsrError`` message, so one file cannot take the worker (or the batch) down with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsr.batch.options import RuntimeSettings, UpscaleSettings
from vidsr.batch.report import fields_record
from vidsr.batch.signals import STOP_SIGNALS, Abort
from vidsr.errors import VidsrError
from vidsr.media.sink import output_error

log = logging.getLogger(__name__)

# Progress events a worker sends: (worker name, event, key, frames).
Event = tuple[str, str, str, int]
_REPORT_EVERY = 0.25  # seconds between frame-count messages, so a fast model does not flood the queue
_SEND_WAIT = 10.0  # seconds a message waits for the pipe; progress is not worth waiting for longer
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build its Upscaler: picklable, so it travels to processes and Ray."""

    upscale: UpscaleSettings
    runtime: RuntimeSettings
    threads: int | None = None


@dataclass(frozen=True)
class Task:
    key: str  # the manifest key: a file's output path relative to OUT_DIR, or "<file key>#<piece>"
    source: str
    output: str
    codec: str | None = None  # the encoder, when it must not depend on the output's container (pieces)
    piece: int | None = None  # which piece of its file, for a file cut with --segment-seconds

    @property
    def file_key(self) -> str:
        """The manifest key of the file this task is, or is a piece of (a file name may hold a "#")."""
        return self.key if self.piece is None else self.key.removesuffix(f"#{self.piece}")


@dataclass(frozen=True)
class TaskResult:
    key: str
    ok: bool
    frames_in: int = 0
    frames_out: int = 0
    seconds: float = 0.0
    error: str | None = None
    interrupted: bool = False
    warnings: tuple[str, ...] = ()
    worker: str = ""
    fields: dict[str, Any] | None = None  # the verdict on the input's fields and rates (report.fields_record)


def interrupted_result(key: str, worker: str = "") -> TaskResult:
    """A task stopped by a stop request: not the file's failure (its attempt is not counted)."""
    return TaskResult(key, False, error="interrupted", interrupted=True, worker=worker)


class _WorkerState:
    """Per process: the Upscaler (built once, on first use), the device and the progress channel."""

    def __init__(self) -> None:
        self.spec: WorkerSpec | None = None
        self.upscaler: Any = None
        self.device: str | None = None
        self.send: Callable[[Event], None] = lambda event: None
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.busy = False
        self.interrupted = False
        self.stopping = False  # a stop arrived while idle: the next task comes back interrupted at once
        # The task's complete output is taking its final name: a stop now must not interrupt it, or
        # the file would exist under its final name while its result said "interrupted" (seen under load).
        self.committing = False


STATE = _WorkerState()


def process_main(spec: WorkerSpec, device: str | None, conn: Any) -> None:
    """A worker process's life: tasks arrive on ``conn`` (its own pipe: no lock shared with another
    worker, so one that dies cannot leave another waiting), results and progress go back on it.
    ``None`` or a closed pipe ends it."""
    _die_with_parent()
    STATE.device = device
    STATE.spec = spec
    STATE.name = f"w{os.getpid()}"
    sending = threading.Lock()  # the encode thread sends progress while the main thread may send a result

    def send(message: tuple[str, Any], wait: float = _SEND_WAIT) -> None:
        if sending.acquire(timeout=wait):
            try:
                conn.send(message)
            except OSError:
                pass  # the coordinator is gone; the next recv ends this process
            finally:
                sending.release()

    STATE.send = lambda event: send(("event", event))
    # Ctrl-C in a terminal reaches every process of the group, and the coordinator forwards its stop
    # as SIGINT: the task in hand stops (upscale_video then removes its partial file).  An idle
    # worker and repeated SIGINTs are ignored so that cleanup itself is never cut short.  SIGTERM
    # does the same for a busy worker, and ends an idle or already stopping one at once: that is
    # how the coordinator (and multiprocessing at exit) tells a worker to go.
    signal.signal(signal.SIGINT, _interrupt_task)
    signal.signal(signal.SIGTERM, _terminate)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the coordinator across the spawn
    # Warnings travel back in each TaskResult (to the summary and the manifest); printed here as well
    # they would interleave raw lines from every worker with the progress bar.
    logging.getLogger("vidsr").setLevel(logging.ERROR)
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            result = run_task(task, spec)
        except KeyboardInterrupt:  # landed outside the task's own handling: still just "interrupted"
            result = interrupted_result(task.key, STATE.name)
        send(("result", result), wait=-1)  # a result is worth waiting for (-1: no limit)


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the coordinator dies, even by SIGKILL (no orphans)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the coordinator died before the line above ran
        os._exit(1)


def _interrupt_task(signum: int, frame: object) -> None:
    STATE.stopping = True
    if STATE.busy and not STATE.interrupted and not STATE.committing:
        STATE.interrupted = True
        raise KeyboardInterrupt


def _terminate(signum: int, frame: object) -> None:
    if STATE.committing:
        STATE.stopping = True  # moments from done: finish, report it, then go (the coordinator waits)
        return
    if STATE.busy and not STATE.interrupted:
        _interrupt_task(signum, frame)
    os._exit(128 + signum)


def _committing() -> None:
    STATE.committing = True


def get_upscaler(spec: WorkerSpec, device: str | None = None) -> Any:
    """The worker's Upscaler for ``spec``, built on first use and kept for every later file."""
    if STATE.upscaler is None or STATE.spec != spec:
        from vidsr.backends.torch_cuda import use_device
        from vidsr.upscaler import Upscaler

        u, r = spec.upscale, spec.runtime
        use_device(device or STATE.device or r.device)  # cuda:i current for this worker's CUDA/TensorRT calls
        STATE.upscaler = Upscaler(
            u.model,
            u.scale,
            weights=u.weights,
            device=device or STATE.device or r.device,
            precision=r.precision,
            backend=r.backend,
            tile_pixels=r.tile_pixels,
            compile=r.compile,
            engine_dir=r.engine_dir,
            ensemble=u.ensemble,
        )
        STATE.spec = spec
    return STATE.upscaler


def run_task(task: Task, spec: WorkerSpec | None = None) -> TaskResult:
    """Upscale ``task.source`` into ``task.output``; every outcome comes back as a TaskResult."""
    spec = spec or STATE.spec
    if spec is None:
        raise RuntimeError("worker not initialised")
    started = time.perf_counter()
    STATE.send((STATE.name, "start", task.key, 0))
    try:
        STATE.busy, STATE.interrupted = True, False
        if STATE.stopping:  # the stop came between the task's hand-over and now
            return interrupted_result(task.key, STATE.name)
        return _run(task, spec, started)
    except Abort:
        raise
    except KeyboardInterrupt:  # landed before _run's own handling
        return interrupted_result(task.key, STATE.name)
    finally:
        STATE.busy = STATE.committing = False
        STATE.send((STATE.name, "end", task.key, 0))


def _run(task: Task, spec: WorkerSpec, started: float) -> TaskResult:
    def failed(message: str, *, interrupted: bool = False) -> TaskResult:
        return TaskResult(
            task.key,
            False,
            seconds=round(time.perf_counter() - started, 3),
            error=message,
            interrupted=interrupted,
            worker=STATE.name,
        )

    try:
        from vidsr import video

        up = get_upscaler(spec)
        encode = spec.upscale.encode
        if task.codec:
            encode = dataclasses.replace(encode, codec=task.codec)
        counter = _Counter(task.key)
        try:
            summary = video.upscale_video(
                task.source,
                task.output,
                upscaler=up,
                encode=encode,
                batch_size=spec.runtime.batch_size,
                hwdec=spec.runtime.hwdec,
                overwrite=True,
                progress=False,
                on_frames=counter.update,
                before_commit=_committing,
            )
        finally:
            counter.flush()
    except Abort:
        raise  # a second Ctrl-C in the coordinator's own thread: stop everything, now
    except KeyboardInterrupt:
        return failed("interrupted", interrupted=True)
    except VidsrError as exc:
        return failed(str(exc))
    except OSError as exc:
        # Raw OS errors come from writing (the reader's become InputError): disk full, permissions.
        return failed(str(output_error(Path(task.output), exc)))
    except Exception as exc:
        log.debug("task %s failed:\n%s", task.key, traceback.format_exc())
        return failed(f"unexpected error: {type(exc).__name__}: {exc}")
    return TaskResult(
        task.key,
        True,
        frames_in=summary.frames_in,
        frames_out=summary.frames_out,
        seconds=summary.seconds,
        warnings=tuple(summary.warnings),
        worker=STATE.name,
        fields=fields_record(summary.interlace, summary.frame_rate_in, summary.frame_rate_out),
    )


class _Counter:
    """Frame counts for the batch's one bar, sent in bursts rather than per frame."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.pending = 0
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.pending += n
        now = time.monotonic()
        if now - self.last >= _REPORT_EVERY:
            self.flush()
            self.last = now

    def flush(self) -> None:
        if self.pending:
            STATE.send((STATE.name, "frames", self.key, self.pending))
            self.pending = 0


def ray_task(spec: WorkerSpec, task: Task) -> TaskResult:
    """The body of a Ray task: Ray reuses its worker processes, so the Upscaler is built once per process."""
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    return run_task(task, spec)
