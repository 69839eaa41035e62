"""What PyAV 19 changed (Python 3.12+ gets it, 3.11 keeps 18): tags that are not UTF-8, rationals
that are ``av.AVRational`` and never None, streams freed with their container.  Every test here runs
on whichever PyAV is installed; CI runs the suite on both (see the Makefile's ``test``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest
from click.testing import CliRunner
from conftest import make_clip

from vidsr.cli import cli
from vidsr.media.pyav import PYAV_MAJOR, fraction, open_container, text
from vidsr.media.source import VideoSource

TITLE = "Архив 1987"  # stored in cp1251, as an old Windows tool would have written it
STORED = TITLE.encode("cp1251")


def _tagged_clip(path: Path) -> Path:
    """A clip whose container and video titles are cp1251 bytes, not UTF-8."""
    src = make_clip(path.with_name("plain.mkv"), frames=6)
    if PYAV_MAJOR < 19:
        options, value = {"metadata_encoding": "cp1251"}, TITLE
    else:  # 19 writes a surrogate-escaped string back as the bytes it stands for
        options, value = {}, STORED.decode("utf-8", "surrogateescape")
    with av.open(str(src)) as inp, av.open(str(path), "w", **options) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        out.metadata["title"] = value
        stream.metadata["title"] = value
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    assert STORED in path.read_bytes()
    return path


def test_open_container_reads_a_file_with_non_utf8_tags(tmp_path):
    clip = _tagged_clip(tmp_path / "tagged.mkv")
    with open_container(clip) as container:
        assert text(container.metadata["title"]) == TITLE.encode("cp1251").decode("utf-8", "replace")


def test_probe_of_non_utf8_tags_prints_on_a_strict_utf8_stdout(tmp_path):
    """A strict UTF-8 stdout (not the C locale's surrogateescape) must take what probe prints."""
    clip = _tagged_clip(tmp_path / "tagged.mkv")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    shown = {}
    for extra in ([], ["--json"]):
        done = subprocess.run(
            [sys.executable, "-c", "from vidsr.cli import main; main()", "probe", str(clip), *extra],
            capture_output=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
        shown[bool(extra)] = done.stdout.decode("utf-8")  # strict: no lone surrogates
    assert STORED.decode("utf-8", "replace") in shown[False]
    info = json.loads(shown[True])
    assert info["metadata"]["title"] == info["metadata"]["video_title"] == STORED.decode("utf-8", "replace")


def test_upscale_carries_non_utf8_tags_as_pyav_reads_them(tmp_path):
    clip = _tagged_clip(tmp_path / "tagged.mkv")
    out = tmp_path / "tagged.x2.mkv"
    result = CliRunner().invoke(cli, ["upscale", str(clip), "-m", "bicubic", "-s", "2", "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    with open_container(clip) as a, open_container(out) as b:
        assert b.metadata["title"] == a.metadata["title"]
        assert b.streams.video[0].metadata["title"] == a.streams.video[0].metadata["title"]
    if PYAV_MAJOR >= 19:  # byte exact: the archive's own bytes, not replacement characters
        assert STORED in out.read_bytes()


def test_mpeg4_into_mkv_from_a_90khz_clock(tmp_path):
    """MPEG-4 Part 2 caps its clock at 16 bits; a 1/90000 input clock is narrowed (a Fraction
    method, which PyAV 19's AVRational lacks)."""
    src = make_clip(tmp_path / "clip.ts", frames=10)
    with av.open(str(src)) as c:
        assert fraction(c.streams.video[0].time_base) == Fraction(1, 90000)
    out = tmp_path / "clip.x2.mkv"
    args = ["upscale", str(src), "-m", "bicubic", "-s", "2", "-o", str(out), "--codec", "mpeg4", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"
        assert sum(1 for _ in c.decode(video=0)) == 10


def test_fraction_of_pyav_rationals():
    assert fraction(None) is None
    assert fraction(Fraction(0)) is None
    assert fraction(Fraction(1, 25)) == Fraction(1, 25)
    if hasattr(av, "AVRational"):  # PyAV 19: unset is a falsy 0/1, set is not a Fraction
        assert fraction(av.AVRational(0, 1)) is None
        got = fraction(av.AVRational(1001, 30000))
        assert type(got) is Fraction and got == Fraction(1001, 30000)


def test_a_closed_source_still_knows_its_clock(tmp_path):
    """PyAV 19 frees a closed container's streams: the source reads its facts while open."""
    clip = make_clip(tmp_path / "c.mp4", frames=5)
    with VideoSource(clip) as source:
        time_base, rate, estimate = source.time_base, source.frame_rate, source.frames_estimate
    assert (source.time_base, source.frame_rate, source.frames_estimate) == (time_base, rate, estimate)
    assert rate == 25 and estimate == 5


@pytest.mark.parametrize("value", ["plain", "caf\u00e9", "\udcc0\udce0 raw", "\ud800 lone"])
def test_text_is_always_strict_utf8(value):
    shown = text(value)
    shown.encode("utf-8")  # would raise on a surrogate
    if value.isascii() or value == "caf\u00e9":
        assert shown == value
