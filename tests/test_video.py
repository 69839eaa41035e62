"""End to end through PyAV: frames, timestamps, audio, colour, sizes, failures."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import cut_clip, data_path, decoded, frame_times, make_clip

from vidsr.errors import InputError, OutputError
from vidsr.media.sink import EncodeOptions, VideoSink
from vidsr.video import upscale_video

FAST = EncodeOptions(preset="ultrafast", crf=18)


def run(src: Path, dst: Path, **kw):
    kw.setdefault("model", "bicubic")
    kw.setdefault("scale", 2)
    kw.setdefault("encode", FAST)
    kw.setdefault("device", "cpu")
    return upscale_video(src, dst, progress=False, **kw)


def stream_packets(path: Path, kind: str) -> list[av.Packet]:
    with av.open(str(path)) as c:
        stream = getattr(c.streams, kind)[0]
        return [(p.pts, p.duration, bytes(p)) for p in c.demux(stream) if p.size]


# -- real clips ------------------------------------------------------------------------


def test_box_mp4_vfr_h264_with_mp3_audio(tmp_path):
    """box.mp4: irregular timestamps stored in decode order, MP3 audio copied bit for bit."""
    src = cut_clip(data_path("video", "box.mp4"), tmp_path / "box.mp4", seconds=2)
    out = tmp_path / "box.x2.mp4"
    summary = run(src, out)
    frames = decoded(out)
    assert summary.frames_in == summary.frames_out == len(frames) == len(decoded(src))
    assert (frames[0].width, frames[0].height) == (1280, 960)
    # presentation times: the input's, irregular (32/33/34 ms steps), unchanged
    assert frame_times(out) == pytest.approx(frame_times(src), abs=1e-6)
    steps = np.diff(frame_times(out))
    assert len(set(np.round(steps, 4))) > 1, "variable frame rate must stay variable"
    # audio: every packet copied, same timing and bytes
    a_in, a_out = stream_packets(src, "audio"), stream_packets(out, "audio")
    assert [p[2] for p in a_out] == [p[2] for p in a_in]
    with av.open(str(src)) as c_in, av.open(str(out)) as c_out:
        tb_in, tb_out = c_in.streams.audio[0].time_base, c_out.streams.audio[0].time_base
        starts_in = [float(p[0] * tb_in) for p in a_in]
        starts_out = [float(p[0] * tb_out) for p in a_out]
        assert starts_out == pytest.approx(starts_in, abs=0.002)  # in sync to 2 ms
        assert c_out.streams.audio[0].codec_context.name == c_in.streams.audio[0].codec_context.name


def test_vtest_avi_msmpeg4_to_avi(tmp_path):
    src = cut_clip(data_path("video", "vtest.avi"), tmp_path / "vtest.avi", seconds=1)
    out = tmp_path / "vtest.x2.avi"
    summary = run(src, out)
    frames = decoded(out)
    assert summary.frames_out == len(frames) == len(decoded(src))
    assert (frames[0].width, frames[0].height) == (1536, 1152)
    assert frame_times(out) == pytest.approx(frame_times(src), abs=1e-6)


def test_tree_avi_cinepak_rgb_vfr(tmp_path):
    """tree.avi: RGB Cinepak, 68 coded frames spread over 444 frame slots."""
    src = data_path("video", "tree.avi")
    out = tmp_path / "tree.x2.mkv"
    summary = run(src, out, model="bilinear")
    frames = decoded(out)
    assert summary.frames_out == len(frames) == 68
    assert frame_times(out) == pytest.approx(frame_times(src), abs=1e-3)
    # RGB input converted with the matrix the output is tagged with: colours come back
    ref = decoded(src)[10].to_ndarray(format="rgb24").astype(float)
    got = (
        frames[10]
        .reformat(width=320, height=240, format="rgb24", src_colorspace="itu601", interpolation="AREA")
        .to_ndarray()
        .astype(float)
    )
    assert np.abs(got.mean((0, 1)) - ref.mean((0, 1))).max() < 3.0


def test_tree_avi_to_avi_keeps_its_frame_slots(tmp_path):
    """AVI out: MPEG-4 Part 2 on a slot clock; the 68 frames keep their places among 444 slots."""
    out = tmp_path / "tree.x2.avi"
    run(data_path("video", "tree.avi"), out, encode=EncodeOptions())
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"
    assert frame_times(out) == pytest.approx(frame_times(data_path("video", "tree.avi")), abs=1e-3)


# -- generated clips -------------------------------------------------------------------


def test_frame_count_pts_and_duration_preserved(tmp_path):
    src = make_clip(tmp_path / "vfr.mp4", frames=30, pts_step=[40, 33, 50, 27], audio=True)
    out = tmp_path / "vfr.x3.mp4"
    run(src, out, scale=3)
    assert frame_times(out) == pytest.approx(frame_times(src), abs=1e-6)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert float(b.duration) == pytest.approx(float(a.duration), abs=1 / 25 * 1e6)
        assert len(stream_packets(out, "audio")) == len(stream_packets(src, "audio"))


@pytest.mark.parametrize(
    ("colour", "pix_fmt"),
    [((1, 1, 1, 1), "yuv420p"), ((9, 1, 9, 14), "yuv420p"), ((5, 2, 5, 6), "yuvj420p")],
)
def test_colour_tags_written_back(tmp_path, colour, pix_fmt):
    src = make_clip(tmp_path / "c.mkv", frames=4, colour=colour, pix_fmt=pix_fmt)
    out = tmp_path / "c.x2.mkv"
    run(src, out)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc) == colour


def test_untagged_sd_input_is_tagged_bt601_on_hd_output(tmp_path):
    """Players assume BT.709 for untagged HD; the SD input meant BT.601, so say so."""
    src = make_clip(tmp_path / "sd.mp4", frames=3, size=(720, 480))
    out = tmp_path / "sd.x2.mp4"
    run(src, out, model="nearest")
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.colorspace == 6  # smpte170m (BT.601)


def test_rgb_model_uses_input_matrix(tmp_path):
    """A flat colour through an RGB path comes back the same colour, for BT.601 and BT.709."""
    from vidsr.colour import YCbCrFormat
    from vidsr.upscaler import PlaneBatch, Upscaler, output_geometry

    up = Upscaler("bicubic", 2, device="cpu")
    up.loaded.spec  # noqa: B018 - baseline as the model; we test the rgb branch below by hand
    import torch

    from vidsr.colour import rgb_to_ycbcr

    for matrix in ("bt601", "bt709"):
        fmt = YCbCrFormat(matrix)
        rgb = torch.tensor([0.8, 0.3, 0.1]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
        ycc = (rgb_to_ycbcr(rgb, fmt) * 255).round().to(torch.uint8)
        batch = PlaneBatch(ycc[:, 0], ycc[:, 1, ::2, ::2], ycc[:, 2, ::2, ::2])
        out = up.upscale_planes(batch, fmt, fmt, output_geometry(8, 8, 2, 2, 2))
        assert int(out.y.float().mean()) == int(ycc[0, 0, 0, 0])
        assert abs(out.cb.float().mean() - ycc[0, 1, 0, 0]) < 1


@pytest.mark.parametrize(("size", "scale", "expect"), [((33, 25), 2, (66, 50)), ((33, 25), 3, (98, 74))])
def test_odd_sizes(tmp_path, size, scale, expect):
    src = make_clip(tmp_path / "odd.mkv", frames=5, size=size, codec="ffv1")
    out = tmp_path / "odd.mkv.out.mkv"
    summary = run(src, out, scale=scale)
    frames = decoded(out)
    assert (frames[0].width, frames[0].height) == expect
    assert len(frames) == 5
    assert any("trimmed" in w for w in summary.warnings) == (scale == 3)


def test_yuv444_input_and_output(tmp_path):
    src = make_clip(tmp_path / "s.mkv", frames=4, pix_fmt="yuv444p")
    out = tmp_path / "s.x2.mkv"
    run(src, out, encode=EncodeOptions(preset="ultrafast", pix_fmt="yuv444p"))
    assert decoded(out)[0].format.name == "yuv444p"


def test_subtitles_copied_or_dropped_with_warning(tmp_path):
    src = tmp_path / "subs.mkv"
    with av.open(str(make_clip(tmp_path / "v.mkv", frames=10))) as inp, av.open(str(src), "w") as out:
        vs = out.add_stream_from_template(inp.streams.video[0])
        ss = out.add_mux_stream("subrip")
        ss.time_base = Fraction(1, 1000)
        for p in inp.demux(inp.streams.video[0]):
            if p.size:
                p.stream = vs
                out.mux(p)
        pkt = av.Packet(b"hello")
        pkt.pts, pkt.dts, pkt.duration, pkt.stream = 0, 0, 200, ss
        pkt.time_base = Fraction(1, 1000)
        out.mux(pkt)
    kept = run(src, tmp_path / "subs.x2.mkv")
    with av.open(kept.output) as c:
        assert [s.type for s in c.streams] == ["video", "subtitle"]
    dropped = run(src, tmp_path / "subs.x2.avi")
    assert any(w.startswith("dropping subtitle stream #1 (") for w in dropped.warnings)


def test_audio_reencoded_when_container_cannot_hold_it(tmp_path):
    """8-bit PCM in AVI (stored as a bare channel count) cannot go into MP4: AAC, with a warning."""
    src = tmp_path / "pcm.avi"
    with av.open(str(make_clip(tmp_path / "v.avi", frames=25, codec="mpeg4"))) as inp, av.open(str(src), "w") as out:
        vs = out.add_stream_from_template(inp.streams.video[0])
        aus = out.add_stream("pcm_u8", rate=8000)
        aus.layout = "mono"
        for p in inp.demux(inp.streams.video[0]):
            if p.size:
                p.stream = vs
                out.mux(p)
        samples = (128 + 60 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 300)).astype(np.uint8)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="u8", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(aus.encode(frame))
        out.mux(aus.encode(None))
    out_path = tmp_path / "pcm.x2.mp4"
    summary = run(src, out_path)
    assert any(w.startswith("audio stream #1 (pcm_u8) re-encoded to AAC") for w in summary.warnings)
    with av.open(str(out_path)) as c:
        audio = c.streams.audio[0]
        assert audio.codec_context.name == "aac"
        # one second of sound, plus AAC's 1024 priming samples (0.128 s at 8 kHz)
        assert float(audio.duration * audio.time_base) == pytest.approx(1.0, abs=0.15)


# -- failures leave nothing behind ----------------------------------------------------


def test_failure_mid_stream_leaves_no_output(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "in.mp4", frames=40)
    out = tmp_path / "in.x2.mp4"
    calls = {"n": 0}
    original = VideoSink.write_frame

    def failing(self, planes, pts):
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError(28, "No space left on device")
        return original(self, planes, pts)

    monkeypatch.setattr(VideoSink, "write_frame", failing)
    with pytest.raises(OSError):
        run(src, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_enospc_from_muxer_is_a_clear_output_error(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "in.mp4", frames=10)
    out = tmp_path / "in.x2.mp4"

    def full(self, packets):
        raise av.error.OSError(28, "No space left on device")

    monkeypatch.setattr(av.container.OutputContainer, "mux", full)
    with pytest.raises(OutputError, match=r"cannot write to .*in\.x2\.mp4: no space left on device"):
        run(src, out)
    assert not out.exists() and len(list(tmp_path.iterdir())) == 1


def test_keyboard_interrupt_leaves_no_output(tmp_path, monkeypatch):
    from vidsr.upscaler import Upscaler

    src = make_clip(tmp_path / "in.mp4", frames=30)
    out = tmp_path / "in.x2.mp4"
    original = Upscaler.upscale_planes
    calls = {"n": 0}

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(Upscaler, "upscale_planes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(src, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_existing_output_refused_and_input_never_overwritten(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        run(src, out)
    assert out.read_bytes() == b"precious"
    with pytest.raises(OutputError, match="is the input"):
        run(src, src, overwrite=True)
    run(src, out, overwrite=True)
    assert len(decoded(out)) == 3


def test_truncated_file_is_an_error(tmp_path):
    full = make_clip(tmp_path / "full.mkv", frames=60, codec="mpeg4")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    with pytest.raises(InputError, match=r"truncated|damaged"):
        run(cut, tmp_path / "cut.x2.mkv")
    assert not (tmp_path / "cut.x2.mkv").exists()


def test_memory_stays_flat_over_a_long_clip(tmp_path):
    """Python-side allocations peak the same for 60 and 240 frames: queues are bounded."""
    peaks = []
    for frames in (60, 240):
        src = make_clip(tmp_path / f"long{frames}.mp4", frames=frames, size=(96, 64))
        tracemalloc.start()
        run(src, tmp_path / f"long{frames}.x2.mp4", model="nearest")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.5 + 2_000_000


def test_damaged_packets_mid_stream_warn_and_go_on(tmp_path, caplog):
    """Garbage inside the video data: decoding goes on past it, as ffmpeg does, with a warning."""
    clip = make_clip(tmp_path / "clean.mkv", frames=50, size=(160, 120), codec="mpeg4")
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(7)
    middle = len(data) // 2
    for offset in range(middle, middle + 4000, 211):
        data[offset : offset + 24] = rng.integers(0, 256, 24, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="vidsr"):
        summary = run(damaged, tmp_path / "damaged.x2.mkv")
    assert summary.frames_out == summary.frames_in == len(decoded(tmp_path / "damaged.x2.mkv"))
    assert summary.frames_in >= 40
    damage = [w for w in summary.warnings if "damaged packets" in w or "decoded with errors" in w]
    assert damage and any(char.isdigit() for char in damage[0])
    assert damage[0] in caplog.text


# -- closing from another thread (Ctrl-C while the pipeline's threads read and write) -----------

_CLOSE_RACE = """
import random, sys, threading, time
from fractions import Fraction
from pathlib import Path
import numpy as np
from vidsr.media.sink import EncodeOptions, VideoSink, VideoSpec
from vidsr.media.source import VideoSource
from vidsr.media.tags import ColourTags

