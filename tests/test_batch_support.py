"""Clips and helpers for the batch tests (no tests here): short cuts of the real clips, bad files,
decoded-frame comparison.  Kept tiny so the whole batch suite runs in a few minutes on 2 cores."""

from __future__ import annotations

import hashlib
import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from conftest import data_path, make_clip


def cut_copy(src: Path, dst: Path, *, packets: int) -> Path:
    """The first ``packets`` video packets of ``src`` (stream copy, original timestamps) and the
    audio packets up to the same time: a short real clip without re-encoding anything."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        video = inp.streams.video[0]
        others = [s for s in inp.streams if s.type == "audio"]
        ov = out.add_stream_from_template(video)
        oa = {s.index: out.add_stream_from_template(s) for s in others}
        end: float | None = None
        count = 0
        for packet in inp.demux(video, *others):
            if packet.size == 0 or packet.dts is None:
                continue
            t = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
            if packet.stream is video:
                if count >= packets:
                    continue
                count += 1
                if count == packets:
                    end = t
                packet.stream = ov
                out.mux(packet)
            elif end is None or t <= end:
                packet.stream = oa[packet.stream.index]
                out.mux(packet)
    return dst


def reencode_cut(
    src: Path, dst: Path, *, frames: int, size: tuple[int, int], gop: int, bframes: int = 2, audio: bool = True
) -> Path:
    """The first ``frames`` frames of ``src`` scaled to ``size`` and re-encoded with H.264 at a short
    keyframe interval (and B-frames, so dts != pts), keeping each frame's original timestamp (box.mp4's
    are irregular) and copying the audio packets of the same span."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        video = inp.streams.video[0]
        audio_in = [s for s in inp.streams if s.type == "audio"] if audio else []
        vs = out.add_stream("libx264", rate=video.average_rate or 25)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.time_base = video.time_base
        vs.codec_context.time_base = video.time_base
        vs.options = {
            "preset": "ultrafast",
            "crf": "20",
            "g": str(gop),
            "keyint_min": str(gop),
            "bf": str(bframes),
            "sc_threshold": "0",
        }
        vs.codec_context.gop_size = gop
        oa = {s.index: out.add_stream_from_template(s) for s in audio_in}
        # box.mp4 stores decode-order timestamps on its packets (pts == dts despite B-frames), so
        # decoded pts come out scrambled: hand them out in sorted order, as a player would show them.
        pictures = []
        for frame in inp.decode(video):
            pictures.append(frame.reformat(width=size[0], height=size[1], format="yuv420p"))
            if len(pictures) == frames + 16:
                break
        stamps = sorted(f.pts for f in pictures)[:frames]
        for small, pts in zip(pictures, stamps, strict=False):
            small.pts, small.time_base = pts, video.time_base
            for packet in vs.encode(small):
                out.mux(packet)
        end = float(stamps[-1] * video.time_base)
        for packet in vs.encode(None):
            out.mux(packet)
        if audio_in:
            inp.seek(0)
            for packet in inp.demux(*audio_in):
                if packet.size == 0 or packet.dts is None:
                    continue
                if end is not None and float(packet.pts * packet.time_base) <= end:
                    packet.stream = oa[packet.stream.index]
                    out.mux(packet)
    return dst


def clip(path: Path, **kwargs) -> Path:
    """``make_clip`` into a folder made on the way, under any name (made as .mp4, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    made = make_clip(path.with_name(path.name + ".tmp.mp4"), **kwargs)
    made.rename(path)
    return path


def avi_with_pcm(path: Path, *, frames: int = 40, gop: int = 10) -> Path:
    """An old-style AVI: MPEG-4 Part 2 video with a keyframe every ``gop`` frames, 8-bit PCM sound whose
    channel layout is only a count (as AVI stores it); MP4 cannot hold that sound."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.codec_context.gop_size = gop
        aus = out.add_stream("pcm_u8", rate=22050)
        aus.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        samples = frames * 22050 // 25
        wave = (128 + 60 * np.sin(np.arange(samples) / 10)).astype(np.uint8)[None]
        for start in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(wave[:, start : start + 1024]), format="u8", layout="mono"
            )
            af.sample_rate, af.pts = 22050, start
            for p in aus.encode(af):
                out.mux(p)
        for p in aus.encode(None):
            out.mux(p)
    return path


