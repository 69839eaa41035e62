"""The CLI through click's CliRunner: exact messages, exit codes, nothing left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import data_path, decoded, make_clip

from vidsr.cli import cli
from vidsr.models.weights import save_weights

FAST = ["--preset", "ultrafast", "-q"]


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("these are notes, not a video\n")
    clip = make_clip(tmp_path / "whole.mkv", frames=60, codec="mpeg4")
    (tmp_path / "cut.mkv").write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    audio = tmp_path / "voice.m4a"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    # A real AVI whose video codec tag FFmpeg has no decoder for.
    unknown = tmp_path / "unknown.avi"
    raw = make_clip(tmp_path / "src.avi", frames=5, codec="mpeg4").read_bytes()
    unknown.write_bytes(raw.replace(b"FMP4", b"QQQQ"))
    return {
        "missing": tmp_path / "nope.mp4",
        "folder": tmp_path / "folder",
        "empty": tmp_path / "empty.mp4",
        "notes": tmp_path / "notes.mp4",
        "truncated": tmp_path / "cut.mkv",
        "audio": audio,
        "unknown": unknown,
    }


EXPECTED = {
    "missing": "Error: {path}: no such file",
    "folder": "Error: {path} is a directory, not a media file",
    "empty": "Error: {path} is empty (0 bytes)",
    "notes": "Error: cannot read {path}: not a media file, or damaged (invalid data found when processing input)",
    "truncated": "Error: {path} is truncated: its video stops at",
    "audio": "Error: no video stream in {path} (it holds audio)",
    "unknown": "Error: cannot decode {path}: no decoder for its video codec",
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_bad_input_one_line_error_no_traceback_nothing_written(bad_inputs, tmp_path, kind):
    path = bad_inputs[kind]
    out = tmp_path / "out.mp4"
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("upscale", path, "-o", out, "-m", "bicubic", "-s", "2", *FAST)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(EXPECTED[kind].format(path=path))
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_debug_shows_the_traceback(bad_inputs):
    with pytest.raises(Exception, match="no such file"):
        CliRunner().invoke(cli, ["upscale", str(bad_inputs["missing"]), "--debug"], catch_exceptions=False)


def test_unwritable_output_location(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    result = invoke("upscale", src, "-o", tmp_path / "no" / "such" / "dir.mp4", "-m", "bicubic", *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: cannot write to {tmp_path / 'no' / 'such' / 'dir.mp4'}: folder {tmp_path / 'no' / 'such'} "
        "does not exist"
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's procfs: a folder that takes no new files")
def test_output_folder_that_takes_no_files(tmp_path):
    # os.access says yes to root everywhere; vidsr creates its temporary file to find out, before decoding.
    src = make_clip(tmp_path / "in.mp4", frames=3)
    result = invoke("upscale", src, "-o", "/proc/vidsr-out.mp4", "-m", "bicubic", *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: cannot write to /proc/vidsr-out.mp4: folder /proc does not take new files"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_existing_output_needs_overwrite(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / "in.x2.mp4"
    out.write_bytes(b"keep me")
    result = invoke("upscale", src, "-m", "bicubic", "-s", "2", *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {out} already exists (to replace it: --overwrite, or overwrite=True from Python)"
    )
    assert out.read_bytes() == b"keep me"
    assert invoke("upscale", src, "-m", "bicubic", "-s", "2", "--overwrite", *FAST).exit_code == 0
    assert len(decoded(out)) == 3


def test_upscale_json_summary_and_default_name(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", frames=6, audio=True)
    result = invoke("upscale", src, "-m", "lanczos", "-s", "3", "--json", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["output"] == str(tmp_path / "clip.x3.mp4")
    assert summary["frames_in"] == summary["frames_out"] == 6
    assert (summary["width"], summary["height"]) == (192, 144)
    assert summary["backend"] == "torch-cpu"


def test_learned_model_without_weights_refuses(tmp_path, monkeypatch):
    from vidsr.models import weights as weights_module

    monkeypatch.setattr(weights_module, "SHIPPED_DIR", tmp_path / "none")
    src = make_clip(tmp_path / "clip.mp4", frames=2)
    result = invoke("upscale", src, "-m", "srgan", "-s", "4", *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: trained weights for srgan x4 do not ship (shipped sets: none); train them with "
        "`vidsr train --model srgan --scale 4 --init SRRESNET.safetensors "
        "--data ../shared/data/train --val ../shared/data/val` and pass --weights FILE"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_user_weights_checked_against_architecture(tmp_path):
    wrong = tmp_path / "espcn_x3.safetensors"
    from vidsr.models.espcn import espcn

    save_weights(espcn(scale=3), wrong, {"architecture": "espcn", "scale": 3})
    src = make_clip(tmp_path / "clip.mp4", frames=2)
    result = invoke("upscale", src, "-m", "espcn", "-s", "2", "--weights", wrong, *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: weights {wrong} are for espcn x3, not espcn x2"
    untagged = tmp_path / "untagged.safetensors"
    save_weights(espcn(scale=3), untagged, {})
    result = invoke("upscale", src, "-m", "espcn", "-s", "2", "--weights", untagged, *FAST)
    assert result.stderr.startswith(f"Error: weights {untagged} do not fit espcn x2: tensors 2 of the wrong shape")


def test_espcn_with_user_weights_on_real_cctv(tmp_path):
    """The issue's acceptance run, on the first second of vtest.avi (MS-MPEG4 CCTV)."""
    from conftest import cut_clip

    from vidsr.models.espcn import espcn

    weights = tmp_path / "w.safetensors"
    save_weights(espcn(scale=2), weights, {"architecture": "espcn", "scale": 2})
    src = cut_clip(data_path("video", "vtest.avi"), tmp_path / "vtest.avi", seconds=1)
    result = invoke("upscale", src, "-m", "espcn", "-s", "2", "--weights", weights, "--json", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    frames = decoded(Path(summary["output"]))
    assert len(frames) == summary["frames_in"] == len(decoded(src))
    assert (frames[0].width, frames[0].height) == (1536, 1152)


def test_still_image(tmp_path):
    from PIL import Image

    src = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(src)
    result = invoke("upscale", src, "-m", "bicubic", "-s", "4", "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "photo.x4.png").size == (120, 80)


def test_models_lists_every_model_and_scale():
    result = invoke("models", "--json")
    rows = json.loads(result.stdout)
    names = {(r["model"], r["scale"]) for r in rows}
    assert {("espcn", 2), ("srresnet", 4), ("srgan", 4), ("bicubic", 3), ("nearest", 2)} <= names
    colours = {r["model"]: r["colour"] for r in rows}
    assert colours["espcn"] == "Y" and colours["srresnet"] == "RGB"
    srgan = next(r for r in rows if r["model"] == "srgan" and r["scale"] == 2)  # x2 is not trained
    assert srgan["weights"] == "none" and "--init SRRESNET.safetensors" in srgan["needs"]
    int8 = {(r["model"], r["scale"], r["weights"]) for r in rows if r.get("int8")}
    assert int8 == {("espcn", 2, "robust"), ("espcn", 3, "robust"), ("espcn", 4, "robust")}  # calibrated sets
    text = invoke("models").stdout
    assert "interpolation baseline" in text
    assert text.count("; int8 on the CPU") == 3


def test_probe_reports_vfr_colour_and_counts():
    result = invoke("probe", data_path("video", "box.mp4"), "--json", "--count")
    info = json.loads(result.stdout)
    assert info["frames"] == 455
    assert info["variable_frame_rate"] is True
    assert info["width"] == 640 and info["video_codec"] == "h264"
    assert [s["type"] for s in info["streams"]] == ["audio", "video"]
    tree = json.loads(invoke("probe", data_path("video", "tree.avi"), "--json").stdout)
    assert (tree["frames"], tree["frames_header"]) == (68, 444)
    vtest = invoke("probe", data_path("video", "vtest.avi")).stdout
    assert "msmpeg4 768x576 yuv420p, 795 frames (counted from packets; --count decodes them, exact)" in vtest
    box = invoke("probe", data_path("video", "box.mp4")).stdout
    assert "456 frames (counted from packets; --count decodes them, exact)" in box
    assert "455 frames (decoded)" in invoke("probe", data_path("video", "box.mp4"), "--count").stdout


def test_probe_warns_of_a_truncated_file(tmp_path):
    """AVI declares its frame count in the header: a copy cut short still says 50."""
    src = make_clip(tmp_path / "whole.avi", frames=50, codec="mpeg4")
    cut = tmp_path / "cut.avi"
    whole = src.read_bytes()
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    result = CliRunner().invoke(cli, ["probe", str(cut)])
    assert result.exit_code == 0
    assert f"Warning: {cut} is truncated: its video stops at" in result.stderr
    assert "truncated" not in CliRunner().invoke(cli, ["probe", str(src)]).stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("out.xyz", "cannot write {out}: unknown container format '.xyz'; use one of .mp4, .mkv, .mov, .avi, .webm"),
        ("out", "cannot write {out}: no extension to choose a container by; name it e.g. {out}.mp4"),
        ("out.png", "cannot write {out}: a video cannot be written as an image; use .mp4, .mkv or .avi"),
    ],
)
def test_video_output_names_that_cannot_work(tmp_path, name, message):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / name
    result = invoke("upscale", src, "-o", out, "-m", "bicubic", "-s", "2", *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: " + message.format(out=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize("name", ["x.mp4", "x.xyz"])
def test_image_input_needs_an_image_output(tmp_path, name):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    out = tmp_path / name
    result = invoke("upscale", src, "-o", out, "-m", "bicubic", "-s", "2", "-q")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: cannot write {out}: an image input gives an image; use one of "
        ".bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp"
    )


