"""Files cut at keyframes into pieces (``--segment-seconds``), seen from the run: cutting a file into
its work folder, resuming the pieces a stopped run finished, recording each piece as it comes back,
and joining them once all are done.  The cutting and joining themselves are in
:mod:`vidsr.batch.segments`."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from vidsr.batch import segments as seg
from vidsr.batch.discover import WORK_DIR, Job, effective_codec
from vidsr.batch.ledger import Active, Ledger
from vidsr.batch.manifest import DONE, FAILED, PENDING
from vidsr.batch.worker import Task, TaskResult
from vidsr.errors import VidsrError
from vidsr.media.sink import EncodeOptions, output_error


def work_dir(out: Path, job: Job) -> Path:
    digest = hashlib.sha1(job.key.encode()).hexdigest()[:10]
    return out / WORK_DIR / f"{Path(job.key).stem[:40]}-{digest}"


def cut(ledger: Ledger, job: Job, seconds: float, deinterlace: str = "auto") -> seg.SegmentPlan:
    """Plan the cut of ``job`` into pieces of about ``seconds``, and cut it (when it has more than one).
    ``deinterlace``: the run's mode (telecined film is cut on its cadence)."""
    work = work_dir(ledger.out, job)
    plan = seg.plan(job.source, work, seconds, deinterlace)
    old = ledger.manifest.get(job.key) or {}
    if old.get("plan") != plan.id and work.exists():
        shutil.rmtree(work, ignore_errors=True)  # pieces of another cut or another version of the input
    if len(plan.segments) > 1:
        try:
            work.mkdir(parents=True, exist_ok=True)
            seg.split(job.source, plan)
        except OSError as exc:
            raise output_error(work, exc) from None
    return plan


def record(key: str, plan: seg.SegmentPlan, s: seg.Segment, state: str, **extra: Any) -> dict[str, Any]:
    """The manifest record of piece ``s`` of file ``key`` in ``state``."""
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


def first_task(ledger: Ledger, active: Active, encode: EncodeOptions) -> Task | None:
    """Queue the pieces still to do (those a stopped run finished, and whose output is intact, are
    kept) and return the first; with none left, join the file and return None."""
    from vidsr.media.probe import probe

    assert active.plan is not None
    key = active.job.key
    done = ledger.manifest.segments(key)
    fresh = []
    # Pieces are NUT files; they must be encoded as the final container would encode them.
    codec = effective_codec(encode.codec, Path(key).suffix, lossless=encode.lossless)
    for s in active.plan.segments:
        r = done.get(s.index)
        if r and r.get("plan") == active.plan.id and r.get("state") == DONE and s.output.exists():
            try:
                if probe(s.output).frames == r.get("frames_out"):
                    active.pieces[s.index] = TaskResult(
                        f"{key}#{s.index}",
                        True,
                        r["frames_in"],
                        r["frames_out"],
                        r.get("seconds", 0.0),
                        fields=r.get("fields"),
                    )
                    ledger.progress.frames(r["frames_out"])
                    continue
            except VidsrError:
                pass
        fresh.append(record(key, active.plan, s, PENDING))
        active.queue.append(Task(f"{key}#{s.index}", str(s.source), str(s.output), codec, s.index))
    if fresh:
        ledger.manifest.put(*fresh)
    if not active.queue:
        join(ledger, active)
        return None
    active.running += 1
    return active.queue.popleft()


def piece_finished(ledger: Ledger, active: Active, task: Task, result: TaskResult) -> None:
    """Record a piece that came back (done or failed); join the file when it was the last."""
    assert active.plan is not None and task.piece is not None
    key = active.job.key
    piece = active.plan.segments[task.piece]
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
        ledger.manifest.put(record(key, active.plan, piece, FAILED, error=result.error))
        if not active.failed:
            ledger.file_failed(key, f"piece {piece.index} (from {piece.start:.1f}s): {result.error}")
        return
    active.pieces[piece.index] = result
    ledger.manifest.put(
        record(
            key,
            active.plan,
            piece,
            DONE,
            frames_in=result.frames_in,
            frames_out=result.frames_out,
            seconds=result.seconds,
            fields=result.fields,
        )
    )
    if len(active.pieces) == len(active.plan.segments) and not active.failed:
        join(ledger, active)


def join(ledger: Ledger, active: Active) -> None:
    """Join the pieces into the final output; the work folder goes once the file is done."""
    assert active.plan is not None
    job = active.job
    final = job.output(ledger.out)
    frames_in = sum(r.frames_in for r in active.pieces.values())
    frames_out = sum(r.frames_out for r in active.pieces.values())
    try:
        frames, warnings = seg.join(active.plan, job.source, final)
    except VidsrError as exc:
        ledger.file_failed(job.key, str(exc))
        return
    if frames != frames_out:
        final.unlink(missing_ok=True)
        ledger.file_failed(job.key, f"joined {frames} frames of {frames_out}; output discarded")
        return
    warnings += [w for r in active.pieces.values() for w in r.warnings]
    seconds = sum(r.seconds for r in active.pieces.values())
    # Every piece was told the whole file's verdict: the first that reports one speaks for the file.
    fields = next((active.pieces[i].fields for i in sorted(active.pieces) if active.pieces[i].fields), None)
    ledger.file_done(job.key, frames_in, frames_out, seconds, warnings, fields)
    shutil.rmtree(work_dir(ledger.out, job), ignore_errors=True)