def make_bad_files(folder: Path) -> dict[str, Path]:
    """An empty file, a text file named .mp4, and an audio-only .mp4."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    text = folder / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    sound = folder / "sound.mp4"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        t = np.arange(48000) / 48000
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for start in range(0, 48000, 1024):
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(wave[:, start : start + 1024]), format="fltp", layout="mono"
            )
            af.sample_rate, af.pts = 48000, start
            for p in stream.encode(af):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    return {"empty": empty, "text": text, "audio": sound}


def real_clip_folder(root: Path) -> dict[str, Path]:
    """Short cuts of the three real clips, in a small tree: ``vtest.avi``, ``old/tree.avi``, ``old/box.mp4``."""
    root.mkdir(parents=True, exist_ok=True)
    vids = {
        "vtest": cut_copy(data_path("video", "vtest.avi"), root / "vtest.avi", packets=5),
        "tree": cut_copy(data_path("video", "tree.avi"), _mkdir(root / "old") / "tree.avi", packets=10),
        "box": cut_copy(data_path("video", "box.mp4"), root / "old" / "box.mp4", packets=12),
    }
    return vids


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def decoded(path: Path) -> list[tuple[Fraction, str]]:
    """Every decoded video frame as (presentation time, digest of its planes)."""
    out = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for frame in c.decode(stream):
            digest = hashlib.sha1()
            digest.update(frame.to_ndarray(format="yuv420p").tobytes())
            out.append((Fraction(frame.pts) * stream.time_base, digest.hexdigest()))
    return out


def audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == "audio"]
        if not streams:
            return []
        return [(p.pts, bytes(p)) for p in c.demux(streams[0]) if p.size]


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


__all__ = [
    "audio_packets",
    "avi_with_pcm",
    "clip",
    "copy_tree",
    "cut_copy",
    "decoded",
    "make_bad_files",
    "make_clip",
    "real_clip_folder",
    "reencode_cut",
]


def records(out: Path) -> dict[str, dict]:
    """Last record per key of ``out``'s manifest, read the way the manifest says it is read
    (every line complete: the writer fsyncs whole lines)."""
    path = out / "vidsr-manifest.jsonl"
    found: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            found[record["key"]] = record
    return found


def _run_task_with_a_stop_inside(tmp_path: Path, monkeypatch, where: str):
    """A batch worker's task on a tiny clip, SIGINT (the coordinator's stop) raised in-process at
    ``where``: "after rename" (the instant the finished output has its final name) or "mid-file"."""
    import signal

    from vidsr.batch import worker
    from vidsr.batch.options import RuntimeSettings, UpscaleSettings
    from vidsr.media.sink import VideoSink

    monkeypatch.setattr(worker, "STATE", worker._WorkerState())
    if where == "after rename":
        real_commit = VideoSink.commit

        def commit_then_stop(self: VideoSink) -> None:
            real_commit(self)
            signal.raise_signal(signal.SIGINT)

        monkeypatch.setattr(VideoSink, "commit", commit_then_stop)
    else:
        real_write = VideoSink.write_frame

        def write_then_stop(self: VideoSink, *args, **kwargs):
            signal.raise_signal(signal.SIGINT)
            return real_write(self, *args, **kwargs)

        monkeypatch.setattr(VideoSink, "write_frame", write_then_stop)
    src = make_clip(tmp_path / "in.mp4", frames=6)
    out = tmp_path / "out.mp4"
    spec = worker.WorkerSpec(UpscaleSettings(model="bicubic", scale=2), RuntimeSettings(device="cpu"), 1)
    previous = signal.signal(signal.SIGINT, worker._interrupt_task)
    try:
        result = worker.run_task(worker.Task("in.mp4", str(src), str(out)), spec)
    finally:
        signal.signal(signal.SIGINT, previous)
    return result, out, worker.STATE


def test_a_stop_as_the_output_takes_its_final_name_finishes_the_file(tmp_path, monkeypatch):
    """The race `make stress` found: a stop landing just after the finished output was renamed into
    place came back "interrupted", so the manifest said pending while the file existed under its
    final name.  Once the output is committing, a stop waits for the task: it reports done."""
    result, out, state = _run_task_with_a_stop_inside(tmp_path, monkeypatch, "after rename")
    assert result.ok and not result.interrupted, result
    assert out.is_file() and result.frames_out == 6
    assert state.stopping and not state.committing  # the stop is kept: the next task comes back at once


def test_a_stop_mid_file_still_interrupts_it(tmp_path, monkeypatch):
    result, out, state = _run_task_with_a_stop_inside(tmp_path, monkeypatch, "mid-file")
    assert result.interrupted and not result.ok and state.stopping
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
