"""``vidsr batch`` over archives that mix progressive, interlaced and telecined files: the report and the
manifest say per file what was found and done (frames and rates in and out), and a telecined file cut
into pieces (on its cadence) comes out exactly as one pass gives it."""

from __future__ import annotations

import json

import av
import pytest
from archival_clips import grey_chroma, nearest_batch, read_planes
from click.testing import CliRunner
from telecine_clips import film, telecine, video_rate, write_ntsc

from vidsr.batch import segments
from vidsr.cli import cli
from vidsr.media import cadence
from vidsr.media.interlace import CADENCE_TAG, VERDICT_TAG
from vidsr.media.sink import EncodeOptions
from vidsr.video import upscale_video

ENCODE = EncodeOptions(codec="ffv1")


def batch(inputs, out, seconds: float | None = None):
    return nearest_batch(inputs, out, ENCODE, seconds)


@pytest.fixture
def archive(tmp_path):
    """A folder as tapes come back from transfer: a progressive file, a video-rate (interlaced) one, and
    film with 3:2 pulldown."""
    folder = tmp_path / "tapes"
    folder.mkdir()
    write_ntsc(folder / "digital.mkv", [grey_chroma(p) for p in film(20)], None)
    write_ntsc(folder / "camera.mkv", video_rate(20, "tff"), "tff")
    write_ntsc(folder / "reel.mkv", telecine(film(40), "bff"), "bff")
    return folder


EXPECTED = {
    "digital.mkv": ("progressive", 20, 20, 29.97, 29.97),
    "camera.mkv": ("interlaced tff", 20, 20, 29.97, 29.97),
    "reel.mkv": ("telecined bff", 50, 40, 29.97, 23.976),
}


def test_report_and_manifest_say_each_files_verdict_and_rates(archive, tmp_path):
    out = tmp_path / "out"
    report = batch([archive], out)
    assert report.exit_code == 0, report.files
    got = {
        f.key: (f.fields["verdict"], f.frames_in, f.frames_out, f.fields["frame_rate_in"], f.fields["frame_rate_out"])
        for f in report.files
    }
    assert got == EXPECTED
    reel = next(f for f in report.files if f.key == "reel.mkv")
    assert reel.fields["done"].startswith("inverse telecine bff (fieldmatch + decimate)")
    records = {}
    for line in (out / "vidsr-manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "file":
            records[record["key"]] = record
    for key, (verdict, frames_in, frames_out, rate_in, rate_out) in EXPECTED.items():
        r = records[key]
        assert (r["state"], r["frames_in"], r["frames_out"]) == ("done", frames_in, frames_out)
        assert (r["fields"]["verdict"], r["fields"]["frame_rate_in"], r["fields"]["frame_rate_out"]) == (
            verdict,
            rate_in,
            rate_out,
        )
    # the summary's one line for the archivist; a rerun (everything skipped) says the same, from the manifest
    args = ["batch", str(archive), "-o", str(out), "-m", "nearest", "-s", "2", "--device", "cpu", "--codec", "ffv1"]
    result = CliRunner().invoke(cli, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "fields: 1 interlaced tff, 1 progressive, 1 telecined bff (29.97 -> 23.976 fps)" in result.stdout
    result = CliRunner().invoke(cli, [*args, "--quiet", "--json"])
    files = {f["key"]: f for f in json.loads(result.stdout)["files"]}
    assert {k: (f["state"], f["fields"]["verdict"]) for k, f in files.items()} == {
        k: ("skipped", v[0]) for k, v in EXPECTED.items()
    }


def film_mid_cycle(tmp_path):
    """Film whose transfer starts mid-cycle (its cycles begin at frame 2), all-intra FFV1: cuts anywhere."""
    frames = telecine(film(64), "tff")[3:]
    return write_ntsc(tmp_path / "reel.mkv", frames, "tff"), len(frames)


def test_a_telecined_file_is_cut_on_its_cadence(tmp_path):
    src, count = film_mid_cycle(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    plan = segments.plan(src, work, 0.42)
    assert plan.fields is not None and plan.fields.ivtc and plan.fields.telecine.cycle_start == 2
    firsts = [s.first_frame for s in plan.segments]
    assert len(firsts) > 2 and firsts[0] == 0 and all(f % 5 == 2 for f in firsts[1:]), firsts
    scanned = cadence.scan(src, 0)
    for f in firsts[1:]:  # between two whole film frames
        assert not any(x.matched or x.combed for x in scanned.frames[f - 1 : f + 1])
    segments.split(src, plan)
    with av.open(str(plan.segments[0].source)) as c:
        tags = c.streams.video[0].metadata
        assert tags[VERDICT_TAG] == "tff" and tags[CADENCE_TAG] == "cycle_start=2 rate=30000/1001"
    with av.open(str(plan.segments[1].source)) as c:
        assert c.streams.video[0].metadata[CADENCE_TAG] == "cycle_start=0 rate=30000/1001"
    assert sum(s.packets for s in plan.segments) == count


def test_segmented_run_of_a_telecined_file_equals_one_pass(tmp_path):
    src, count = film_mid_cycle(tmp_path)
    whole = upscale_video(
        src, tmp_path / "one.mkv", model="nearest", scale=2, device="cpu", encode=ENCODE, progress=False
    )
    report = batch([src], tmp_path / "out", seconds=0.42)
    assert report.exit_code == 0, report.files
    (outcome,) = report.files
    assert outcome.segments and outcome.segments > 2
    assert (outcome.frames_in, outcome.frames_out) == (count, whole.frames_out)
    assert outcome.fields["verdict"] == "telecined tff" and outcome.fields["frame_rate_out"] == 23.976
    one, pieces = read_planes(tmp_path / "one.mkv"), read_planes(tmp_path / "out" / "reel.mkv")
    assert [t for t, _ in pieces] == [t for t, _ in one]
    for k, ((_, a), (_, b)) in enumerate(zip(one, pieces, strict=True)):
        assert all((pa == pb).all() for pa, pb in zip(a, b, strict=True)), k
    with av.open(str(tmp_path / "out" / "reel.mkv")) as c:
        video = c.streams.video[0]
        assert video.codec_context.field_order == 1
        assert VERDICT_TAG not in video.metadata and CADENCE_TAG not in video.metadata
