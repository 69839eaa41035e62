"""``--segment-seconds``: keyframe-aligned pieces, upscaled apart and joined, equal a single pass.

The clip is a cut of box.mp4 (its uneven timestamps and its MP3 audio) re-encoded small with a
keyframe every 12 frames and B-frames, so there are several pieces and dts != pts throughout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest
from conftest import data_path
from test_batch_support import audio_packets, avi_with_pcm, decoded, records, reencode_cut

from vidsr.batch import BatchOptions, UpscaleSettings, run_batch, segments
from vidsr.batch.executors import InlineExecutor
from vidsr.batch.options import RuntimeSettings
from vidsr.errors import OutputError
from vidsr.media.sink import EncodeOptions


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    return reencode_cut(data_path("video", "box.mp4"), folder / "box.mp4", frames=40, size=(160, 120), gop=12)


def options(out: Path, encode: EncodeOptions, seconds: float | None) -> BatchOptions:
    return BatchOptions(
        out_dir=out,
        upscale=UpscaleSettings("bicubic", 2, None, encode),
        runtime=RuntimeSettings(device="cpu", threads=1),
        segment_seconds=seconds,
        progress=False,
    )


def video_timestamps(path: Path) -> list[tuple[int, int]]:
    with av.open(str(path)) as c:
        return [(p.pts, p.dts) for p in c.demux(c.streams.video[0]) if p.size]


LOSSLESS = EncodeOptions(preset="ultrafast", crf=0)


def test_plan_cuts_only_at_clean_keyframes(long_clip: Path, tmp_path: Path) -> None:
    plan = segments.plan(long_clip, tmp_path, 0.5)
    # Keyframes every 12 frames (0.4 s): cuts at the first keyframe at least 0.5 s after the last cut.
    assert [s.packets for s in plan.segments] == [24, 16]
    assert segments.plan(long_clip, tmp_path, 100).segments[0].packets == 40


def test_segmented_run_equals_single_pass(long_clip: Path, tmp_path: Path) -> None:
    single, pieces = tmp_path / "single", tmp_path / "pieces"
    assert run_batch([str(long_clip)], options(single, LOSSLESS, None)).exit_code == 0
    report = run_batch([str(long_clip)], options(pieces, LOSSLESS, 0.3))
    assert report.exit_code == 0 and report.files[0].segments == 4
    a, b = decoded(pieces / "box.mp4"), decoded(single / "box.mp4")
    assert len(a) == 40 and a == b  # every frame, its timestamp and its pixels (bicubic + lossless x264)
    assert audio_packets(pieces / "box.mp4") == audio_packets(long_clip)  # the audio, packet for packet
    manifest = records(pieces)
    assert [manifest[f"box.mp4#{i}"]["state"] for i in range(4)] == ["done"] * 4
    assert manifest["box.mp4"]["frames_out"] == 40 and manifest["box.mp4"]["segments"] == 4
    assert not (pieces / ".vidsr-work").exists()  # pieces removed once joined


def test_b_frames_join_with_increasing_dts(long_clip: Path, tmp_path: Path) -> None:
    """x264 with B-frames: each piece's encoder starts its own decode delay; the join rebuilds dts."""
    lossy = EncodeOptions(preset="veryfast", crf=23)
    single, pieces = tmp_path / "single", tmp_path / "pieces"
    assert run_batch([str(long_clip)], options(single, lossy, None)).exit_code == 0
    assert run_batch([str(long_clip)], options(pieces, lossy, 0.3)).exit_code == 0
    stamps = video_timestamps(pieces / "box.mp4")
    assert any(pts != dts for pts, dts in stamps)  # there are B-frames
    dts = [d for _, d in stamps]
    assert dts == sorted(set(dts)) and all(d <= p for p, d in stamps)
    assert [t for t, _ in decoded(pieces / "box.mp4")] == [t for t, _ in decoded(single / "box.mp4")]


