"""``make demo``: upscale a short sample clip with the best model that ships trained weights.

The sample is the first seconds of the shared CCTV clip (``$VIDSR_DATA/video/vtest.avi``)
shrunk to 384x288, or a generated clip where the shared data is absent.
"""

from __future__ import annotations

import logging
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidsr.models import REGISTRY, shipped_metadata

SAMPLE_SIZE = (384, 288)


def shared_data() -> Path:
    return Path(os.environ.get("VIDSR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def make_sample(dst: Path, *, frames: int = 20) -> Path:
    """Write a small H.264 sample: real CCTV footage when available, a synthetic scene otherwise."""
    src = shared_data() / "video" / "vtest.avi"
    width, height = SAMPLE_SIZE
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12", "preset": "fast"}
        stream.time_base = Fraction(1, 10)
        for i, frame in enumerate(_frames(src, frames)):
            small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
            small.pts, small.time_base = i, Fraction(1, 10)
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return dst


def _frames(src: Path, count: int):
    if src.is_file():
        with av.open(str(src)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i == count:
                    return
                yield frame
        return
    yy, xx = np.mgrid[0:576, 0:768]
    for i in range(count):
        rings = (np.sin(np.hypot(xx - 384 - 8 * i, yy - 288) / 6.0) * 100 + 128).astype(np.uint8)
        yield av.VideoFrame.from_ndarray(np.stack([rings, np.roll(rings, i, 1), rings[::-1]], -1), format="rgb24")


def best_model(scale: int = 4) -> str:
    """The shipped model with the largest measured gain over bicubic at ``scale``."""
    best, gain = "bicubic", 0.0
    for spec in REGISTRY.values():
        meta = shipped_metadata(spec.name, scale) if spec.learned else None
        if meta and "val_psnr" in meta and meta["val_psnr"] - meta.get("bicubic_psnr", 0.0) > gain:
            best, gain = spec.name, meta["val_psnr"] - meta.get("bicubic_psnr", 0.0)
    return best


def main(argv: list[str] | None = None) -> int:
    from vidsr.cli.common import setup_logging
    from vidsr.video import default_output, upscale_video

    setup_logging(False)
    out_dir = Path((argv or sys.argv[1:] or ["out"])[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = make_sample(out_dir / "sample.mp4")
    model = best_model(4)
    if model == "bicubic":
        logging.getLogger("vidsr").warning("no trained weights ship yet: the demo runs bicubic")
    print(f"demo: upscaling {sample} ({SAMPLE_SIZE[0]}x{SAMPLE_SIZE[1]}) x4 with {model}", file=sys.stderr)
    # Named as `vidsr upscale` names its outputs (NAME.x4.mp4); the model is in the line above.
    summary = upscale_video(sample, default_output(sample, 4), model=model, scale=4, overwrite=True)
    print(
        f"demo: wrote {summary.output}: {summary.frames_out} frames, {summary.width}x{summary.height}, "
        f"{summary.fps:.2f} fps on {summary.backend}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
