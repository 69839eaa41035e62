"""Where tasks run.  All executors run the same :func:`vidsr.batch.worker.run_task`, so their outputs
are identical; they differ only in how tasks reach a worker and how a stop request reaches a task.

* :class:`InlineExecutor`: one worker, the coordinator process itself (no process start-up cost,
  and ``--jobs 1`` on a machine without GPUs, or with one, needs nothing more).
* :class:`ProcessExecutor`: ``jobs`` worker processes (``spawn``: no forked CUDA or FFmpeg state),
  each building its Upscaler once, each pinned to one GPU when there are GPUs.
* :class:`RayExecutor`: one Ray task per file or piece, one GPU each when the cluster has GPUs.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from vidsr.batch import worker
from vidsr.batch.worker import Event, Task, TaskResult, WorkerSpec
from vidsr.errors import VidsrError


class Executor(Protocol):
    capacity: int  # how many tasks it runs at once; the runner keeps that many in flight
    description: str

    def submit(self, task: Task) -> cf.Future[TaskResult]: ...

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

    def events(self) -> list[Event]:
        return []  # delivered straight to on_event

    def interrupt(self) -> None:
        # Runs in the signal handler, in the thread running the task: raising here stops the task.
        worker._interrupt_task(signal.SIGINT, None)

    def kill(self) -> None:
        pass

    def close(self) -> None:
        worker.STATE.send = lambda event: None
        worker.STATE.upscaler = None  # the caller's process lives on: give the model's memory back
        if self._threads:
            import torch

            torch.set_num_threads(self._threads)


class ProcessExecutor:
    """A pool of spawned worker processes; rebuilt if a worker dies (a crash in FFmpeg, the OOM killer)."""

    def __init__(self, spec: WorkerSpec, devices: list[str | None]) -> None:
        self.spec = spec
        self.devices = devices
        self.capacity = len(devices)
        gpus = sorted({d for d in devices if d})
        self.description = f"{self.capacity} worker processes" + (f" on {', '.join(gpus)}" if gpus else " on the CPU")
        self._ctx = multiprocessing.get_context("spawn")
        self._events = self._ctx.Queue()
        self._pool: cf.ProcessPoolExecutor | None = None
        self._start()

    def _start(self) -> None:
        device_queue = self._ctx.Queue()
        for d in self.devices:
            device_queue.put(d)
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self.capacity,
            mp_context=self._ctx,
            initializer=worker.init_process_worker,
            initargs=(self.spec, device_queue, self._events),
        )

    def restart(self) -> None:
        """After a worker died the pool is broken for good; start a fresh one for what remains."""
        self.kill()
        self._start()

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        assert self._pool is not None
        try:
            return self._pool.submit(worker.run_task, task)
        except BrokenProcessPool as exc:
            # A worker died since the last look: answer like the tasks in flight will, so the runner
            # handles them all alike (and restarts the pool).
            future: cf.Future[TaskResult] = cf.Future()
            future.set_exception(exc)
            return future

    def events(self) -> list[Event]:
        out = []
        with contextlib.suppress(queue.Empty, OSError, EOFError):
            while True:
                out.append(self._events.get_nowait())
        return out

    def _pids(self) -> list[int]:
        processes = getattr(self._pool, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid]

    def interrupt(self) -> None:
        # Idle workers ignore it; busy ones stop their task and remove its partial output.
        for pid in self._pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)

    def kill(self) -> None:
        for pid in self._pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


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
        self.spec = spec

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        ref = self._remote.remote(self.spec, task)
        future = ref.future()
        self._refs[future] = ref
        future.add_done_callback(lambda f: self._refs.pop(f, None))
        return future

    def events(self) -> list[Event]:
        return []  # progress is counted when a task returns

    def interrupt(self) -> None:
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
