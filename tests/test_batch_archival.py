"""``vidsr batch`` with archival sources: deinterlacing, metadata, 10-bit and lossless output come
through a segmented run (pieces cut at keyframes, upscaled apart, joined) as through a single pass."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import pytest
from archival_clips import comb, grey_chroma, nearest_batch, noise_planes, psnr, read_planes, weave, write_clip
from click.testing import CliRunner
from test_interlace import FRAMES, PICTURES
from test_metadata import EXPECTED, archival, facts

from vidsr.batch import segments
from vidsr.cli import cli
from vidsr.media.interlace import VERDICT_TAG
from vidsr.media.sink import EncodeOptions
from vidsr.media.source import VideoSource


def batch(src, out, encode: EncodeOptions, seconds: float | None = 0.15):
    report = nearest_batch([src], out, encode, seconds)
    assert report.exit_code == 0, report.files
    (outcome,) = report.files
    if seconds is not None:
        assert (outcome.segments or 1) > 1  # really cut into pieces
    return outcome, out / src.name


def tff_clip(tmp_path, *, flagged: bool):
    """FFV1 (every frame a keyframe: cuts anywhere) in Matroska, flagged tff by the container alone,
    or not at all; NUT pieces lose a container flag, so the verdict must travel with them."""
    frames = [grey_chroma(weave(PICTURES[2 * k], PICTURES[2 * k + 1], "tff")) for k in range(FRAMES)]

    def flag(out, stream):
        stream.codec_context.field_order = 2

    return write_clip(tmp_path / "tff.mkv", frames, setup=flag if flagged else None)


def test_pieces_carry_the_whole_files_verdict(tmp_path):
    src = tff_clip(tmp_path, flagged=True)
    work = tmp_path / "work"
    work.mkdir()
    plan = segments.plan(src, work, 0.15)
    segments.split(src, plan)
    piece = plan.segments[1].source
    with av.open(str(piece)) as c:
        assert c.streams.video[0].codec_context.field_order == 0  # NUT dropped the container's flag
        assert c.streams.video[0].metadata[VERDICT_TAG] == "tff"
    with VideoSource(piece, deinterlace="auto") as source:
        assert source.interlace.detected == "tff" and source.interlace.idet is None
        assert source.interlace.reason == "found for the whole file before it was cut"


@pytest.mark.parametrize("field_rate", [False, True])
def test_segmented_deinterlace_keeps_frames_and_times(tmp_path, field_rate):
    src = tff_clip(tmp_path, flagged=False)
    outcome, out = batch(src, tmp_path / "out", EncodeOptions(codec="ffv1", field_rate=field_rate))
    times_in = [t for t, _ in read_planes(src)]
    frames = read_planes(out)
    if field_rate:
        half = (times_in[1] - times_in[0]) / 2
        assert [t for t, _ in frames] == [t + d for t in times_in for d in (Fraction(0), half)]
    else:
        assert [t for t, _ in frames] == times_in
    assert outcome.frames_in == FRAMES and outcome.frames_out == len(frames) == FRAMES * (2 if field_rate else 1)
    step = 1 if field_rate else 2
    for j, (_, planes) in enumerate(frames):
        luma = planes[0][::2, ::2]
        assert comb(luma) < 1.5, (j, comb(luma))
        assert psnr(luma, PICTURES[j * step]) > 30, j
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.field_order == 1  # progressive, as woven
        assert VERDICT_TAG not in c.streams.video[0].metadata  # the pieces' tag stays in the pieces


def test_segmented_run_keeps_the_metadata(tmp_path):
    src = archival(tmp_path / "in.mkv")
    outcome, out = batch(src, tmp_path / "out", EncodeOptions(codec="ffv1"))
    got = facts(out)
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert not [w for w in outcome.warnings if "cannot hold" in w], outcome.warnings


def test_segmented_run_keeps_the_field_order_when_not_deinterlacing(tmp_path):
    src = tff_clip(tmp_path, flagged=True)
    _, out = batch(src, tmp_path / "out", EncodeOptions(codec="ffv1", deinterlace="off"))
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.field_order == 2


@pytest.mark.parametrize(
    ("encode", "pix_fmt", "bits", "codec"),
    [
        (EncodeOptions(codec="ffv1"), "yuv420p10le", 10, "ffv1"),
        (EncodeOptions(lossless=True), "yuv420p", 8, "ffv1"),  # --lossless: pieces are FFV1 too
    ],
)
def test_segmented_lossless_and_10bit_round_trip(tmp_path, encode, pix_fmt, bits, codec):
    src = write_clip(tmp_path / "master.mkv", noise_planes(8, bits=bits), pix_fmt=pix_fmt)
    _, out = batch(src, tmp_path / "out", encode)
    with av.open(str(out)) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].codec_context.pix_fmt) == (codec, pix_fmt)
    ins, outs = read_planes(src), read_planes(out)
    assert len(outs) == len(ins) == 8
    for (t_in, a), (t_out, b) in zip(ins, outs, strict=True):
        assert t_in == t_out
        for plane_in, plane_out in zip(a, b, strict=True):
            assert psnr(plane_out[::2, ::2], plane_in, peak=(1 << bits) - 1) == float("inf")


def test_cuts_only_where_packets_hold_whole_pictures(tmp_path, monkeypatch):
    """A packet that holds one field of a frame (PAFF H.264, MPEG-2 field pictures) must not start a
    piece: the other field would be in the piece before.  Such files are not cut at all."""
    src = tff_clip(tmp_path, flagged=True)
    assert segments.whole_pictures(src)  # FFV1 (and x264, MBAFF) store both fields in one packet
    assert len(segments.plan(src, tmp_path, 0.15).segments) > 1
    monkeypatch.setattr(segments, "whole_pictures", lambda path: False)  # as a field-per-packet file shows
    assert [s.packets for s in segments.plan(src, tmp_path, 0.15).segments] == [FRAMES]


def test_cli_batch_passes_the_archival_options(tmp_path):
    src = tff_clip(tmp_path, flagged=False)
    out = tmp_path / "out"
    args = ["batch", str(src), "-o", str(out), "-m", "nearest", "-s", "2", "--device", "cpu", "--threads", "1"]
    result = CliRunner().invoke(
        cli, [*args, "--lossless", "--field-rate", "--segment-seconds", "0.15", "--json", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)["files"]
    assert record["frames_out"] == 2 * FRAMES and record["segments"] > 1
    with av.open(str(out / src.name)) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
