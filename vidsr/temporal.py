"""Temporal stability of frame-by-frame upscaling: how much an output flickers, measured against the original.

Each frame is upscaled on its own, so detail the model invents can change from one frame to the
next where the scene does not: shimmer, most of all from a GAN.  Given the original frames of a
clip and the upscaled frames of its LR version (Y, 0..255), two figures, both lower-is-better and
both read beside bicubic's on the same frames:

* **temporal-difference error**: the mean absolute difference between the output's frame-to-frame
  change and the original's, ``|(out[t+1] - out[t]) - (hr[t+1] - hr[t])|``.  Motion the model gets
  right costs nothing; change the original does not have (flicker) or lacks costs its size.
* **static flicker**: the mean frame-to-frame change of the output where the original is still
  (no pixel of a 5x5 neighbourhood moves by :data:`STILL` code values or more): pure shimmer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

STILL = 2.0  # code values: below this the original's own change is codec and sensor noise


@dataclass(frozen=True)
class TemporalScore:
    tdiff_error: float
    static_flicker: float
    still_fraction: float  # share of pixels (over all frame pairs) the static figure is taken on

    def to_dict(self) -> dict[str, float]:
        return {
            "tdiff_error": round(self.tdiff_error, 4),
            "static_flicker": round(self.static_flicker, 4),
            "still_fraction": round(self.still_fraction, 4),
        }


def temporal_score(outputs: Sequence[np.ndarray], originals: Sequence[np.ndarray], shave: int = 0) -> TemporalScore:
    """The two figures over every consecutive pair of frames; ``shave`` pixels dropped at each border."""
    if len(outputs) != len(originals) or len(outputs) < 2:
        raise ValueError("temporal_score needs two or more frames, as many outputs as originals")
    errors, still_changes, still_count, total = [], [], 0, 0
    for t in range(len(outputs) - 1):
        out0, out1, hr0, hr1 = (
            _shaved(np.asarray(f, dtype=np.float64), shave)
            for f in (outputs[t], outputs[t + 1], originals[t], originals[t + 1])
        )
        d_out, d_hr = out1 - out0, hr1 - hr0
        errors.append(np.abs(d_out - d_hr).mean())
        still = ndimage.maximum_filter(np.abs(d_hr), size=5) < STILL
        still_changes.append(np.abs(d_out)[still].sum())
        still_count += int(still.sum())
        total += still.size
    static = float(np.sum(still_changes) / still_count) if still_count else float("nan")
    return TemporalScore(float(np.mean(errors)), static, still_count / total)


def _shaved(frame: np.ndarray, shave: int) -> np.ndarray:
    return frame[shave:-shave, shave:-shave] if shave else frame
