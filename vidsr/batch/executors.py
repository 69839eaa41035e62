"""Where tasks run.  All executors run the same :func:`vidsr.batch.worker.run_task`, so their outputs
are identical; they differ only in how tasks reach a worker and how a stop request reaches a task.

* :class:`InlineExecutor`: one worker, the coordinator process itself (no process start-up cost,
  and ``--jobs 1`` on a machine without GPUs, or with one, needs nothing more).
* :class:`ProcessExecutor`: ``jobs`` worker processes (``spawn``: no forked CUDA or FFmpeg state),
  each building its Upscaler once, each pinned to one GPU when there are GPUs.  Not a
  ``ProcessPoolExecutor``: its workers share one result queue and its lock, so a worker that dies
  while sending (SIGSEGV, SIGKILL) leaves the others waiting on that lock forever, and its shutdown
  joins them without a bound.  Here each worker has its own pipe and every wait is bounded.
* :class:`RayExecutor`: one Ray task per file or piece, one GPU each when the cluster has GPUs.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection as mp_connection
from typing import Any, Protocol

from vidsr.batch import worker
from vidsr.batch.signals import STOP_SIGNALS
from vidsr.batch.worker import Event, Task, TaskResult, WorkerSpec, interrupted_result
from vidsr.errors import VidsrError

_EXIT_WAIT = 10.0  # seconds workers get to exit (or to stop their task) before the next, harder, signal
_KILL_WAIT = 5.0  # seconds to reap SIGKILLed workers


class Executor(Protocol):
    capacity: int  # how many tasks it runs at once; the runner keeps that many in flight
    description: str

    def submit(self, task: Task) -> cf.Future[TaskResult]: ...

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a task to finish (its future is then done)."""
        ...

    def events(self) -> list[Event]:
        """Progress events since the last call."""
        ...

    def interrupt(self) -> None:
        """Ask running tasks to stop (they come back with ``interrupted``); called from a signal handler."""
        ...

    def kill(self) -> None:
        """Stop every worker now, cleanup or not."""
        ...

    def close(self) -> None: ...


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def plan_workers(jobs: int | None, device: str) -> tuple[int, list[str | None]]:
    """How many local workers and the device of each: one per GPU by default, else ``jobs`` on the CPU
    (GPUs shared round-robin when ``jobs`` exceeds them)."""
    gpus = 0 if device == "cpu" else gpu_count()
    if device.startswith("cuda:"):
        return jobs or 1, [device] * (jobs or 1)
    if gpus and device in ("auto", "cuda"):
        n = jobs or gpus
        return n, [f"cuda:{i % gpus}" for i in range(n)]
    n = jobs or 1
    return n, [None] * n


class InlineExecutor:
    """Runs each task in the calling thread when submitted."""

    capacity = 1

    def __init__(self, spec: WorkerSpec, device: str | None, on_event: Callable[[Event], None]) -> None:
        self.spec = spec
        self.description = "1 worker (in process)"
        worker.STATE.device = device
        worker.STATE.name = "w0"
        worker.STATE.send = on_event
        worker.STATE.stopping = False
        self._threads = None
        if spec.threads:
            import torch

            self._threads = torch.get_num_threads()
            torch.set_num_threads(spec.threads)

    def prepare(self) -> None:
        """Build the Upscaler now, so a model or device error stops the batch before any file starts."""
        worker.get_upscaler(self.spec)

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        future: cf.Future[TaskResult] = cf.Future()
        future.set_result(worker.run_task(task, self.spec))
        return future

    def poll(self, timeout: float) -> None:
        pass  # tasks are done when submit returns

    def events(self) -> list[Event]:
        return []  # delivered straight to on_event

    def interrupt(self) -> None:
        # Runs in the signal handler, in the thread running the task: raising here stops the task
        # (and a task about to start comes back interrupted).
        worker._interrupt_task(signal.SIGINT, None)

    def kill(self) -> None:
        pass

    def close(self) -> None:
        worker.STATE.send = lambda event: None
        worker.STATE.upscaler = None  # the caller's process lives on: give the model's memory back
        if self._threads:
            import torch

            torch.set_num_threads(self._threads)


