"""The run loop: keep the executor full, start each file as its turn comes (as one task or as
pieces), send each result where it is recorded, give a task whose worker died a second chance
alone, and on a stop request let the tasks in flight come back before parking them."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from collections import deque
from collections.abc import Callable

from vidsr.batch import pieces, stopping
from vidsr.batch.discover import Job
from vidsr.batch.executors import Executor, InlineExecutor, ProcessExecutor, RayExecutor, WorkerDied, plan_workers
from vidsr.batch.ledger import Active, Ledger
from vidsr.batch.manifest import RUNNING, owner
from vidsr.batch.options import BatchOptions
from vidsr.batch.signals import Abort, stop_on_signals
from vidsr.batch.worker import Event, Task, TaskResult, WorkerSpec, interrupted_result
from vidsr.errors import VidsrError
from vidsr.media.sink import output_error

_POLL = 0.2  # seconds between progress refreshes while waiting for tasks
STOP_GRACE = 60.0  # seconds tasks get to stop cleanly after a stop request before their workers are killed


def make_executor(options: BatchOptions, on_event: Callable[[Event], None]) -> Executor:
    o, r = options, options.runtime
    if o.executor == "ray":
        return RayExecutor(WorkerSpec(o.upscale, r, r.threads), o.jobs, o.address)
    count, devices = plan_workers(o.jobs, r.device)
    threads = r.threads or max(1, (os.cpu_count() or 1) // count)
    spec = WorkerSpec(o.upscale, r, threads)
    if count == 1:
        inline = InlineExecutor(spec, devices[0], on_event)
        inline.prepare()
        return inline
    return ProcessExecutor(spec, devices)


class RunLoop:
    def __init__(self, ledger: Ledger, options: BatchOptions) -> None:
        self.ledger = ledger
        self.options = options
        self.inflight: dict[cf.Future[TaskResult], Task] = {}
        self.suspects: set[str] = set()  # tasks in flight when a worker died: they run alone
        self.executor_name = "none"
        self.interrupted: str | None = None  # the signal's name, once one stopped the run
        self.streams_progress = True  # workers send frame counts as they go (not Ray: counted per result)

    def run(self, todo: list[Job]) -> None:
        progress = self.ledger.progress
        executor = make_executor(self.options, progress.on_event)
        self.executor_name = executor.description
        self.streams_progress = not isinstance(executor, RayExecutor)
        waiting = deque(todo)
        try:
            with (
                stop_on_signals(executor.interrupt) as stop,
                progress.shown(todo, enabled=self.options.progress),
            ):
                stop_deadline: float | None = None
                while True:
                    while not stop.requested and len(self.inflight) < executor.capacity:
                        task = self._next_task(waiting)
                        if task is None:
                            break
                        self.inflight[executor.submit(task)] = task
                    if not self.inflight:
                        break
                    executor.poll(_POLL)
                    for event in executor.events():
                        progress.on_event(event)
                    if stop.requested and stop_deadline is None:
                        stop_deadline = time.monotonic() + STOP_GRACE
                    if stop_deadline is not None and time.monotonic() > stop_deadline:
                        # Tasks told to stop that have not come back: do not wait on them any longer.
                        self.ledger.notes.append(
                            f"workers did not stop within {STOP_GRACE:.0f} s of {stop.name}: killed"
                        )
                        executor.kill()
                    for future in [f for f in self.inflight if f.done()]:
                        task = self.inflight.pop(future)
                        result, died = _result(future, task, stop.requested)
                        if died and not stop.requested:
                            self._crashed(task, result)
                        else:
                            self.suspects.discard(task.key)
                            self._finished(task, result, stop.requested)
                if stop.requested:
                    self.interrupted = stop.name
                    stopping.park_idle(self.ledger)
        except Abort as exc:
            executor.kill()
            stopping.abandon(self.ledger, f"interrupted ({exc.args[0]})")
            raise
        except BaseException:
            executor.kill()  # e.g. the manifest cannot be written: do not wait for files it cannot record
            raise
        finally:
            executor.close()

    # -- what runs next ------------------------------------------------------------------------
    def _next_task(self, waiting: deque[Job]) -> Task | None:
        """The next task: pieces of files already started come first, so their work dirs stay few.
        A suspect of a worker crash runs alone: nothing starts beside it, it waits for an empty pool."""
        if any(t.key in self.suspects for t in self.inflight.values()):
            return None
        queued = [a for a in self.ledger.active.values() if a.queue and not a.failed]
        suspect = next((a for a in queued if a.queue[0].key in self.suspects), None)
        if suspect is not None:
            if self.inflight:
                return None
            suspect.running += 1
            return suspect.queue.popleft()
        for active in queued:
            active.running += 1
            return active.queue.popleft()
        while waiting:
            task = self._start(waiting.popleft())
            if task is not None:
                return task
        return None

    def _start(self, job: Job) -> Task | None:
        """Mark ``job`` running and return its first task (None if it finished or failed on the spot)."""
        ledger = self.ledger
        outcome = ledger.outcomes[job.key]
        outcome.attempts += 1
        try:
            stat = job.source.stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size = mtime = None
        final = job.output(ledger.out)
        record = ledger.file_record(
            job, RUNNING, attempts=outcome.attempts, input_size=size, input_mtime_ns=mtime, error=None, **owner()
        )
        active = Active(job)
        ledger.active[job.key] = active
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            ledger.manifest.put(record)
            ledger.file_failed(job.key, str(output_error(final, exc)))
            return None
        seconds = self.options.segment_seconds
        if seconds:
            try:
                plan = pieces.cut(ledger, job, seconds, self.options.upscale.encode.deinterlace)
            except VidsrError as exc:
                ledger.manifest.put(record)
                ledger.file_failed(job.key, str(exc))
                return None
            if len(plan.segments) > 1:
                active.plan = plan
                record.update(segments=len(plan.segments), plan=plan.id, segment_seconds=seconds)
                ledger.manifest.put(record)
                return pieces.first_task(ledger, active, self.options.upscale.encode)
        ledger.manifest.put(record)
        active.running = 1
        return Task(job.key, str(job.source), str(final))

    # -- what came back ------------------------------------------------------------------------
    def _finished(self, task: Task, result: TaskResult, stopping_now: bool) -> None:
        ledger = self.ledger
        active = ledger.active[task.file_key]
        active.running -= 1
        if not self.streams_progress and result.ok:
            ledger.progress.frames(result.frames_out)
        if result.interrupted or (stopping_now and not result.ok):
            stopping.task_stopped(ledger, active, task)
        elif task.piece is not None:
            pieces.piece_finished(ledger, active, task, result)
        elif result.ok:
            ledger.file_done(
                task.key, result.frames_in, result.frames_out, result.seconds, list(result.warnings), result.fields
            )
        else:
            ledger.file_failed(task.key, result.error or "failed")

    def _crashed(self, task: Task, result: TaskResult) -> None:
        """A worker process died on this task (FFmpeg crashed, the OOM killer).  Once may be bad luck
        (memory taken by the tasks beside it): the task becomes a suspect, goes back in the queue and
        runs again alone (see :meth:`_next_task`).  A second death fails its file with the reason;
        the others go on: a file that kills its worker cannot stop the batch."""
        if task.key in self.suspects:
            self.suspects.discard(task.key)
            error = f"{result.error}, twice while upscaling it"
            self._finished(task, TaskResult(task.key, False, error=error), stopping_now=False)
            return
        self.suspects.add(task.key)
        active = self.ledger.active[task.file_key]
        active.running -= 1
        active.queue.appendleft(task)


def _result(future: cf.Future[TaskResult], task: Task, stopping_now: bool) -> tuple[TaskResult, bool]:
    """The task's result, and whether its worker died; a dead worker or a cancelled task becomes a
    failed result."""
    try:
        return future.result(), False
    except WorkerDied as exc:
        return TaskResult(task.key, False, error=str(exc)), True
    except (cf.CancelledError, KeyboardInterrupt):
        return interrupted_result(task.key), False
    except Exception as exc:
        if stopping_now:
            return interrupted_result(task.key), False
        return TaskResult(task.key, False, error=f"task failed: {type(exc).__name__}: {exc}"), False