clip, out, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
random.seed(0)
errors = []
for i in range(rounds):
    src = VideoSource(clip)
    spec = VideoSpec(src.layout.width, src.layout.height, src.time_base, src.frame_rate, src.tags)
    sink = VideoSink(out, EncodeOptions(preset="ultrafast"), spec, src.passthrough)

    def work():
        try:
            for n, item in enumerate(src.items()):
                if hasattr(item, "planes"):
                    sink.write_frame(item.planes, item.pts)
                else:
                    sink.write_packet(item)
        except Exception as exc:
            if "aborted" not in str(exc):
                errors.append(repr(exc))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    time.sleep(random.random() * 0.1)
    sink.abort()  # as upscale_video does on Ctrl-C: the sink, then the source, from this thread
    src.close()
    t.join(10)
    assert not t.is_alive(), "worker thread still running"
    assert not sink.temp.exists(), sink.temp
print("errors:", errors)
"""


def test_closing_source_and_sink_while_a_thread_reads_and_writes(tmp_path):
    """A read or write after close ran FFmpeg on freed memory (SIGSEGV in av_read_frame): run the
    race many times in a child process, so a crash fails this test instead of killing pytest."""
    import subprocess
    import sys

    clip = make_clip(tmp_path / "race.mp4", frames=120, size=(160, 120), audio=True)
    script = tmp_path / "race.py"
    script.write_text(_CLOSE_RACE)
    proc = subprocess.run(
        [sys.executable, str(script), str(clip), str(tmp_path / "out.mp4"), "8"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "errors: []"
    assert not list(tmp_path.glob(".*partial*"))