class WorkerDied(Exception):
    """The process running a task exited without a result (a crash in a decoder, the OOM killer)."""


def death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        why = {signal.SIGKILL: "killed, maybe out of memory", signal.SIGSEGV: "crashed, maybe in a decoder"}
        return f"worker process died of {name} ({why.get(signal.Signals(-exitcode), 'a signal')})"
    return f"worker process exited with status {exitcode}"


@dataclass
class _Worker:
    process: Any
    conn: Any
    device: str | None
    task: Task | None = None
    future: cf.Future[TaskResult] | None = None


class ProcessExecutor:
    """``len(devices)`` spawned worker processes, each with its own pipe (a worker that dies holds no
    lock another needs), each replaced when it dies.  Every wait is bounded."""

    def __init__(self, spec: WorkerSpec, devices: list[str | None]) -> None:
        self.spec = spec
        self.capacity = len(devices)
        gpus = sorted({d for d in devices if d})
        self.description = f"{self.capacity} worker processes" + (f" on {', '.join(gpus)}" if gpus else " on the CPU")
        self._ctx = multiprocessing.get_context("spawn")
        self._events: list[Event] = []
        self._stopping = False
        self._workers = [self._spawn(d) for d in devices]

    def _spawn(self, device: str | None) -> _Worker:
        ours, theirs = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker.process_main, args=(self.spec, device, theirs), name="vidsr-worker", daemon=True
        )
        # The child inherits this mask: a stop signal that reaches it while it starts up waits until
        # its handlers are in place (instead of a KeyboardInterrupt traceback from an import).
        # Here the signal stays pending, not lost.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()  # only the child holds its end: its death is an EOF here
        return _Worker(process, ours, device)

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        w = next(w for w in self._workers if w.future is None)  # the runner keeps within capacity
        w.task, w.future = task, cf.Future()
        future = w.future
        # A stop that arrived while the runner chose this task (it was marked running, not yet sent)
        # told only the workers busy then: sent now, it would run to the end.  The check comes after
        # the future is set, so a stop that lands from here on finds this worker busy and signals it.
        if self._stopping:
            self._settle(w, None)
            future.set_result(interrupted_result(task.key))
            return future
        with contextlib.suppress(OSError):
            w.conn.send(task)  # a dead worker is found by poll(), which fails its task
        return future

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` for messages or a worker's death, and act on them."""
        live = [w for w in self._workers if w.process.exitcode is None and not w.conn.closed]
        if live:
            with contextlib.suppress(OSError):
                mp_connection.wait([w.conn for w in live] + [w.process.sentinel for w in live], timeout)
        for i, w in enumerate(self._workers):
            self._drain(w)
            if w.future is None and w.conn.closed:
                continue  # dead and settled before
            if w.process.exitcode is not None or w.conn.closed:
                w.process.join(_KILL_WAIT)  # its pipe closed as it exited: get the exit status
                self._settle(w, WorkerDied(death_reason(w.process.exitcode)))
                w.conn.close()
                if not self._stopping:
                    self._workers[i] = self._spawn(w.device)

    def _drain(self, w: _Worker) -> None:
        try:
            while not w.conn.closed and w.conn.poll():
                kind, payload = w.conn.recv()
                if kind == "event":
                    self._events.append(payload)
                elif w.future is not None:
                    w.future.set_result(payload)
                    w.task = w.future = None
        except (EOFError, OSError):
            w.conn.close()  # died mid-message; poll() sees the exit

    def _settle(self, w: _Worker, exc: BaseException | None) -> None:
        """Free ``w`` for the next task; its unfinished task, if any, fails with ``exc``."""
        if exc is not None and w.future is not None and not w.future.done():
            w.future.set_exception(exc)
        w.task = w.future = None

    def events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def interrupt(self) -> None:
        # Runs in a signal handler.  Idle workers ignore it; busy ones stop their task and remove its
        # partial output.  No worker is replaced from now on.
        self._stopping = True
        for w in self._workers:
            if w.future is not None and w.process.pid:
                with contextlib.suppress(OSError):
                    os.kill(w.process.pid, signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL every worker; what they were doing fails as interrupted."""
        self._stopping = True
        for w in self._workers:
            with contextlib.suppress(OSError, ValueError):
                w.process.kill()
        self._reap(_KILL_WAIT)
        for w in self._workers:
            self._settle(w, cf.CancelledError())

    def close(self) -> None:
        """Let idle workers exit (a None, then EOF); SIGTERM, then SIGKILL, what is left after a bound."""
        self._stopping = True
        for w in self._workers:
            with contextlib.suppress(OSError):
                if w.future is None:
                    w.conn.send(None)
        if not self._reap(_EXIT_WAIT):
            for w in self._workers:
                with contextlib.suppress(OSError, ValueError):
                    w.process.terminate()  # busy ones stop their task; idle or stuck ones exit
            if not self._reap(_EXIT_WAIT):
                self.kill()
        for w in self._workers:
            self._settle(w, cf.CancelledError())
            w.conn.close()

    def _reap(self, seconds: float) -> bool:
        """Join the workers for up to ``seconds`` in all; True when every one has exited."""
        deadline = time.monotonic() + seconds
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
        return all(w.process.exitcode is not None for w in self._workers)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise VidsrError("--executor ray needs Ray: pip install 'vidsr[ray]'") from None
    return ray


class RayExecutor:
    """One Ray task per file or piece.  Without ``address`` a local Ray is started with ``jobs`` CPUs
    (and the GPUs Ray finds); with one, the tasks go to that cluster, whose workers must see the same
    paths (a shared file system) and have vidsr installed."""

    def __init__(self, spec: WorkerSpec, jobs: int | None, address: str | None) -> None:
        ray = import_ray()
        self.ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            try:
                if address:
                    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
                else:
                    ray.init(
                        num_cpus=jobs or os.cpu_count() or 1,
                        include_dashboard=False,
                        logging_level=logging.WARNING,
                        log_to_driver=False,
                    )
            except Exception as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise VidsrError(f"cannot start {where}: {exc}") from None
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        if gpus:
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
            self.capacity = gpus
        else:
            options = {"num_cpus": 1}
            self.capacity = jobs or cpus
        # max_retries=0: a task that fails is reported (and retried by --retry on a rerun), not rerun
        # behind our back; a cancelled task must stay cancelled.
        self._remote = ray.remote(max_retries=0, **options)(worker.ray_task)
        self.description = f"Ray ({cpus} CPUs, {gpus} GPUs), {self.capacity} tasks at a time"
        self._refs: dict[cf.Future[TaskResult], Any] = {}
        self._stopping = False
        self.spec = spec

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        future: cf.Future[TaskResult]
        if self._stopping:  # the stop came while the runner chose this task: it must not start
            future = cf.Future()
            future.set_result(interrupted_result(task.key))
            return future
        ref = self._remote.remote(self.spec, task)
        future = ref.future()
        self._refs[future] = ref
        future.add_done_callback(lambda f: self._refs.pop(f, None))
        if self._stopping:  # it landed while the task was being submitted, before interrupt() could see it
            with contextlib.suppress(Exception):
                self.ray.cancel(ref)
        return future

    def poll(self, timeout: float) -> None:
        cf.wait(list(self._refs), timeout=timeout, return_when=cf.FIRST_COMPLETED)

    def events(self) -> list[Event]:
        return []  # progress is counted when a task returns

    def interrupt(self) -> None:
        self._stopping = True
        for ref in list(self._refs.values()):
            with contextlib.suppress(Exception):
                self.ray.cancel(ref)  # raises KeyboardInterrupt in the task: it cleans up and returns

    def kill(self) -> None:
        for ref in list(self._refs.values()):
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self.close()

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
