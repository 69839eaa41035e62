"""Progress on stderr: a tqdm bar with frames, fps and ETA, or nothing at all."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(*, total: int | None, desc: str, enabled: bool, unit: str = "frame") -> Iterator[tqdm]:
    """A bar whose total may be an estimate (the container's count); it grows if exceeded."""
    bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        leave=True,
    )
    update = bar.update

    def grow(n: int = 1) -> None:
        if bar.total is not None and bar.n + n > bar.total:
            bar.total = bar.n + n  # the container under-counted; keep the bar honest
        update(n)

    bar.update = grow  # type: ignore[method-assign]
    try:
        yield bar
        if bar.total is not None and bar.n < bar.total:
            bar.total = bar.n  # it over-counted (tree.avi says 444, holds 68): end at 100 %
            bar.refresh()
    finally:
        bar.close()
