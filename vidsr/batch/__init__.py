"""``vidsr batch``: archives of videos, upscaled with a manifest, resume, failure isolation,
keyframe-aligned segments for long videos, and local-process or Ray executors.

    from vidsr.batch import BatchOptions, UpscaleSettings, run_batch
    report = run_batch(["archive/"], BatchOptions(out_dir=Path("restored"), upscale=UpscaleSettings("espcn", 2)))
    print(format_summary(report)); raise SystemExit(report.exit_code)

Modules: :mod:`~vidsr.batch.discover` (inputs to jobs), :mod:`~vidsr.batch.manifest` (the JSON-lines
record), :mod:`~vidsr.batch.segments` (split and join), :mod:`~vidsr.batch.worker` (one task),
:mod:`~vidsr.batch.executors` (where tasks run), :mod:`~vidsr.batch.signals`,
:mod:`~vidsr.batch.runner` (all of it together), :mod:`~vidsr.batch.report` (the outcome).
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
