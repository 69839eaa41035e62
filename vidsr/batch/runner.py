"""``run_batch``: discover inputs, decide per input from the manifest (skip, reclaim, retry), run the
rest on an executor with one overall progress bar, and record every state change as it happens.

The coordinator is the only writer of the manifest and of joined outputs; workers only upscale.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from vidsr.batch import segments as seg
from vidsr.batch.discover import MANIFEST, WORK_DIR, Job, discover, effective_codec
from vidsr.batch.executors import (
    Executor,
    InlineExecutor,
    ProcessExecutor,
    RayExecutor,
    WorkerDied,
    import_ray,
    plan_workers,
)
from vidsr.batch.manifest import BATCH_KEY, DONE, FAILED, PENDING, RUNNING, Manifest, is_dead, lock, owner
from vidsr.batch.options import BatchOptions
from vidsr.batch.report import SKIPPED, BatchReport, FileOutcome
from vidsr.batch.signals import Abort, stop_on_signals
from vidsr.batch.worker import Event, Task, TaskResult, WorkerSpec
from vidsr.errors import BackendError, OutputError, VidsrError
from vidsr.media.sink import output_error
from vidsr.progress import progress_bar

log = logging.getLogger(__name__)
_POLL = 0.2  # seconds between progress refreshes while waiting for tasks
STOP_GRACE = 60.0  # seconds tasks get to stop cleanly after a stop request before their workers are killed
_PARTIAL = re.compile(r"\.vidsr-(\d+)\.partial")


def run_batch(inputs: Iterable[str], options: BatchOptions) -> BatchReport:
    """Upscale every video ``inputs`` name into ``options.out_dir``; see :mod:`vidsr.batch`."""
    return _Batch(list(inputs), options).run()


@dataclass
class _Active:
    """A file being worked on: its tasks not yet submitted, and how many are in flight."""

    job: Job
    queue: deque[Task] = field(default_factory=deque)
    running: int = 0
    plan: seg.SegmentPlan | None = None
    pieces: dict[int, TaskResult] = field(default_factory=dict)
    failed: str | None = None
    started: float = field(default_factory=time.perf_counter)


class _Batch:
    def __init__(self, inputs: list[str], options: BatchOptions) -> None:
        self.inputs = inputs
        self.options = options
        self.out = options.out_dir.absolute()
        self.outcomes: dict[str, FileOutcome] = {}
        self.notes: list[str] = []
        self.active: dict[str, _Active] = {}
        self.inflight: dict[cf.Future[TaskResult], tuple[str, Task]] = {}
        self.bar: Any = None
        self.workers: dict[str, str] = {}
        self.files_total = 0
        self.files_finished = 0
        self.suspects: set[str] = set()  # tasks in flight when a worker died: they run alone

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> BatchReport:
        started = time.perf_counter()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(self.out, exc) from None
        found = discover(self.inputs, self.out, self.options.upscale.encode.codec)
        self.notes += found.notes
        self._validate()
        with lock(self.out):
            self.manifest = Manifest.open(self.out / MANIFEST)
            try:
                self._check_settings()
                todo = self._decide(found.jobs)
                self._remove_stale_partials(found.jobs)
                if todo:
                    self._execute(todo)
            finally:
                with contextlib.suppress(OSError):
                    (self.out / WORK_DIR).rmdir()  # only when empty: pieces kept for a resume stay
                self.manifest.close()
        files = [self.outcomes[j.key] for j in found.jobs]
        return BatchReport(
            files=files,
            notes=self.notes,
            seconds=time.perf_counter() - started,
            manifest=str(self.manifest.path),
            executor=getattr(self, "executor_name", "none"),
            interrupted=getattr(self, "interrupted", None),
        )

    def _validate(self) -> None:
        """Model, weights and device problems stop the batch before anything runs (not once per file)."""
        from vidsr.backends import BACKENDS, PRECISIONS, resolve_device
        from vidsr.models import build_model

        u, r = self.options.upscale, self.options.runtime
        build_model(u.model, u.scale, weights=u.weights)
        if r.backend not in BACKENDS:
            raise BackendError(f"unknown backend {r.backend!r}; choose from {', '.join(BACKENDS)}")
        if r.precision not in PRECISIONS:
            raise BackendError(f"unknown precision {r.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.options.executor == "local":
            resolve_device(r.device)
        else:
            import_ray()

    def _check_settings(self) -> None:
        settings = self.options.upscale.fingerprint()
        header = self.manifest.get(BATCH_KEY)
        if header is None:
            self.manifest.put({"key": BATCH_KEY, "type": "batch", "settings": settings})
            return
        if header.get("settings") != settings:
            old = header.get("settings") or {}
            diff = ", ".join(f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v)
            raise VidsrError(
                f"{self.out} holds outputs made with other settings ({diff}); "
                "use another output folder, or the same settings to resume"
            )

    # -- what to do with each input ------------------------------------------------------------
    def _decide(self, jobs: tuple[Job, ...]) -> list[Job]:
        todo: list[Job] = []
        new: list[dict[str, Any]] = []
        for job in jobs:
            record = self.manifest.get(job.key)
            final = job.output(self.out)
            outcome = FileOutcome(
                job.key, str(job.source), str(final), PENDING, attempts=int((record or {}).get("attempts", 0))
            )
            self.outcomes[job.key] = outcome
            if record is None:
                if final.exists():
                    outcome.state, outcome.error = (
                        FAILED,
                        (f"{final} already exists and is not in the manifest; remove it or use another output folder"),
                    )
                    continue
                new.append(self._file_record(job, PENDING))
                todo.append(job)
                continue
            state = record.get("state")
            if state == DONE:
                problem = self._verify_done(job, record)
                if problem is None:
                    outcome.state = SKIPPED
                    outcome.frames_in, outcome.frames_out = record.get("frames_in", 0), record.get("frames_out", 0)
                    continue
                self.notes.append(f"redoing {job.key}: {problem}")
                outcome.attempts = 0
                new.append({**record, "state": PENDING, "attempts": 0, "error": None})
            elif state == RUNNING:
                dead = is_dead(record)
                if dead is False:
                    outcome.state = FAILED
                    outcome.error = f"marked running by pid {record.get('pid')} on {record.get('host')}, still alive"
                    continue
                # We hold the OUT_DIR lock, so a run on another host that left "running" has stopped too.
                self.notes.append(f"reclaimed {job.key} from pid {record.get('pid')} on {record.get('host')}")
                new.append({**record, "state": PENDING, "error": "interrupted (its process died)"})
            elif state == FAILED and outcome.attempts > self.options.retry:
                outcome.state, outcome.error = FAILED, record.get("error")
                self.notes.append(
                    f"not retrying {job.key}: failed {outcome.attempts} times (--retry {self.options.retry})"
                )
                continue
            todo.append(job)
        if new:
            self.manifest.put(*new)
        return todo

    def _file_record(self, job: Job, state: str, **extra: Any) -> dict[str, Any]:
        return {
            "key": job.key,
            "type": "file",
            "state": state,
            "input": str(job.source),
            "output": str(job.output(self.out)),
            "attempts": 0,
            **extra,
        }

    def _verify_done(self, job: Job, record: dict[str, Any]) -> str | None:
        """Why a 'done' output cannot be trusted any more, or None when it can."""
        from vidsr.media.probe import probe

        final = job.output(self.out)
        if not final.exists():
            return "its output is missing"
        try:
            stat = job.source.stat()
            if record.get("input_size") is not None and (stat.st_size, stat.st_mtime_ns) != (
                record.get("input_size"),
                record.get("input_mtime_ns"),
            ):
                return "the input changed since"
        except OSError:
            pass  # the input is gone; the output stands on its own
        if record.get("output_size") is not None and final.stat().st_size != record.get("output_size"):
            return "its output changed size"
        try:
            frames = probe(final).frames
        except VidsrError as exc:
            return f"its output is unreadable ({exc})"
        if frames != record.get("frames_out"):
            return f"its output has {frames} frames, the manifest says {record.get('frames_out')}"
        return None

    def _remove_stale_partials(self, jobs: tuple[Job, ...]) -> None:
        """Hidden partial files of runs that died (a second Ctrl-C, a power cut): never final names,
        but they take space.  Only those of dead processes go; we hold the lock, so they are ours."""
        folders = {j.output(self.out).parent for j in jobs} | {p for p in (self.out / WORK_DIR).glob("*") if p.is_dir()}
        for folder in folders:
            for path in folder.glob(".*.partial*"):
                m = _PARTIAL.search(path.name)
                if m and is_dead({"pid": int(m.group(1)), "host": owner()["host"]}):
                    path.unlink(missing_ok=True)
            for path in folder.glob("*.partial"):
                path.unlink(missing_ok=True)  # split pieces in progress, work dir only

    # -- running -------------------------------------------------------------------------------
    def _executor(self) -> Executor:
        o, r = self.options, self.options.runtime
        if o.executor == "ray":
            spec = WorkerSpec(o.upscale, r, r.threads)
            return RayExecutor(spec, o.jobs, o.address)
        count, devices = plan_workers(o.jobs, r.device)
        threads = r.threads or max(1, (os.cpu_count() or 1) // count)
        spec = WorkerSpec(o.upscale, r, threads)
        if count == 1:
            inline = InlineExecutor(spec, devices[0], self._on_event)
            inline.prepare()
            return inline
        return ProcessExecutor(spec, devices)

    def _execute(self, todo: list[Job]) -> None:
        self.files_total = len(todo)
        estimate = sum(n for n in (_estimate_frames(j.source) for j in todo) if n) or None
        executor = self._executor()
        self.executor_name = executor.description
        self.streams_progress = not isinstance(executor, RayExecutor)
        waiting = deque(todo)
        try:
            with (
                stop_on_signals(executor.interrupt) as stop,
                progress_bar(total=estimate, desc=self._desc(), enabled=self.options.progress) as bar,
            ):
                self.bar = bar
                stop_deadline: float | None = None
                while True:
                    while not stop.requested and len(self.inflight) < executor.capacity:
                        task = self._next_task(waiting)
                        if task is None:
                            break
                        self.inflight[executor.submit(task)] = (task.key.split("#")[0], task)
                    if not self.inflight:
                        break
                    executor.poll(_POLL)
                    for event in executor.events():
                        self._on_event(event)
                    if stop.requested and stop_deadline is None:
                        stop_deadline = time.monotonic() + STOP_GRACE
                    if stop_deadline is not None and time.monotonic() > stop_deadline:
                        # Tasks told to stop that have not come back: do not wait on them any longer.
                        self.notes.append(f"workers did not stop within {STOP_GRACE:.0f} s of {stop.name}: killed")
                        executor.kill()
                    for future in [f for f in self.inflight if f.done()]:
                        file_key, task = self.inflight.pop(future)
                        result, died = _result(future, task, stop.requested)
                        if died and not stop.requested:
                            self._crashed(file_key, task, result)
                        else:
                            self.suspects.discard(task.key)
                            self._finished(file_key, task, result, stop.requested)
                if stop.requested:
                    self.interrupted = stop.name
                    self._park(waiting)
        except Abort as exc:
            executor.kill()
            self._abandon(f"interrupted ({exc.args[0]})")
            raise
        except BaseException:
            executor.kill()  # e.g. the manifest cannot be written: do not wait for files it cannot record
            raise
        finally:
            self.bar = None
            executor.close()

    def _desc(self) -> str:
        return f"{self.files_finished}/{self.files_total} files"

    def _on_event(self, event: Event) -> None:
        name, kind, key, frames = event
        if kind == "frames" and self.bar is not None:
            self.bar.update(frames)
        elif kind == "start":
            self.workers[name] = Path(key.split("#")[0]).name + (f"#{key.split('#')[1]}" if "#" in key else "")
        elif kind == "end":
            self.workers.pop(name, None)
        if self.bar is not None and kind != "frames":
            self.bar.set_postfix_str(" ".join(f"{w}={k}" for w, k in sorted(self.workers.items())), refresh=False)

    def _next_task(self, waiting: deque[Job]) -> Task | None:
        """The next task: pieces of files already started come first, so their work dirs stay few.
        A suspect of a worker crash runs alone: nothing starts beside it, it waits for an empty pool."""
        if any(t.key in self.suspects for _, t in self.inflight.values()):
            return None
        queued = [a for a in self.active.values() if a.queue and not a.failed]
        suspect = next((a for a in queued if a.queue[0].key in self.suspects), None)
        if suspect is not None:
            if self.inflight:
                return None
            suspect.running += 1
            return suspect.queue.popleft()
        for active in self.active.values():
            if active.queue and not active.failed:
                active.running += 1
                return active.queue.popleft()
        while waiting:
            job = waiting.popleft()
            task = self._start(job)
            if task is not None:
                return task
        return None

    def _start(self, job: Job) -> Task | None:
        """Mark ``job`` running and return its first task (None if it finished or failed on the spot)."""
        outcome = self.outcomes[job.key]
        outcome.attempts += 1
        try:
            stat = job.source.stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size = mtime = None
        final = job.output(self.out)
        record = self._file_record(
            job, RUNNING, attempts=outcome.attempts, input_size=size, input_mtime_ns=mtime, error=None, **owner()
        )
        active = _Active(job)
        self.active[job.key] = active
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.manifest.put(record)
            self._file_failed(job.key, str(output_error(final, exc)))
            return None
        seconds = self.options.segment_seconds
        if seconds:
            try:
                plan = self._plan(job, seconds)
            except VidsrError as exc:
                self.manifest.put(record)
                self._file_failed(job.key, str(exc))
                return None
            if len(plan.segments) > 1:
                active.plan = plan
                record.update(segments=len(plan.segments), plan=plan.id, segment_seconds=seconds)
                self.manifest.put(record)
                return self._start_pieces(active)
        self.manifest.put(record)
        active.running = 1
        return Task(job.key, str(job.source), str(final), job.source.name)

    # -- segmented files -----------------------------------------------------------------------
    def _work_dir(self, job: Job) -> Path:
        digest = hashlib.sha1(job.key.encode()).hexdigest()[:10]
        return self.out / WORK_DIR / f"{Path(job.key).stem[:40]}-{digest}"

    def _plan(self, job: Job, seconds: float) -> seg.SegmentPlan:
        work = self._work_dir(job)
        plan = seg.plan(job.source, work, seconds)
        old = self.manifest.get(job.key) or {}
        if old.get("plan") != plan.id and work.exists():
            shutil.rmtree(work, ignore_errors=True)  # pieces of another cut or another version of the input
        if len(plan.segments) > 1:
            try:
                work.mkdir(parents=True, exist_ok=True)
                seg.split(job.source, plan)
            except OSError as exc:
                raise output_error(work, exc) from None
        return plan

    def _start_pieces(self, active: _Active) -> Task | None:
        from vidsr.media.probe import probe

        assert active.plan is not None
        key = active.job.key
        done = self.manifest.segments(key)
        fresh = []
        for s in active.plan.segments:
            r = done.get(s.index)
            if r and r.get("plan") == active.plan.id and r.get("state") == DONE and s.output.exists():
                try:
                    if probe(s.output).frames == r.get("frames_out"):
                        active.pieces[s.index] = TaskResult(
                            f"{key}#{s.index}", True, r["frames_in"], r["frames_out"], r.get("seconds", 0.0)
                        )
                        if self.bar is not None:
                            self.bar.update(r["frames_out"])
                        continue
                except VidsrError:
                    pass
            fresh.append(self._piece_record(key, active.plan, s, PENDING))
            # Pieces are NUT files; they must be encoded as the final container would encode them.
            codec = effective_codec(self.options.upscale.encode.codec, Path(key).suffix)
            active.queue.append(
                Task(f"{key}#{s.index}", str(s.source), str(s.output), f"{active.job.source.name}#{s.index}", codec)
            )
        if fresh:
            self.manifest.put(*fresh)
        if not active.queue:
            self._join(active)
            return None
        active.running += 1
        return active.queue.popleft()

    def _piece_record(self, key: str, plan: seg.SegmentPlan, s: seg.Segment, state: str, **extra: Any) -> dict:
        return {
            "key": f"{key}#{s.index}",
            "type": "segment",
            "file": key,
            "index": s.index,
            "plan": plan.id,
            "state": state,
            "input": str(s.source),
            "output": str(s.output),
            "packets": s.packets,
            "start": round(s.start, 3),
            **extra,
        }

    def _join(self, active: _Active) -> None:
        assert active.plan is not None
        job = active.job
        final = job.output(self.out)
        frames_in = sum(r.frames_in for r in active.pieces.values())
        frames_out = sum(r.frames_out for r in active.pieces.values())
        try:
            frames, warnings = seg.join(active.plan, job.source, final)
        except VidsrError as exc:
            self._file_failed(job.key, str(exc))
            return
        if frames != frames_out:
            final.unlink(missing_ok=True)
            self._file_failed(job.key, f"joined {frames} frames of {frames_out}; output discarded")
            return
        warnings += [w for r in active.pieces.values() for w in r.warnings]
        seconds = sum(r.seconds for r in active.pieces.values())
        self._file_done(job.key, frames_in, frames_out, seconds, warnings)
        shutil.rmtree(self._work_dir(job), ignore_errors=True)

    # -- results -------------------------------------------------------------------------------
    def _finished(self, file_key: str, task: Task, result: TaskResult, stopping: bool) -> None:
        active = self.active[file_key]
        active.running -= 1
        if not self.streams_progress and self.bar is not None and result.ok:
            self.bar.update(result.frames_out)
        if result.interrupted or (stopping and not result.ok):
            self._interrupted(active, task)
            return
        if "#" not in task.key:
            if result.ok:
                self._file_done(file_key, result.frames_in, result.frames_out, result.seconds, list(result.warnings))
            else:
                self._file_failed(file_key, result.error or "failed")
            return
        assert active.plan is not None
        piece = active.plan.segments[int(task.key.split("#")[1])]
        if result.ok and result.frames_in != piece.packets:
            result = TaskResult(
                result.key,
                False,
                error=(
                    f"piece {piece.index} decoded {result.frames_in} frames of {piece.packets}: this file cannot be "
                    "cut at its keyframes exactly; run it without --segment-seconds"
                ),
            )
        if not result.ok:
            self.manifest.put(self._piece_record(file_key, active.plan, piece, FAILED, error=result.error))
            if not active.failed:
                self._file_failed(file_key, f"piece {piece.index} (from {piece.start:.1f}s): {result.error}")
            return
        active.pieces[piece.index] = result
        self.manifest.put(
            self._piece_record(
                file_key,
                active.plan,
                piece,
                DONE,
                frames_in=result.frames_in,
                frames_out=result.frames_out,
                seconds=result.seconds,
            )
        )
        if len(active.pieces) == len(active.plan.segments) and not active.failed:
            self._join(active)

    def _crashed(self, file_key: str, task: Task, result: TaskResult) -> None:
        """A worker process died on this task (FFmpeg crashed, the OOM killer).  Once may be bad luck
        (memory taken by the tasks beside it): the task becomes a suspect, goes back in the queue and
        runs again alone (see :meth:`_next_task`).  A second death fails its file with the reason;
        the others go on: a file that kills its worker cannot stop the batch."""
        if task.key in self.suspects:
            self.suspects.discard(task.key)
            error = f"{result.error}, twice while upscaling it"
            self._finished(file_key, task, TaskResult(task.key, False, error=error), stopping=False)
            return
        self.suspects.add(task.key)
        active = self.active[file_key]
        active.running -= 1
        active.queue.appendleft(task)

    def _file_done(self, key: str, frames_in: int, frames_out: int, seconds: float, warnings: list[str]) -> None:
        outcome = self.outcomes[key]
        final = Path(outcome.output)
        try:
            size = final.stat().st_size
        except OSError as exc:
            self._file_failed(key, f"output vanished after writing: {exc.strerror}")
            return
        active = self.active.pop(key, None)
        segments = len(active.plan.segments) if active and active.plan else None
        self.manifest.update(
            key,
            state=DONE,
            frames_in=frames_in,
            frames_out=frames_out,
            seconds=round(seconds, 3),
            output_size=size,
            error=None,
            warnings=warnings,
            segments=segments,
        )
        outcome.state, outcome.frames_in, outcome.frames_out = DONE, frames_in, frames_out
        outcome.seconds, outcome.warnings, outcome.segments, outcome.error = round(seconds, 3), warnings, segments, None
        self._count_finished()

    def _file_failed(self, key: str, error: str) -> None:
        active = self.active.get(key)
        if active is not None:
            active.failed = error
            active.queue.clear()
            if active.running > 0:
                # Pieces still in flight finish (and are kept for a retry); the file is failed now.
                pass
            else:
                self.active.pop(key, None)
        self.manifest.update(key, state=FAILED, error=error)
        outcome = self.outcomes[key]
        folder = Path(outcome.output).parent
        if folder != self.out:
            with contextlib.suppress(OSError):
                folder.rmdir()  # made for this output; only removed when nothing else is in it
        outcome.state, outcome.error = FAILED, error
        self._count_finished()

    def _interrupted(self, active: _Active, task: Task) -> None:
        key = active.job.key
        if "#" in task.key and active.plan is not None:
            piece = active.plan.segments[int(task.key.split("#")[1])]
            self.manifest.put(self._piece_record(key, active.plan, piece, PENDING, error="interrupted"))
        if active.failed or self.outcomes[key].state != PENDING:
            return
        if active.running == 0:
            self._park_file(key)

    def _park_file(self, key: str) -> None:
        """Back to pending, and the attempt not counted: stopping a run is not the file's fault."""
        outcome = self.outcomes[key]
        outcome.attempts = max(0, outcome.attempts - 1)
        self.manifest.update(key, state=PENDING, error="interrupted", attempts=outcome.attempts)
        self.active.pop(key, None)

    def _park(self, waiting: deque[Job]) -> None:
        for key, active in list(self.active.items()):
            if active.running == 0 and not active.failed and self.outcomes[key].state == PENDING:
                self._park_file(key)

    def _abandon(self, error: str) -> None:
        """Second signal: record what was in flight as pending, fast, and leave."""
        records = []
        for key, active in self.active.items():
            if not active.failed and self.outcomes[key].state == PENDING:
                outcome = self.outcomes[key]
                outcome.attempts = max(0, outcome.attempts - 1)
                records.append(
                    {
                        **(self.manifest.get(key) or {"key": key}),
                        "state": PENDING,
                        "error": error,
                        "attempts": outcome.attempts,
                    }
                )
        if records:
            # If this fails they stay "running": the next run reclaims them, this pid being dead by then.
            with contextlib.suppress(OutputError):
                self.manifest.put(*records)

    def _count_finished(self) -> None:
        self.files_finished += 1
        if self.bar is not None:
            self.bar.set_description_str(self._desc(), refresh=False)


def _result(future: cf.Future[TaskResult], task: Task, stopping: bool) -> tuple[TaskResult, bool]:
    """The task's result, and whether its worker died; a dead worker or a cancelled task becomes a
    failed result."""
    try:
        return future.result(), False
    except WorkerDied as exc:
        return TaskResult(task.key, False, error=str(exc)), True
    except (cf.CancelledError, KeyboardInterrupt):
        return TaskResult(task.key, False, error="interrupted", interrupted=True), False
    except Exception as exc:
        if stopping:
            return TaskResult(task.key, False, error="interrupted", interrupted=True), False
        return TaskResult(task.key, False, error=f"task failed: {type(exc).__name__}: {exc}"), False


def _estimate_frames(path: Path) -> int | None:
    """The container's own frame count (or duration x rate): instant, good enough for a progress bar."""
    try:
        with av.open(str(path), metadata_errors="replace") as c:
            video = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
            if not video:
                return None
            s = video[0]
            if s.frames:
                return int(s.frames)
            rate = s.average_rate or s.guessed_rate
            if c.duration and rate:
                return int(c.duration / 1_000_000 * float(rate))
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    return None
