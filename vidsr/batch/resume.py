"""Before anything runs: what this run does with each input, decided from the manifest a previous
run left.  New inputs are recorded ``pending``; ``done`` ones are skipped once their output checks
out, else redone; ``running`` ones of a process that died are reclaimed; ``failed`` ones are retried
up to ``--retry`` times.  A folder holding outputs made with other settings is refused, and partial
files of dead runs are removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidsr.batch.discover import WORK_DIR, Job
from vidsr.batch.ledger import Ledger
from vidsr.batch.manifest import BATCH_KEY, DONE, FAILED, PENDING, RUNNING, Manifest, is_dead, owner
from vidsr.batch.options import UpscaleSettings
from vidsr.batch.report import SKIPPED, FileOutcome
from vidsr.errors import VidsrError
from vidsr.media.sink import PARTIAL


def check_settings(manifest: Manifest, upscale: UpscaleSettings, out: Path) -> None:
    """Outputs made with other settings must not be mixed with these in one folder."""
    settings = upscale.fingerprint()
    header = manifest.get(BATCH_KEY)
    if header is None:
        manifest.put({"key": BATCH_KEY, "type": "batch", "settings": settings})
        return
    # A setting newer than the manifest is missing from it; its outputs were made with its default.
    old = {**UpscaleSettings().fingerprint(), **(header.get("settings") or {})}
    if old != settings:
        keys = list(settings) + [k for k in old if k not in settings]
        diff = ", ".join(f"{k} {old.get(k)!r} -> {settings.get(k)!r}" for k in keys if old.get(k) != settings.get(k))
        raise VidsrError(
            f"{out} holds outputs made with other settings ({diff}); "
            "use another output folder, or the same settings to resume"
        )


def decide(ledger: Ledger, jobs: tuple[Job, ...], retry: int) -> list[Job]:
    """An outcome for every job in ``ledger``, and the jobs to run, in order."""
    todo: list[Job] = []
    new: list[dict[str, Any]] = []
    for job in jobs:
        record = ledger.manifest.get(job.key)
        final = job.output(ledger.out)
        outcome = FileOutcome(
            job.key, str(job.source), str(final), PENDING, attempts=int((record or {}).get("attempts", 0))
        )
        ledger.outcomes[job.key] = outcome
        if record is None:
            if final.exists():
                outcome.state, outcome.error = (
                    FAILED,
                    f"{final} already exists and is not in the manifest; remove it or use another output folder",
                )
                continue
            new.append(ledger.file_record(job, PENDING))
            todo.append(job)
            continue
        state = record.get("state")
        if state == DONE:
            problem = verify_done(job, record, ledger.out)
            if problem is None:
                outcome.state = SKIPPED
                outcome.frames_in, outcome.frames_out = record.get("frames_in", 0), record.get("frames_out", 0)
                outcome.fields = record.get("fields")
                continue
            ledger.notes.append(f"redoing {job.key}: {problem}")
            outcome.attempts = 0
            new.append({**record, "state": PENDING, "attempts": 0, "error": None})
        elif state == RUNNING:
            dead = is_dead(record)
            if dead is False:
                outcome.state = FAILED
                outcome.error = f"marked running by pid {record.get('pid')} on {record.get('host')}, still alive"
                continue
            # We hold the OUT_DIR lock, so a run on another host that left "running" has stopped too.
            ledger.notes.append(f"reclaimed {job.key} from pid {record.get('pid')} on {record.get('host')}")
            new.append({**record, "state": PENDING, "error": "interrupted (its process died)"})
        elif state == FAILED and outcome.attempts > retry:
            outcome.state, outcome.error = FAILED, record.get("error")
            ledger.notes.append(f"not retrying {job.key}: failed {outcome.attempts} times (--retry {retry})")
            continue
        todo.append(job)
    if new:
        ledger.manifest.put(*new)
    return todo


def verify_done(job: Job, record: dict[str, Any], out: Path) -> str | None:
    """Why a 'done' output cannot be trusted any more, or None when it can."""
    from vidsr.media.probe import probe

    final = job.output(out)
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


def remove_stale_partials(out: Path, jobs: tuple[Job, ...]) -> None:
    """Hidden partial files of runs that died (a second Ctrl-C, a power cut): never final names,
    but they take space.  Only those of dead processes go; we hold the lock, so they are ours."""
    folders = {j.output(out).parent for j in jobs} | {p for p in (out / WORK_DIR).glob("*") if p.is_dir()}
    for folder in folders:
        for path in folder.glob(".*.partial*"):
            m = PARTIAL.search(path.name)
            if m and is_dead({"pid": int(m.group(1)), "host": owner()["host"]}):
                path.unlink(missing_ok=True)
        for path in folder.glob("*.partial"):
            path.unlink(missing_ok=True)  # split pieces in progress, work dir only
