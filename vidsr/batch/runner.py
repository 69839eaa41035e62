"""``run_batch``: the steps of a batch run, in order.  Find the inputs, check the model and device
once, take the output folder's lock, decide from the manifest what each input needs
(:mod:`~vidsr.batch.resume`), run what is left (:mod:`~vidsr.batch.loop`), and report.

The coordinator is the only writer of the manifest and of joined outputs; workers only upscale.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from vidsr.batch.discover import MANIFEST, WORK_DIR, discover
from vidsr.batch.executors import import_ray
from vidsr.batch.ledger import Ledger
from vidsr.batch.loop import RunLoop
from vidsr.batch.manifest import Manifest, lock
from vidsr.batch.options import BatchOptions
from vidsr.batch.report import BatchReport
from vidsr.batch.resume import check_settings, decide, remove_stale_partials
from vidsr.errors import BackendError
from vidsr.media.sink import output_error


def run_batch(inputs: Iterable[str], options: BatchOptions) -> BatchReport:
    """Upscale every video ``inputs`` name into ``options.out_dir``; see :mod:`vidsr.batch`."""
    started = time.perf_counter()
    out = options.out_dir.absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(out, exc) from None
    found = discover(list(inputs), out, options.upscale.encode.codec)
    validate(options)
    with lock(out):
        manifest = Manifest.open(out / MANIFEST)
        ledger = Ledger(manifest, out, notes=list(found.notes))
        loop = RunLoop(ledger, options)
        try:
            check_settings(manifest, options.upscale, out)
            todo = decide(ledger, found.jobs, options.retry)
            remove_stale_partials(out, found.jobs)
            if todo:
                loop.run(todo)
        finally:
            # Again now that every worker has exited: one killed after it ignored the bounded waits (a
            # loaded machine) could not remove its own partial file.
            with contextlib.suppress(OSError):
                remove_stale_partials(out, found.jobs)
            with contextlib.suppress(OSError):
                (out / WORK_DIR).rmdir()  # only when empty: pieces kept for a resume stay
            manifest.close()
    return BatchReport(
        files=[ledger.outcomes[j.key] for j in found.jobs],
        notes=ledger.notes,
        seconds=time.perf_counter() - started,
        manifest=str(manifest.path),
        executor=loop.executor_name,
        interrupted=loop.interrupted,
    )


def validate(options: BatchOptions) -> None:
    """Model, weights and device problems stop the batch before anything runs (not once per file)."""
    from vidsr.backends import BACKENDS, PRECISIONS, resolve_device
    from vidsr.models import build_model

    u, r = options.upscale, options.runtime
    build_model(u.model, u.scale, weights=u.weights)
    if r.backend not in BACKENDS:
        raise BackendError(f"unknown backend {r.backend!r}; choose from {', '.join(BACKENDS)}")
    if r.precision not in PRECISIONS:
        raise BackendError(f"unknown precision {r.precision!r}; choose from {', '.join(PRECISIONS)}")
    if options.executor == "local":
        resolve_device(r.device)
    else:
        import_ray()
