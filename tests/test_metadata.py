"""Timecode, rotation, chapters, titles, languages and field order survive an upscale, or one warning
names what the output container could not hold."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import pytest
from archival_clips import noise_planes, write_clip
from click.testing import CliRunner

from vidsr.cli import cli
from vidsr.media.metadata import display_matrix, rotation_of
from vidsr.media.sink import EncodeOptions
from vidsr.video import upscale_video

CHAPTERS = [
    {"id": 1, "start": 0, "end": 2, "time_base": Fraction(1, 10), "metadata": {"title": "Leader"}},
    {"id": 2, "start": 2, "end": 4, "time_base": Fraction(1, 10), "metadata": {"title": "Reel 1"}},
]


def tag(tags, key):
    lowered = {k.lower(): v for k, v in tags.items()}
    return lowered.get(key) or (lowered.get("name") if key == "title" else None)


def archival(path, *, rotation=90, field_order=None, codec="ffv1"):
    def setup(out, stream):
        out.metadata["title"] = "Harbour, 1974"
        stream.metadata.update({"timecode": "10:00:00:00", "title": "Telecine A", "language": "fra"})
        if rotation:
            stream.set_display_rotation(rotation)
        if field_order is not None:
            stream.codec_context.field_order = field_order
        out.set_chapters(CHAPTERS)

    return write_clip(
        path, noise_planes(10), codec=codec, setup=setup, audio_tags={"language": "deu", "title": "Narration"}
    )


def upscale(src, dst, **encode):
    return upscale_video(
        src, dst, model="nearest", scale=2, device="cpu", encode=EncodeOptions(**encode), progress=False
    )


def facts(path):
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        first = next(c.decode(video))
        return {
            "timecode": tag(video.metadata, "timecode") or tag(c.metadata, "timecode"),
            "rotation": rotation_of(display_matrix(first)),
            "chapters": [(float(ch["start"] * ch["time_base"]), ch["metadata"].get("title")) for ch in c.chapters()],
            "title": tag(c.metadata, "title"),
            "video": (tag(video.metadata, "title"), tag(video.metadata, "language")),
            "audio": (tag(audio.metadata, "title"), tag(audio.metadata, "language")) if audio else None,
            "streams": sorted(s.type for s in c.streams),
            "field_order": video.codec_context.field_order,
        }


EXPECTED = {
    "timecode": "10:00:00:00",
    "rotation": 90,
    "chapters": [(0.0, "Leader"), (0.2, "Reel 1")],
    "title": "Harbour, 1974",
    "video": ("Telecine A", "fra"),
    "audio": ("Narration", "deu"),
}


@pytest.mark.parametrize(("src_suffix", "dst_suffix"), [(".mkv", ".mkv"), (".mkv", ".mp4"), (".mp4", ".mkv")])
def test_metadata_kept(tmp_path, src_suffix, dst_suffix):
    src = archival(tmp_path / f"in{src_suffix}", codec="ffv1" if src_suffix == ".mkv" else "libx264")
    dst = tmp_path / f"out{dst_suffix}"
    assert {k: facts(src)[k] for k in EXPECTED} == EXPECTED  # the clip itself is what the test says
    summary = upscale(src, dst)
    got = facts(dst)
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert not [w for w in summary.warnings if "cannot hold" in w or "dropping" in w], summary.warnings


def test_mp4_timecode_and_chapter_tracks_are_not_copied_twice(tmp_path):
    """MP4 keeps the timecode and the chapter names in tracks of their own, which FFmpeg shows as a data
    and a subtitle stream; the output rebuilds both from the metadata, so it has the same streams."""
    src = archival(tmp_path / "in.mp4", codec="libx264")
    dst = tmp_path / "out.mp4"
    summary = upscale(src, dst)
    assert facts(dst)["streams"] == facts(src)["streams"]
    assert len(facts(src)["streams"]) == 4  # video, audio, timecode, chapter names
    assert summary.warnings == []


def test_avi_drops_them_with_one_warning(tmp_path):
    src = archival(tmp_path / "in.mkv")
    summary = upscale(src, tmp_path / "out.avi")
    dropped = [w for w in summary.warnings if "cannot hold" in w]
    assert len(dropped) == 1, summary.warnings
    for item in ("timecode 10:00:00:00", "2 chapters", "rotation 90", "video language 'fra'"):
        assert item in dropped[0]


@pytest.mark.parametrize("order", [2, 3])  # AV_FIELD_TT, AV_FIELD_BB
def test_field_order_kept_when_not_deinterlaced(tmp_path, order):
    src = archival(tmp_path / "in.mkv", rotation=0, field_order=order)
    mkv = upscale(src, tmp_path / "out.mkv", deinterlace="off")
    assert facts(tmp_path / "out.mkv")["field_order"] == order
    assert not [w for w in mkv.warnings if "cannot hold" in w]
    mp4 = upscale(src, tmp_path / "out.mp4", deinterlace="off")  # MP4 has no field order
    dropped = [w for w in mp4.warnings if "cannot hold" in w]
    assert len(dropped) == 1 and f"field order {'tff' if order == 2 else 'bff'}" in dropped[0]


def test_probe_lists_the_metadata(tmp_path):
    src = archival(tmp_path / "in.mkv")
    result = CliRunner().invoke(cli, ["probe", str(src), "--json"])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)["metadata"]
    assert meta == {
        "timecode": "10:00:00:00",
        "rotation": 90,
        "chapters": 2,
        "title": "Harbour, 1974",
        "video_title": "Telecine A",
        "video_language": "fra",
        "field_order": "unknown",
    }


def test_per_language_housekeeping_tags_are_not_carried():
    """box.mp4 (VLC) has ``encoder`` and ``encoder-eng``: both describe the old encoding, so neither is
    carried, and no warning says the new MP4 could not hold it."""
    from conftest import data_path

    from vidsr.media.metadata import read

    src = data_path("video", "box.mp4")
    with av.open(str(src)) as c:
        assert "encoder-eng" in c.metadata
        kept = read(c, c.streams.video[0]).container
    # Not kept, so not compared with what the output holds: no "cannot hold ... encoder-eng" warning.
    assert not [k for k in kept if k.lower().startswith("encoder")], kept