def test_resume_reuses_finished_pieces(long_clip: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    real_join = segments.join

    def failing_join(*args, **kwargs):
        raise OutputError("cannot write to the join: no space left on device")

    monkeypatch.setattr(segments, "join", failing_join)
    first = run_batch([str(long_clip)], options(out, LOSSLESS, 0.3))
    assert first.exit_code == 1 and first.failures[0].error == "cannot write to the join: no space left on device"
    pieces = sorted((out / ".vidsr-work").rglob("up-*.nut"))
    assert len(pieces) == 4
    stamps = {p: p.stat().st_mtime_ns for p in pieces}

    # The join removes the pieces once done: look at them when it starts to read them.
    joined: dict[Path, int] = {}

    def watching_join(plan, *args, **kwargs):
        joined.update({Path(s.output).resolve(): Path(s.output).stat().st_mtime_ns for s in plan.segments})
        return real_join(plan, *args, **kwargs)

    monkeypatch.setattr(segments, "join", watching_join)
    calls = []
    real_run = InlineExecutor.submit
    monkeypatch.setattr(InlineExecutor, "submit", lambda self, task: calls.append(task) or real_run(self, task))
    second = run_batch([str(long_clip)], options(out, LOSSLESS, 0.3))
    assert second.exit_code == 0 and calls == []  # nothing upscaled again: only the join ran
    assert joined == {p.resolve(): t for p, t in stamps.items()}  # the first run's pieces, untouched
    assert len(decoded(out / "box.mp4")) == 40
    assert records(out)["box.mp4"]["attempts"] == 2


def test_join_re_encodes_sound_the_container_cannot_hold(tmp_path: Path) -> None:
    """AVI in, MP4 out (AVI keeps no timestamps): its 8-bit PCM becomes AAC, as in a single pass."""
    source = avi_with_pcm(tmp_path / "in" / "tape.avi")
    report = run_batch([str(source)], options(tmp_path / "out", LOSSLESS, 0.5))
    (result,) = report.files
    assert (result.key, result.state, result.segments) == ("tape.mp4", "done", 3)
    assert result.warnings == ["audio stream #1 (pcm_u8) re-encoded to AAC: .mp4 cannot hold pcm_u8"]
    with av.open(str(tmp_path / "out" / "tape.mp4")) as c:
        assert [(s.type, s.codec_context.name) for s in c.streams] == [("video", "h264"), ("audio", "aac")]
        assert c.streams.audio[0].codec_context.layout.name == "mono"
        assert abs(c.duration / 1e6 - 1.6) < 0.1
    assert len(decoded(tmp_path / "out" / "tape.mp4")) == 40


def test_decode_times_increase_and_never_pass_presentation() -> None:
    # Two pieces from an encoder with a B-pyramid: decode order 0 3 1 2 | 4 7 5 6.
    pts = [0, 3, 1, 2, 4, 7, 5, 6]
    dts = segments._decode_times(pts, declared_delay=0)
    assert dts == sorted(set(dts)) and all(d <= p for p, d in zip(pts, dts, strict=True))
    # Reorder delay 1: packet i decodes at the (i - 1)-th presentation time, the first one tick early.
    assert dts == [-1, 0, 1, 2, 3, 4, 5, 6]
    assert segments._decode_times(pts, declared_delay=2) == [-2, -1, 0, 1, 2, 3, 4, 5]
    with pytest.raises(OutputError, match="two frames share a timestamp"):
        segments._decode_times([0, 1, 1], 0)


def test_a_hash_in_a_file_name_is_not_a_piece_number(long_clip: Path, tmp_path: Path) -> None:
    """Pieces are keyed "<file key>#<index>": a "#" of the file's own name must not be read as one
    (it was: the whole file ran as piece "2.mp4" of a file "take", and the run crashed)."""
    named = tmp_path / "in" / "take#2.mp4"
    named.parent.mkdir()
    shutil.copy(long_clip, named)
    for seconds in (None, 0.3):
        out = tmp_path / f"out-{seconds}"
        report = run_batch([str(named.parent)], options(out, LOSSLESS, seconds))
        assert report.exit_code == 0, report.failures
        assert decoded(out / "take#2.mp4") == decoded(tmp_path / "out-None" / "take#2.mp4")
        assert len(decoded(out / "take#2.mp4")) == 40
