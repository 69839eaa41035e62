"""Film transferred to video with 3:2 pulldown: found by the cadence scan, inverse telecined (fieldmatch +
decimate) back to its film frames at 23.976, timed from the source's own clock; video-rate sections and
edits that break the cadence come out deinterlaced, never combed and never short of a film picture.

Every clip is made by FFmpeg's ``telecine`` filter from film pictures the test knows, so each output
frame is traced back to the picture it shows (PSNR against it, and against the best other picture)."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import pytest
from archival_clips import comb, grey_chroma, read_planes
from click.testing import CliRunner
from telecine_clips import (
    FILM_RATE,
    VIDEO_RATE,
    film,
    film_picture,
    telecine,
    traced,
    video_rate,
    whole_pictures,
    write_ntsc,
)

from vidsr.cli import cli
from vidsr.media import cadence
from vidsr.media.sink import EncodeOptions
from vidsr.media.source import VideoSource
from vidsr.video import upscale_video

FILM = film(40)  # 40 film pictures: 50 frames of 29.97 video
WHOLE_DB = 40.0  # an output frame showing a film picture matches it at least this well (crf 6 x264: ~54)
MARGIN_DB = 10.0  # and beats every other picture by this much (any other is 25-31 dB from it)
COMBED = 3.0  # comb() of a frame woven from two film pictures is ~12, of video-rate ~6.5, of a picture 0.3


def upscale(src, dst, **encode):
    encode.setdefault("codec", "ffv1")  # lossless out: what is measured is the field handling alone
    return upscale_video(
        src, dst, model="nearest", scale=2, device="cpu", encode=EncodeOptions(**encode), progress=False
    )


def output_lumas(path):
    """(seconds, luma at the input's size) of each frame of an output upscaled x2 with nearest."""
    return [(t, planes[0][::2, ::2]) for t, planes in read_planes(path)]


def assert_shows_pictures(outputs, pictures) -> list[int]:
    """Every output frame is whole (not combed) and shows one of ``pictures`` clearly; their indices."""
    shown = []
    for k, (_, luma) in enumerate(outputs):
        assert comb(luma) < COMBED, (k, comb(luma))
        index, match, other = traced(luma, pictures)
        assert match > WHOLE_DB and match > other + MARGIN_DB, (k, index, match, other)
        shown.append(index)
    return shown


@pytest.mark.parametrize("codec", ["ffv1", "libx264"])
@pytest.mark.parametrize("order", ["tff", "bff"])
def test_telecined_film_comes_back_as_its_film_frames(tmp_path, order, codec):
    frames = telecine(FILM, order)
    assert len(frames) == 50
    assert sum(comb(y) > COMBED for y, _, _ in frames) == 20  # 2 of every 5 frames woven from two pictures
    src = write_ntsc(tmp_path / f"film.{'mkv' if codec == 'ffv1' else 'mp4'}", frames, order, codec=codec)
    summary = upscale(src, tmp_path / "out.mkv")
    fields = summary.interlace
    assert (fields["verdict"], fields["ivtc"], fields["deinterlaced"]) == (f"telecined {order}", True, True)
    assert [s["kind"] for s in fields["sections"]] == ["telecined"]
    assert summary.frames_in == 50 and abs(summary.frames_out - len(FILM)) <= 1
    assert (summary.frame_rate_in, summary.frame_rate_out) == (29.97, 23.976)
    outputs = output_lumas(tmp_path / "out.mkv")
    assert len(outputs) == summary.frames_out
    shown = assert_shows_pictures(outputs, FILM)
    assert sorted(set(shown)) == list(range(len(FILM)))  # no film picture lost
    assert shown == sorted(shown)  # in order
    # Timed as film, from the source's clock: picture k at k film frames after the first frame.
    start = read_planes(src)[0][0]
    for (t, _), k in zip(outputs, shown, strict=True):
        assert abs(t - (start + k / FILM_RATE)) <= Fraction(1, 1000), (k, t)
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert c.streams.video[0].codec_context.field_order == 1  # progressive, as the film was


def test_a_cut_mid_cadence_loses_no_whole_picture(tmp_path):
    """An edit joins two transfers mid-cadence: orphan fields whose partners were cut away, and a new
    cadence phase.  Every picture the clip holds both fields of comes back; nothing stays combed."""
    first, second = film(20), film(20, start=100)
    frames = telecine(first, "tff")[:13] + telecine(second, "tff")[2:]
    pictures = first + second
    whole = whole_pictures(frames, pictures)
    assert len(whole) < len(pictures)  # the edit did cut pictures short
    src = write_ntsc(tmp_path / "edit.mp4", frames, "tff", codec="libx264")
    summary = upscale(src, tmp_path / "out.mkv")
    sections = summary.interlace["sections"]
    assert [s["kind"] for s in sections] == ["telecined", "telecined"]  # one per cadence phase
    assert sections[1]["first"] in (12, 13) and sections[0]["cycle_start"] != sections[1]["cycle_start"]
    outputs = output_lumas(tmp_path / "out.mkv")
    for k, (_, luma) in enumerate(outputs):
        assert comb(luma) < COMBED, (k, comb(luma))  # orphans deinterlaced, not left combed
    shown = {traced(luma, pictures)[0] for _, luma in outputs if traced(luma, pictures)[1] > WHOLE_DB}
    assert whole <= shown, sorted(whole - shown)
    # the orphans come out too (deinterlaced from their one field), at most one film picture repeated
    assert len(whole) <= len(outputs) <= len(whole) + 3


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_video_rate_title_then_film(tmp_path, order):
    """A title shot on video (every field a new moment) before the film: deinterlaced at the video rate,
    then the film inverse telecined; the sections say where each is."""
    title = video_rate(12, order)
    src = write_ntsc(tmp_path / "mixed.mp4", title + telecine(FILM, order), order, codec="libx264")
    summary = upscale(src, tmp_path / "out.mkv")
    sections = [(s["kind"], s["order"], s["first"], s["end"]) for s in summary.interlace["sections"]]
    assert sections == [("interlaced", order, 0, 12), ("telecined", order, 12, 62)]
    assert summary.interlace["ivtc"] and summary.frames_in == 62
    outputs = output_lumas(tmp_path / "out.mkv")
    for k, (_, luma) in enumerate(outputs):
        assert comb(luma) < COMBED, (k, comb(luma))
    # the title keeps every frame at 29.97: frame k shows its first field's moment
    start = read_planes(src)[0][0]
    video = [(t, luma) for t, luma in outputs if t < start + Fraction(12) / VIDEO_RATE - Fraction(1, 1000)]
    assert len(video) == 12
    moments = [film_picture(1000 + k) for k in range(12)]  # the first field's moment (see video_rate)
    for k, (t, luma) in enumerate(video):
        assert abs(t - (start + k / VIDEO_RATE)) <= Fraction(1, 1000)
        index, match, _ = traced(luma, moments)
        assert index == k and match > 28, (k, index, match)
    # then the film: every picture, once
    shown = assert_shows_pictures(outputs[12:], FILM)
    assert sorted(set(shown)) == list(range(len(FILM))) and len(shown) <= len(FILM) + 1


def test_progressive_and_interlaced_video_are_handled_as_before(tmp_path):
    progressive = write_ntsc(tmp_path / "prog.mkv", [grey_chroma(p) for p in FILM[:20]], None)
    summary = upscale(progressive, tmp_path / "prog-out.mkv")
    fields = summary.interlace
    assert (fields["verdict"], fields["ivtc"], fields["deinterlaced"]) == ("progressive", False, False)
    assert fields["sections"] == []  # plainly progressive at the start: no cadence scan, as before
    assert summary.frames_in == summary.frames_out == 20 and summary.frame_rate_out == summary.frame_rate_in
    for (_, a), (_, b) in zip(read_planes(progressive), read_planes(tmp_path / "prog-out.mkv"), strict=True):
        assert (a[0] == b[0][::2, ::2]).all()

    interlaced = write_ntsc(tmp_path / "video.mkv", video_rate(20, "bff"), "bff")
    summary = upscale(interlaced, tmp_path / "video-out.mkv")
    fields = summary.interlace
    assert (fields["verdict"], fields["ivtc"], fields["done"]) == ("interlaced bff", False, "bwdif bff, frame rate")
    assert [s["kind"] for s in fields["sections"]] == ["interlaced"]
    assert summary.frames_in == summary.frames_out == 20
    times = [t for t, _ in read_planes(interlaced)]
    assert [t for t, _ in read_planes(tmp_path / "video-out.mkv")] == times


def test_asked_for_modes(tmp_path):
    """``ivtc`` inverse telecines film no flag marks as interlaced; ``on`` deinterlaces it as told
    (frame for frame, blends and all); ``off`` leaves it alone."""
    src = write_ntsc(tmp_path / "unflagged.mkv", telecine(FILM, "tff"), None)
    forced = upscale(src, tmp_path / "ivtc.mkv", deinterlace="ivtc")
    assert forced.interlace["ivtc"] and forced.interlace["mode"] == "ivtc"
    assert_shows_pictures(output_lumas(tmp_path / "ivtc.mkv"), FILM)
    assert abs(forced.frames_out - len(FILM)) <= 1
    told = upscale(src, tmp_path / "on.mkv", deinterlace="on")
    assert not told.interlace["ivtc"] and told.frames_out == 50
    left = upscale(src, tmp_path / "off.mkv", deinterlace="off")
    assert not left.interlace["deinterlaced"] and left.frames_out == 50


def test_audio_is_copied_untouched(tmp_path):
    src = write_ntsc(tmp_path / "film.mkv", telecine(FILM, "tff"), "tff", audio=True)
    upscale(src, tmp_path / "out.mkv")

    def audio(path):
        with av.open(str(path)) as c:
            stream = c.streams.audio[0]
            return [(p.pts * stream.time_base, bytes(p)) for p in c.demux(stream) if p.size]

    assert audio(tmp_path / "out.mkv") == audio(src)
    video = read_planes(tmp_path / "out.mkv")
    sound = audio(src)
    # the film ends where the video did: its last frame is shown until the audio's last moment or so
    assert abs(float(video[-1][0] + 1 / FILM_RATE) - float(50 / VIDEO_RATE)) < 0.05
    assert float(sound[-1][0]) > float(video[-1][0])


def test_the_source_counts_film_frames(tmp_path):
    """Frames out differ from frames in: the source's estimate (the progress bar's total), rate and clock
    say so before the first frame is read."""
    src = write_ntsc(tmp_path / "film.mkv", telecine(FILM, "bff"), "bff")
    with VideoSource(src, deinterlace="auto") as source:
        assert source.frame_rate == Fraction(24000, 1001) and source.input_frame_rate == VIDEO_RATE
        assert source.time_base == Fraction(1, 120000)  # holds 1/1000 ticks and quarter frames alike
        assert source.frames_estimate in (39, 40, 41)
        frames = [item for item in source.items() if not isinstance(item, av.Packet)]
        assert len(frames) == source.frames_decoded == 40 and source.frames_read == 50


def test_cli_says_what_it_did(tmp_path):
    src = write_ntsc(tmp_path / "film.mkv", telecine(FILM, "tff"), "tff")
    args = ["upscale", str(src), "-m", "nearest", "-s", "2", "--device", "cpu", "--codec", "ffv1"]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "a.mkv"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["frames_in"], summary["frame_rate_in"], summary["frame_rate_out"]) == (50, 29.97, 23.976)
    assert summary["interlace"]["verdict"] == "telecined tff" and summary["frames_out"] in (39, 40, 41)
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "b.mkv"), "--field-rate"])
    assert result.exit_code == 0, result.output
    assert f"inverse telecine: 50 frames at 29.97 fps in, {summary['frames_out']} at 23.976 fps out" in result.stderr
    assert "--field-rate does nothing with inverse telecine" in result.stderr


