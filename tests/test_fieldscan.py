"""Field detection started early (vidsr.media.fieldscan): the same answer as detecting in place, used
by the source only where it fits, silent about bad files (the source says what is wrong), and started
by ``vidsr upscale`` before anything imports PyTorch (else it would overlap nothing)."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import pytest
from archival_clips import grey_chroma, moving_picture, weave, write_clip
from telecine_clips import film, telecine, write_ntsc

from vidsr.errors import InputError
from vidsr.media import interlace
from vidsr.media.fieldscan import FieldScan
from vidsr.media.source import VideoSource


def bff_clip(tmp_path):
    """Interlaced FFV1 that nothing flags: only idet, decoding the pictures, can tell."""
    pictures = [moving_picture(t) for t in range(16)]
    frames = [grey_chroma(weave(pictures[2 * k], pictures[2 * k + 1], "bff")) for k in range(8)]
    return write_clip(tmp_path / "bff.mkv", frames)


def in_place(path, mode="auto", field_rate=False):
    with av.open(str(path)) as container:
        return interlace.detect(path, container.streams.video[0], mode, field_rate)


def film_clip(tmp_path):
    """3:2 pulldown: idet, then the cadence scan."""
    return write_ntsc(tmp_path / "film.mkv", telecine(film(40), "tff"), "tff")


@pytest.mark.parametrize("make", [bff_clip, film_clip])
def test_early_scan_finds_what_detecting_in_place_finds(tmp_path, make):
    path = make(tmp_path)
    expected = in_place(path)
    assert expected.detected != "progressive"  # the clip is worth scanning
    assert FieldScan(path, "auto").result(0, "auto", False) == expected


def test_early_answer_only_for_the_question_it_was_asked(tmp_path):
    path = bff_clip(tmp_path)
    scan = FieldScan(path, "auto")
    assert scan.result(0, "on", False) is None
    assert scan.result(0, "auto", True) is None
    assert scan.result(1, "auto", False) is None
    assert scan.result(0, "auto", False) is not None


def test_source_takes_the_early_answer_instead_of_detecting(tmp_path, monkeypatch):
    path = bff_clip(tmp_path)
    scan = FieldScan(path, "auto")
    expected = scan.result(0, "auto", False)

    def detect_again(*args, **kwargs):
        raise AssertionError("the source detected again")

    monkeypatch.setattr(interlace, "detect", detect_again)
    with VideoSource(path, deinterlace="auto", fields=scan) as source:
        assert source.interlace == expected
        assert source.interlace.deinterlace


def test_a_bad_file_leaves_the_error_to_the_source(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all " * 64)
    scan = FieldScan(bad, "auto")
    assert scan.result(0, "auto", False) is None  # no exception from the scan's thread
    with pytest.raises(InputError, match="cannot read"):
        VideoSource(bad, deinterlace="auto", fields=scan)


CLI_ORDER = """
import json, sys
import vidsr.media.fieldscan as fieldscan
from vidsr.cli import cli

torch_at_scan = []
start = fieldscan.FieldScan.__init__

def noted(self, *args, **kwargs):
    torch_at_scan.append("torch" in sys.modules)
    start(self, *args, **kwargs)

fieldscan.FieldScan.__init__ = noted
cli.main(sys.argv[1:], standalone_mode=False)
print(json.dumps(torch_at_scan))
"""


def test_upscale_starts_the_scan_before_pytorch_loads(tmp_path):
    """The scan overlaps PyTorch's import only if nothing the CLI runs first (option parsing, the
    encoder options, --quiet's encoder log) imports it."""
    src = bff_clip(tmp_path)
    args = ["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "-m", "nearest", "-s", "2", "--device", "cpu", "-q"]
    run = subprocess.run([sys.executable, "-c", CLI_ORDER, *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [False]
    assert (tmp_path / "out.mkv").stat().st_size > 0
