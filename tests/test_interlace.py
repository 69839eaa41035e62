"""Interlaced input: detected from flags or by idet, deinterlaced with bwdif before the model, with the
frame count and timestamps each mode promises.

The clips weave a moving progressive picture sequence (pictures 0, 1, 2...) into interlaced frames:
frame k holds picture 2k in its first field and picture 2k+1 in its second.  Deinterlaced at frame rate,
frame k should look like picture 2k; at field rate, output j like picture j.  A wrong field order gives
the other picture, so the comparison checks the detection as well as the deinterlacing.
"""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from archival_clips import comb, grey_chroma, moving_picture, psnr, read_planes, weave, write_clip
from click.testing import CliRunner

from vidsr.cli import cli
from vidsr.media.interlace import decide
from vidsr.media.sink import EncodeOptions
from vidsr.video import upscale_video

FRAMES = 8
PICTURES = [moving_picture(t) for t in range(2 * FRAMES)]
FIELD_ORDER = {"tff": 2, "bff": 3}  # AVFieldOrder


def interlaced_clip(tmp_path, order: str, kind: str):
    """kind: x264 (coded interlaced, flagged in the bitstream and the container), mkv-flag (FFV1,
    flagged only by the container), unflagged (FFV1, nothing says it is interlaced)."""
    frames = [grey_chroma(weave(PICTURES[2 * k], PICTURES[2 * k + 1], order)) for k in range(FRAMES)]

    def flag(out, stream):
        stream.codec_context.field_order = FIELD_ORDER[order]

    if kind == "x264":
        params = {"preset": "ultrafast", "crf": "8", "x264-params": f"interlaced=1:{order}=1"}
        return write_clip(tmp_path / f"{order}.mp4", frames, codec="libx264", options=params, setup=flag)
    return write_clip(tmp_path / f"{order}-{kind}.mkv", frames, setup=flag if kind == "mkv-flag" else None)


def upscale(src, dst, **encode):
    encode.setdefault("codec", "ffv1")  # lossless out: what is measured is the deinterlacing alone
    return upscale_video(
        src, dst, model="nearest", scale=2, device="cpu", encode=EncodeOptions(**encode), progress=False
    )


def lumas(path, scale=1):
    """(time, luma) of each frame; of an output upscaled ``scale`` times with nearest, every
    ``scale``-th sample: the picture at the input's size."""
    return [(t, planes[0][::scale, ::scale]) for t, planes in read_planes(path)]