def test_stale_partial_of_a_killed_run_is_removed(tmp_path):
    """A run killed outright (SIGKILL, power cut) leaves its hidden partial file: the next run for
    the same output removes it, and says so; one of a live process is left, and reported."""
    import subprocess
    import sys

    src = make_clip(tmp_path / "in.mp4", frames=3)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".in.x2.vidsr-{int(dead.stdout)}.partial.mp4"
    stale.write_bytes(b"half a video")
    live = tmp_path / f".in.x2.vidsr-{os.getppid()}.partial.mp4"
    live.write_bytes(b"being written")
    result = invoke("upscale", src, "-m", "bicubic", "-s", "2", *FAST)
    assert result.exit_code == 0
    assert not stale.exists() and live.exists()
    assert f"Warning: removed {stale.name}, a partial output left by a killed run" in result.stderr
    assert f"{live.name} beside the output belongs to a running process" in result.stderr
    assert len(decoded(tmp_path / "in.x2.mp4")) == 3


def test_sigterm_in_upscale_removes_the_partial_and_exits_143(tmp_path):
    """SIGTERM (kill, a service manager, a CI timeout) stops like Ctrl-C: no file under the final
    name, no partial file beside it, exit code 128 + 15.  The encoder is made to wait for the
    signal, so it surely lands mid-file."""
    import signal
    import subprocess
    import sys
    import time

    src = make_clip(tmp_path / "in.mp4", frames=30)
    started = tmp_path / "writing"
    code = (
        "import time; from pathlib import Path; from vidsr.media import sink; original = sink.VideoSink.write_frame\n"
        "def slow(self, planes, pts):\n"
        f"    Path({str(started)!r}).touch(); time.sleep(0.5); original(self, planes, pts)\n"
        "sink.VideoSink.write_frame = slow\n"
        "from vidsr.cli import main; main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "upscale", str(src), "-m", "bicubic", "-s", "2", *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not started.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "upscale never started writing"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "Error: interrupted by SIGTERM"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "writing"]


def test_quiet_silences_the_x265_banner(tmp_path):
    import subprocess
    import sys

    src = make_clip(tmp_path / "in.mp4", frames=3)
    cli_main = "from vidsr.cli import main; main()"
    args = [sys.executable, "-c", cli_main, "upscale", str(src), "-m", "bicubic", "-s", "2", "--codec", "libx265"]
    quiet = subprocess.run([*args, "-q", "-o", str(tmp_path / "q.mp4")], capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    assert "x265 [info]" not in quiet.stderr and quiet.stderr == ""
    loud = subprocess.run([*args, "-o", str(tmp_path / "l.mp4")], capture_output=True, text=True)
    assert "x265 [info]" in loud.stderr  # the reference: without -q the banner is there


def test_gpu_backend_without_a_gpu_names_what_was_asked(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    src = make_clip(tmp_path / "in.mp4", frames=3)
    result = invoke("upscale", src, "-m", "bicubic", "-s", "2", "--backend", "torch-cuda", *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: --backend torch-cuda needs a CUDA GPU, but PyTorch finds none here"
    result = invoke("upscale", src, "-m", "bicubic", "-s", "2", "--device", "cuda", *FAST)
    assert result.stderr.strip() == "Error: --device cuda needs a CUDA GPU, but PyTorch finds none here"
