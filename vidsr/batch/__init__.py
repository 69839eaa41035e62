"""``vidsr batch``: archives of videos, upscaled with a manifest, resume, failure isolation,
keyframe-aligned segments for long videos, and local-process or Ray executors.

    from vidsr.batch import BatchOptions, UpscaleSettings, run_batch
    report = run_batch(["archive/"], BatchOptions(out_dir=Path("restored"), upscale=UpscaleSettings("espcn", 2)))
    print(format_summary(report)); raise SystemExit(report.exit_code)

Modules, in the order a run uses them: :mod:`~vidsr.batch.runner` (the steps of a run, in order),
:mod:`~vidsr.batch.discover` (inputs to jobs), :mod:`~vidsr.batch.manifest` (the JSON-lines record),
:mod:`~vidsr.batch.resume` (what each input needs, from the manifest), :mod:`~vidsr.batch.ledger`
(every state change, in memory and on disk), :mod:`~vidsr.batch.loop` (keeping the workers busy),
:mod:`~vidsr.batch.executors` (where tasks run), :mod:`~vidsr.batch.worker` (one task),
:mod:`~vidsr.batch.pieces` and :mod:`~vidsr.batch.segments` (files cut at keyframes, joined again),
:mod:`~vidsr.batch.progress` (the bar), :mod:`~vidsr.batch.signals` and :mod:`~vidsr.batch.stopping`
(a stop, and what it leaves in the manifest), :mod:`~vidsr.batch.report` (the outcome).
"""

from __future__ import annotations

from vidsr.batch.options import BatchOptions, RuntimeSettings, UpscaleSettings
from vidsr.batch.report import BatchReport, FileOutcome, format_summary
from vidsr.batch.runner import run_batch

__all__ = [
    "BatchOptions",
    "BatchReport",
    "FileOutcome",
    "RuntimeSettings",
    "UpscaleSettings",
    "format_summary",
    "run_batch",
]