def test_probe_shows_the_sections(tmp_path):
    src = write_ntsc(tmp_path / "mixed.mkv", video_rate(12, "tff") + telecine(FILM, "tff"), "tff")
    result = CliRunner().invoke(cli, ["probe", str(src)])
    assert result.exit_code == 0, result.output
    assert "fields: telecined tff (film with 3:2 pulldown in 50 of 62 frames" in result.output
    assert "0.00-0.40 s (frames 0-11): interlaced tff" in result.output
    assert "0.40-2.07 s (frames 12-61): telecined tff, film cycles begin at frames 2 mod 5" in result.output
    fields = json.loads(CliRunner().invoke(cli, ["probe", str(src), "--json"]).stdout)["interlace"]
    assert [(s["kind"], s["first"], s["end"]) for s in fields["sections"]] == [
        ("interlaced", 0, 12),
        ("telecined", 12, 62),
    ]


def test_scan_windows_past_the_first_seconds(tmp_path):
    """Past its first seconds a file is looked at in windows reached by seeking: film there is found."""
    src = write_ntsc(tmp_path / "long.mkv", video_rate(30, "tff") + telecine(film(80), "tff"), "tff")
    with av.open(str(src)) as c:
        index = c.streams.video[0].index
    scanned = cadence.scan(src, index, cadence.ScanOptions(full_seconds=0.5, window_seconds=0.7, every_seconds=1.5))
    assert not scanned.complete
    kinds = [(s.kind, s.first) for s in scanned.sections]
    assert kinds[0] == ("interlaced", 0) and ("telecined" in [k for k, _ in kinds])
    film_at = next(s for s in scanned.sections if s.kind == "telecined")
    assert 30 <= film_at.first <= 60  # the first window past the title
    everything = cadence.scan(src, index, cadence.ScanOptions(full_seconds=60))
    assert everything.complete and [(s.kind, s.first) for s in everything.sections] == [
        ("interlaced", 0),
        ("telecined", 30),
    ]


def test_clean_cuts_fall_between_whole_film_frames(tmp_path):
    frames = telecine(film(40), "tff")[3:]  # starts mid-cycle: film cycles begin at frame 2
    src = write_ntsc(tmp_path / "film.mkv", frames, "tff")
    scanned = cadence.scan(src, 0)
    (section,) = scanned.sections
    assert section.cycle_start == 2
    cuts = [i for i in range(len(frames)) if scanned.clean_cut(i, section.cycle_start)]
    assert cuts and all(i % 5 == 2 for i in cuts)
    for i in cuts:  # the frames either side are whole pictures, not weaves of two
        assert comb(frames[i - 1][0]) < COMBED and comb(frames[i][0]) < COMBED
