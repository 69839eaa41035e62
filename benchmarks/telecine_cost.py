"""What finding and undoing 3:2 pulldown costs per frame, beside bwdif's deinterlacing.

A film transfer made on the spot: FFmpeg's ``testsrc2`` (moving test card) at 23.976, through its
``telecine`` filter (pattern 23) to 29.97 interlaced NTSC frames, as FFV1.  The clip is decoded once;
each row times the filters alone over those frames (median of ``--repeat`` runs), beside the time
decoding takes (detection decodes the frames it looks at once more; the upscale decodes them anyway):

* idet: the check of the first 2 s every input gets (``interlace.run_idet``), per frame it looks at;
* cadence scan: idet + fieldmatch and the per-frame comparisons that cut a file into sections
  (``cadence.scan``), run where the first seconds are not plainly progressive;
* inverse telecine: fieldmatch + bwdif on unmatched frames + decimate (``telecine.InverseTelecine``);
* bwdif: plain deinterlacing, one frame per frame (``interlace.Deinterlacer``).

Usage: ``.venv/bin/python benchmarks/telecine_cost.py [--size 720x480] [--seconds 10] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from vidsr.media import cadence, interlace, telecine
from vidsr.media.filtergraph import build, drain
from vidsr.media.pyav import fraction, open_container

VIDEO_RATE = Fraction(30000, 1001)


def make_clip(path: Path, size: str, seconds: float) -> int:
    """testsrc2 telecined to 29.97 interlaced FFV1; returns its frame count."""
    graph = av.filter.Graph()
    nodes = [
        graph.add("testsrc2", f"size={size}:rate=24000/1001:duration={seconds}"),
        graph.add("telecine", "first_field=top:pattern=23"),
        graph.add("format", "yuv420p"),
        graph.add("buffersink"),
    ]
    graph.link_nodes(*nodes).configure()
    count = 0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=VIDEO_RATE)
        width, height = (int(v) for v in size.split("x"))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = 1 / VIDEO_RATE
        stream.codec_context.field_order = 2  # tff
        while True:
            try:
                frame = graph.vpull()
            except av.error.BlockingIOError:
                continue
            except av.error.EOFError:
                break
            frame.pts, frame.time_base = count, 1 / VIDEO_RATE
            out.mux(stream.encode(frame))
            count += 1
        out.mux(stream.encode(None))
    return count


def decoded(path: Path) -> tuple[list[av.VideoFrame], Fraction]:
    with open_container(path) as container:
        stream = container.streams.video[0]
        return list(container.decode(stream)), fraction(stream.time_base)


def through(frames: list[av.VideoFrame], filt: object) -> int:
    """Push ``frames`` through ``filt`` (a ``push(frame) -> frames`` object, None flushing); frames out."""
    out = sum(len(filt.push(f)) for f in frames)  # type: ignore[attr-defined]
    return out + len(filt.push(None))  # type: ignore[attr-defined]


class _Idet:
    """idet alone, as run_idet builds it."""

    def __init__(self, time_base: Fraction) -> None:
        self.time_base, self.graph = time_base, None

    def push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        if frame is None:
            self.graph.vpush(None)
        else:
            self.graph = self.graph or build(frame, self.time_base, ("idet", None))
            self.graph.vpush(frame)
        return drain(self.graph)


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="720x480")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "telecined.mkv"
        count = make_clip(clip, args.size, args.seconds)
        with open_container(clip) as container:
            found = interlace.detect(clip, container.streams.video[0])
        assert found.ivtc and found.telecine is not None, found.reason
        setting = found.telecine
        decode = timed(lambda: decoded(clip), args.repeat)
        frames, time_base = decoded(clip)
    first = frames[: interlace.DETECT_FRAMES]
    rate = setting.rate
    idet = timed(lambda: through(first, _Idet(time_base)), args.repeat)
    scan = timed(lambda: through(frames, cadence.WindowScan(time_base, rate, 0)), args.repeat)
    ivtc = timed(lambda: through(frames, telecine.InverseTelecine(setting, time_base)), args.repeat)
    told = interlace.Interlace("tff", None, "tff", "benchmark", "on")
    bwdif = timed(lambda: through(frames, interlace.Deinterlacer(told, time_base)), args.repeat)
    film_frames = through(frames, telecine.InverseTelecine(setting, time_base))
    rows = [
        ("decode (FFV1)", count, decode),
        ("idet, first 2 s (detection, every input)", len(first), idet),
        ("cadence scan: idet + fieldmatch + comparisons (detection)", count, scan),
        ("inverse telecine: fieldmatch + bwdif where unmatched + decimate", count, ivtc),
        ("bwdif, frame rate (plain interlaced input)", count, bwdif),
    ]
    print(f"machine: {_cpu()}; PyAV {av.__version__} (libavfilter {av.library_versions['libavfilter']})")
    clip_line = f"clip: testsrc2 {args.size}, {count} telecined frames -> {film_frames} out"
    print(f"{clip_line}; median of {args.repeat} runs")
    print("| step | frames | ms a frame |")
    print("| --- | --- | --- |")
    for name, n, seconds in rows:
        print(f"| {name} | {n} | {1000 * seconds / n:.2f} |")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                import os

                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