KINDS = ["x264", "mkv-flag", "unflagged"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", ["tff", "bff"])
def test_frame_rate_deinterlace(tmp_path, order, kind):
    src = interlaced_clip(tmp_path, order, kind)
    summary = upscale(src, tmp_path / "out.mkv")
    assert summary.interlace["detected"] == order and summary.interlace["deinterlaced"]
    ins, outs = lumas(src), lumas(tmp_path / "out.mkv", 2)
    assert [t for t, _ in outs] == [t for t, _ in ins]  # one frame per frame, each at its frame's time
    assert summary.frames_in == summary.frames_out == FRAMES
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert c.streams.video[0].codec_context.field_order == 1  # flagged progressive, as it now is
    for k, ((_, woven), (_, out)) in enumerate(zip(ins, outs, strict=True)):
        assert comb(woven) > 10
        assert comb(out) < 0.1 * comb(woven), (k, comb(out), comb(woven))
        assert psnr(out, PICTURES[2 * k]) > 30 > psnr(out, PICTURES[2 * k + 1]), k


@pytest.mark.parametrize("kind", ["x264", "unflagged"])
@pytest.mark.parametrize("order", ["tff", "bff"])
def test_field_rate_deinterlace(tmp_path, order, kind):
    src = interlaced_clip(tmp_path, order, kind)
    summary = upscale(src, tmp_path / "out.mkv", field_rate=True)
    assert summary.interlace["field_rate"]
    ins, outs = lumas(src), lumas(tmp_path / "out.mkv", 2)
    assert len(outs) == summary.frames_out == 2 * FRAMES
    frame = ins[1][0] - ins[0][0]
    expected = [t + half for t, _ in ins for half in (Fraction(0), frame / 2)]
    assert [t for t, _ in outs] == expected  # the second field midway to the next frame
    for j, (_, out) in enumerate(outs):
        assert comb(out) < 1.5, (j, comb(out))
        assert psnr(out, PICTURES[j]) > 30, j


def test_progressive_input_is_left_alone(tmp_path):
    src = write_clip(tmp_path / "prog.mkv", [grey_chroma(p) for p in PICTURES[:FRAMES]])
    summary = upscale(src, tmp_path / "out.mkv")
    assert summary.interlace["detected"] == "progressive" and not summary.interlace["deinterlaced"]
    assert summary.interlace["idet"]["progressive"] >= FRAMES - 2  # idet looked, and saw whole pictures
    for (_, a), (_, b) in zip(lumas(src), lumas(tmp_path / "out.mkv", 2), strict=True):
        assert (a == b).all()


def test_off_keeps_the_combing_and_says_so(tmp_path):
    src = interlaced_clip(tmp_path, "tff", "mkv-flag")
    summary = upscale(src, tmp_path / "out.mkv", deinterlace="off")
    assert not summary.interlace["deinterlaced"] and summary.interlace["idet"] is None
    assert any("input is interlaced" in w for w in summary.warnings), summary.warnings
    assert min(comb(y) for _, y in lumas(tmp_path / "out.mkv", 2)) > 10


def test_on_deinterlaces_unflagged_input_without_asking_idet_to_agree(tmp_path):
    src = write_clip(tmp_path / "prog.mkv", [grey_chroma(p) for p in PICTURES[:FRAMES]])
    summary = upscale(src, tmp_path / "out.mkv", deinterlace="on")
    assert summary.interlace["deinterlaced"] and summary.frames_out == FRAMES


@pytest.mark.parametrize(
    ("flags", "idet", "verdict"),
    [
        ("tff", {"tff": 20, "bff": 0, "progressive": 0}, "tff"),
        ("progressive", {"tff": 0, "bff": 14, "progressive": 1}, "bff"),  # unflagged capture
        ("tff", {"tff": 0, "bff": 0, "progressive": 30}, "progressive"),  # film flagged interlaced
        ("tff", {"tff": 1, "bff": 25, "progressive": 0}, "bff"),  # wrong field order flag
        ("tff", {"tff": 0, "bff": 0, "progressive": 2}, "tff"),  # static start: flags stand
        ("unknown", {"tff": 1, "bff": 0, "progressive": 20}, "progressive"),
    ],
)
def test_flags_and_idet_weighed(flags, idet, verdict):
    assert decide(flags, idet)[0] == verdict


def test_the_reason_counts_the_frames_idet_left_undetermined():
    """Still footage leaves idet undecided on most frames: the reason says so, instead of a bare
    "0 tff, 0 bff, 0 progressive" that reads like a scan that never ran."""
    verdict, reason = decide("progressive", {"tff": 0, "bff": 0, "progressive": 0, "undetermined": 60})
    assert (verdict, reason) == (
        "progressive",
        "flags say progressive (idet: 0 tff, 0 bff, 0 progressive, 60 undetermined of the first 60 frames)",
    )


def test_cli_json_and_summary_line(tmp_path):
    src = interlaced_clip(tmp_path, "bff", "unflagged")
    dst = tmp_path / "cli.mkv"
    args = ["upscale", str(src), "-o", str(dst), "-m", "nearest", "-s", "2", "--device", "cpu", "--codec", "ffv1"]
    result = CliRunner().invoke(cli, [*args, "--field-rate"])
    assert result.exit_code == 0, result.output
    assert "deinterlaced: bwdif bff, one frame per field (double rate)" in result.stderr
    assert len(read_planes(dst)) == 2 * FRAMES


def test_probe_says_what_it_found(tmp_path):
    src = interlaced_clip(tmp_path, "bff", "unflagged")
    result = CliRunner().invoke(cli, ["probe", str(src), "--json"])
    assert result.exit_code == 0, result.output
    fields = json.loads(result.stdout)["interlace"]
    assert (fields["flags"], fields["detected"], fields["deinterlaced"]) == ("unknown", "bff", True)
    assert fields["idet"]["bff"] >= FRAMES - 2
    text = CliRunner().invoke(cli, ["probe", str(src)]).output
    assert "fields: bff (no interlaced flags, but the pictures are bff" in text


def test_10bit_interlaced_master_is_deinterlaced_at_10_bits(tmp_path):
    pictures = [moving_picture(t, bits=10) for t in range(2 * FRAMES)]
    frames = [grey_chroma(weave(pictures[2 * k], pictures[2 * k + 1], "bff")) for k in range(FRAMES)]
    frames = [(y, np.full_like(cb, 512), np.full_like(cr, 512)) for y, cb, cr in frames]
    src = write_clip(tmp_path / "bff10.mkv", frames, pix_fmt="yuv420p10le")
    dst = tmp_path / "out.mkv"
    args = ["upscale", str(src), "-o", str(dst), "-m", "nearest", "-s", "2", "--device", "cpu", "--codec", "ffv1"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["interlace"]["detected"] == "bff" and summary["interlace"]["deinterlaced"]
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    for k, ((_, woven), (_, luma)) in enumerate(zip(lumas(src), lumas(dst, 2), strict=True)):
        assert comb(luma) < 0.1 * comb(woven), k
        assert psnr(luma, pictures[2 * k], peak=1023) > 30
