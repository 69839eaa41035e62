"""Field detection started early: :func:`vidsr.media.interlace.detect` in a thread from the moment the
input's path is known, so that it overlaps the model's loading instead of following it.

idet decodes up to 60 frames of the input's start (0.35 s for 60 frames of 1080p30 H.264 on a
2-core Xeon), and the cadence scan decodes more where it suspects film.  ``vidsr upscale`` starts a
:class:`FieldScan` before it loads its model (which imports PyTorch: a second or more);
:class:`~vidsr.media.source.VideoSource` takes the answer when it opens the input.  Where the early
scan failed (a damaged or unsupported file) or looked at another stream, the source finds out for
itself, in its own thread, and raises what a bad input deserves: this module never reports an error.

Nothing here imports PyTorch, so the scan runs while the main thread imports it (on the 2-core Xeon
opening a 1080p30 input went from 0.43 to 0.07-0.10 s, the model's loading 0.05-0.15 s slower).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from vidsr.media.inputs import video_stream
from vidsr.media.interlace import Interlace, detect
from vidsr.media.pyav import open_container

log = logging.getLogger(__name__)


class FieldScan:
    """``detect(path, <its video stream>, mode, field_rate)`` running in a daemon thread (a Ctrl-C
    or an error elsewhere never waits for it)."""

    def __init__(self, path: str | Path, mode: str = "auto", field_rate: bool = False) -> None:
        self.path, self.mode, self.field_rate = Path(path), mode, field_rate
        self._found: tuple[int, Interlace] | None = None
        self._thread = threading.Thread(target=self._scan, name="vidsr-field-scan", daemon=True)
        self._thread.start()

    def _scan(self) -> None:
        try:
            with open_container(self.path) as container:
                stream = video_stream(container, self.path)
                self._found = (stream.index, detect(self.path, stream, self.mode, self.field_rate))
        except Exception as exc:  # the input's opening says what is wrong with it, in the caller's thread
            log.debug("early field scan of %s gave up: %s", self.path, exc)

    def result(self, stream_index: int, mode: str, field_rate: bool) -> Interlace | None:
        """What the scan found for stream ``stream_index`` asked with ``mode`` and ``field_rate``;
        None where it failed or was asked something else (the caller detects for itself)."""
        self._thread.join()
        if self._found is None or (self._found[0], self.mode, self.field_rate) != (stream_index, mode, field_rate):
            return None
        return self._found[1]
