"""Lossless output: FFV1 (Matroska) and x264 at qp 0 give back every sample of a lossless source."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest
from archival_clips import noise_planes, read_planes, write_clip
from click.testing import CliRunner

from vidsr.cli import cli
from vidsr.errors import OutputError
from vidsr.media.sink import EncodeOptions
from vidsr.video import upscale_video


@pytest.fixture
def master(tmp_path):
    return write_clip(tmp_path / "master.mkv", noise_planes(5))


def assert_nearest_round_trip(src, dst, scale=2):
    """Every output sample is its nearest input sample: taking every ``scale``-th gives the input back."""
    ins, outs = read_planes(src), read_planes(dst)
    assert len(outs) == len(ins)
    for (time_in, a), (time_out, b) in zip(ins, outs, strict=True):
        assert time_out == time_in
        for plane_in, plane_out in zip(a, b, strict=True):
            assert plane_out.shape == (plane_in.shape[0] * scale, plane_in.shape[1] * scale)
            np.testing.assert_array_equal(plane_out[::scale, ::scale], plane_in)


def codec_of(path):
    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.name


@pytest.mark.parametrize(
    ("suffix", "encode", "codec"),
    [
        (".mkv", EncodeOptions(codec="ffv1"), "ffv1"),
        (".mkv", EncodeOptions(lossless=True), "ffv1"),
        (".mp4", EncodeOptions(codec="libx264", qp=0), "h264"),
        (".mp4", EncodeOptions(lossless=True), "h264"),
        (".mkv", EncodeOptions(codec="libx265", lossless=True), "hevc"),
    ],
)
def test_lossless_round_trip_is_bit_exact(tmp_path, master, suffix, encode, codec):
    dst = tmp_path / f"out{suffix}"
    summary = upscale_video(master, dst, model="nearest", scale=2, device="cpu", encode=encode, progress=False)
    assert summary.frames_out == 5
    assert codec_of(dst) == codec
    assert_nearest_round_trip(master, dst)


def test_lossy_default_is_not_bit_exact(tmp_path, master):
    """The check above can fail: the default (x264 at its default CRF) changes noise."""
    dst = tmp_path / "out.mp4"
    upscale_video(master, dst, model="nearest", scale=2, device="cpu", progress=False)
    with pytest.raises(AssertionError):
        assert_nearest_round_trip(master, dst)


def test_ffv1_is_written_as_an_archival_master(tmp_path, master):
    """FFV1 version 3, every frame a keyframe (damage stays in its frame, cuts anywhere)."""
    dst = tmp_path / "out.mkv"
    upscale_video(
        master, dst, model="nearest", scale=2, device="cpu", encode=EncodeOptions(codec="ffv1"), progress=False
    )
    with av.open(str(dst)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    assert packets and all(p.is_keyframe for p in packets)


@pytest.mark.parametrize(
    ("encode", "message"),
    [
        (EncodeOptions(codec="mpeg4", lossless=True), "mpeg4 has no lossless mode; use ffv1 (in .mkv) or libx264"),
        (EncodeOptions(codec="libx264", crf=0, qp=0), "--crf and --qp both set; choose one"),
        (EncodeOptions(codec="ffv1", crf=10), "ffv1 is always lossless: it takes no --crf or --qp"),
        (EncodeOptions(lossless=True, qp=3), "--lossless takes no --crf or --qp"),
        (EncodeOptions(codec="libvpx-vp9", qp=3), "libvpx-vp9 has no constant quantiser (--qp); use --crf"),
    ],
)
def test_impossible_lossless_requests_are_refused(tmp_path, master, encode, message):
    dst = tmp_path / "out.mkv"
    with pytest.raises(OutputError) as err:
        upscale_video(master, dst, model="nearest", scale=2, device="cpu", encode=encode, progress=False)
    assert str(err.value) == message
    assert not dst.exists()


def test_cli_lossless(tmp_path, master):
    dst = tmp_path / "cli.mkv"
    args = ["upscale", str(master), "-o", str(dst), "-m", "nearest", "-s", "2", "--device", "cpu", "--lossless"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frames_out"] == 5
    assert codec_of(dst) == "ffv1"
    assert_nearest_round_trip(master, dst)
    bad = CliRunner().invoke(cli, [*args, "--codec", "mpeg4", "--overwrite"])
    assert bad.exit_code != 0
    assert "Error: mpeg4 has no lossless mode" in bad.output


def test_a_container_that_cannot_hold_the_encoder_says_so(tmp_path, master):
    with pytest.raises(OutputError) as err:
        upscale_video(
            master, tmp_path / "out.webm", model="nearest", scale=2, device="cpu", encode=EncodeOptions(codec="ffv1")
        )
    assert str(err.value) == f"cannot encode {tmp_path / 'out.webm'}: .webm cannot hold ffv1; try .mkv"


@pytest.mark.parametrize(("cores", "threading"), [(2, "SLICE"), (16, "FRAME")])
def test_x264_gets_frame_threads_on_machines_with_many_cores(monkeypatch, cores, threading):
    """Frame threads measured faster on the 16-core GPU host, slices on the 2-core CPU."""
    from vidsr.media import encoders

    monkeypatch.setattr(encoders.os, "cpu_count", lambda: cores)
    with av.open(io.BytesIO(), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        encoders.configure(stream, "libx264", EncodeOptions(crf=18), quiet=True)
        assert stream.codec_context.thread_type.name == threading
