"""``vidsr batch``: discovery, manifest, resume, failure isolation, disk full, CLI messages.

Real clips are short stream-copied cuts of ../shared/data/video; bicubic and ``ultrafast`` keep the
CPU time low.  Segments, signals and Ray have their own test_batch_*.py files.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import av
import batch_hold
import pytest
from click.testing import CliRunner
from test_batch_support import clip, decoded, make_bad_files, real_clip_folder, records

from vidsr.batch import BatchOptions, UpscaleSettings, run_batch
from vidsr.batch.discover import discover, output_suffix
from vidsr.batch.manifest import Manifest
from vidsr.batch.options import RuntimeSettings
from vidsr.cli.main import cli
from vidsr.errors import InputError, VidsrError
from vidsr.media.sink import EncodeOptions, VideoSink

# The pixel format explicit, here and in options(): runs through the CLI and through the library
# must be the same settings (a manifest refuses others), whatever each one's default.
FAST = ["-m", "bicubic", "-s", "2", "--preset", "ultrafast", "--pix-fmt", "yuv420p", "--threads", "1"]


def options(out: Path, **kw) -> BatchOptions:
    return BatchOptions(
        out_dir=out,
        upscale=UpscaleSettings(
            "bicubic", 2, None, EncodeOptions(preset="ultrafast", crf=kw.pop("crf", None), pix_fmt="yuv420p")
        ),
        runtime=RuntimeSettings(device="cpu", threads=1),
        progress=False,
        **kw,
    )


def frame_times(path: Path) -> list:
    return [t for t, _ in decoded(path)]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Three real clips (cut short), a clip without a suffix, three bad files and a README."""
    root = tmp_path_factory.mktemp("archive") / "in"
    real_clip_folder(root)
    make_bad_files(root / "bad")
    clip(root / "old" / "untitled", frames=6, size=(48, 32))  # an .mp4 in content, no suffix
    (root / "README.txt").write_text("tapes digitised in 2009\n")
    return root


# -- the whole command on a folder ------------------------------------------------------------
def test_folder_good_and_bad_then_rerun(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(cli, ["batch", str(archive), "-o", str(out), *FAST, "--jobs", "2"])
    assert result.exit_code == 1, result.output
    bad = archive / "bad"
    assert result.stdout.splitlines()[-4:] == [
        "failures:",
        f"  bad/empty.mp4: {bad / 'empty.mp4'} is empty (0 bytes)",
        f"  bad/notes.mp4: cannot read {bad / 'notes.mp4'}: not a media file, or damaged "
        "(invalid data found when processing input)",
        f"  bad/sound.mp4: no video stream in {bad / 'sound.mp4'} (it holds audio)",
    ]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["files", "frames", "seconds"]
    assert re.fullmatch(r"done +4 +(\d+) +[\d.]+", lines[1]) and lines[2:4] == ["skipped       0", "failed        3"]
    frames_done = int(lines[1].split()[2])
    assert "Note: skipped README.txt: not a media file" in result.stderr

    # Good outputs: every frame, every timestamp of the input, at twice the size, audio kept.
    good = {
        # AVI keeps no timestamps (tree.avi's uneven ones would be lost): AVI inputs come out as MP4.
        "vtest.avi": "vtest.mp4",
        "old/tree.avi": "old/tree.mp4",
        "old/box.mp4": "old/box.mp4",
        "old/untitled": "old/untitled.mp4",
    }
    manifest = records(out)
    for src_rel, key in good.items():
        src, dst = archive / src_rel, out / key
        # box.mp4's packets carry decode-order times, so its raw decode is unsorted; vidsr shows them in order.
        assert frame_times(dst) == sorted(frame_times(src)), key
        with av.open(str(src)) as a, av.open(str(dst)) as b:
            assert b.streams.video[0].width == 2 * a.streams.video[0].width
            assert len(b.streams.audio) == len(a.streams.audio)
        r = manifest[key]
        assert (r["state"], r["frames_in"], r["frames_out"], r["attempts"]) == (
            "done",
            len(frame_times(src)),
            len(frame_times(src)),
            1,
        )
        assert r["output"] == str(dst) and r["error"] is None
    for name, reason in [("empty", "is empty (0 bytes)"), ("notes", "not a media file"), ("sound", "no video stream")]:
        r = manifest[f"bad/{name}.mp4"]
        assert r["state"] == "failed" and reason in r["error"] and r["attempts"] == 1
    assert frames_done == sum(manifest[k]["frames_out"] for k in good.values())
    assert not (out / "bad").exists()  # nothing that looks like a success, not even a folder
    assert not [p for p in out.rglob("*") if "partial" in p.name]

    # Rerun: finished files untouched (same inode and mtime), failed ones retried once (--retry 1).
    before = {k: (out / k).stat() for k in good.values()}
    again = runner.invoke(cli, ["batch", str(archive), "-o", str(out), *FAST, "--json"])
    assert again.exit_code == 1
    summary = json.loads(again.stdout)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (0, 4, 3)
    for k, st in before.items():
        now = (out / k).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert records(out)["bad/empty.mp4"]["attempts"] == 2

    # Third run: retries used up; the failure is still reported, the file not tried again.
    third = runner.invoke(cli, ["batch", str(archive), "-o", str(out), *FAST])
    assert third.exit_code == 1
    assert "Note: not retrying bad/empty.mp4: failed 2 times (--retry 1)" in third.stderr
    assert records(out)["bad/empty.mp4"]["attempts"] == 2
    assert f"  bad/empty.mp4: {bad / 'empty.mp4'} is empty (0 bytes)" in third.stdout


def test_done_output_that_changed_is_redone(tmp_path: Path) -> None:
    source = clip(tmp_path / "in" / "a.mp4", frames=4)
    out = tmp_path / "out"
    assert run_batch([str(source.parent)], options(out)).exit_code == 0
    (out / "a.mp4").write_bytes(b"damaged")
    report = run_batch([str(source.parent)], options(out))
    assert report.exit_code == 0 and report.count("done") == 1
    assert report.notes == ["redoing a.mp4: its output changed size"]
    assert len(frame_times(out / "a.mp4")) == 4


# -- discovery --------------------------------------------------------------------------------
def test_globs_lists_and_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "tapes"
    for rel in ["2001/a.mp4", "2001/b.webm", "2002/c.mp4", "2002/.hidden.mp4"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text("# wanted\ntapes/2002/c.mp4\n\ntapes/2001\n")
    monkeypatch.chdir(tmp_path)
    found = discover(["tapes/**/*.mp4"], tmp_path / "out")
    assert [j.key for j in found.jobs] == ["2001/a.mp4", "2002/c.mp4"]
    found = discover([f"@{listing}"], tmp_path / "out")
    # A named file goes to OUT/<name>; a folder's files keep their path below it.
    assert [j.key for j in found.jobs] == ["c.mp4", "a.mp4", "b.webm"]
    # WebM cannot hold H.264: asked for explicitly, it goes to Matroska.
    assert [j.key for j in discover([f"@{listing}"], tmp_path / "out", "libx264").jobs][-1] == "b.mkv"
    assert output_suffix(".webm", "libx264") == ".mkv" and output_suffix(".avi", "libx264") == ".mp4"
    assert output_suffix(".mov", "libx264") == ".mov" and output_suffix("", "libx264") == ".mp4"
    assert output_suffix(".webm", "libvpx-vp9") == ".webm" and output_suffix(".webm", None) == ".webm"
    with pytest.raises(InputError, match="no input files found"):
        discover(["tapes/**/*.mov"], tmp_path / "out")


def test_output_folder_inside_input_is_not_an_input(tmp_path: Path) -> None:
    clip(tmp_path / "a.mp4", frames=2)
    (tmp_path / "out").mkdir()
    clip(tmp_path / "out" / "a.mp4", frames=2)
    assert [j.key for j in discover([str(tmp_path)], tmp_path / "out").jobs] == ["a.mp4"]


def test_two_inputs_one_output_name_is_an_error_before_anything_runs(tmp_path: Path) -> None:
    for name in ["one/clip.mp4", "two/clip.mp4"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", str(tmp_path / "one/clip.mp4"), str(tmp_path / "two"), "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: two inputs map to one output name: {tmp_path / 'one/clip.mp4'} and {tmp_path / 'two/clip.mp4'} "
        f"would both be written to {out / 'clip.mp4'} (pass their parent folder instead, so the output tree keeps "
        "them apart)\n"
    )
    assert not (out / "vidsr-manifest.jsonl").exists()


# -- manifest ---------------------------------------------------------------------------------
def test_manifest_tolerates_a_torn_last_line_and_compacts(tmp_path: Path) -> None:
    path = tmp_path / "vidsr-manifest.jsonl"
    path.write_text('{"key": "a", "state": "pending"}\n{"key": "a", "state": "done"}\n{"key": "b", "sta')
    m = Manifest.open(path)
    assert m.get("a")["state"] == "done" and m.get("b") is None and m.torn == 1
    m.put({"key": "b", "state": "running"})
    m.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["key"], r["state"]) for r in lines] == [("a", "done"), ("b", "running")]


def test_running_record_of_a_dead_process_is_reclaimed(tmp_path: Path) -> None:
    source = clip(tmp_path / "in" / "a.mp4", frames=3)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    header = {"key": "#batch", "type": "batch", "settings": options(out).upscale.fingerprint()}
    stale = {
        "key": "a.mp4",
        "type": "file",
        "state": "running",
        "input": str(source),
        "output": str(out / "a.mp4"),
        "attempts": 1,
        "pid": dead.pid,
        "host": os.uname().nodename,
    }
    (out / "vidsr-manifest.jsonl").write_text(json.dumps(header) + "\n" + json.dumps(stale) + "\n")
    # What a killed writer leaves: a hidden partial file of the dead pid; never a final name.
    partial = out / f".a.vidsr-{dead.pid}.partial.mp4"
    partial.write_bytes(b"half")
    report = run_batch([str(source.parent)], options(out))
    assert report.exit_code == 0
    assert report.notes == [f"reclaimed a.mp4 from pid {dead.pid} on {os.uname().nodename}"]
    assert records(out)["a.mp4"]["state"] == "done" and records(out)["a.mp4"]["attempts"] == 2
    assert not partial.exists()


def test_other_settings_in_the_same_folder_are_refused(tmp_path: Path) -> None:
    source = clip(tmp_path / "a.mp4", frames=2)
    out = tmp_path / "out"
    out.mkdir()
    settings = {**options(out).upscale.fingerprint(), "scale": 4}
    (out / "vidsr-manifest.jsonl").write_text(json.dumps({"key": "#batch", "type": "batch", "settings": settings}))
    result = CliRunner().invoke(cli, ["batch", str(source), "-o", str(out), *FAST])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out} holds outputs made with other settings (scale 4 -> 2); "
        "use another output folder, or the same settings to resume\n"
    )


def test_every_encode_option_is_a_setting_and_older_manifests_still_resume(tmp_path: Path) -> None:
    """An encode option decides what the output looks like, so a rerun with another value must be
    refused, including options added to EncodeOptions after this test was written; a manifest written
    before an option existed was made with its default, and resumes."""
    import dataclasses

    upscale = options(tmp_path).upscale
    fingerprint = upscale.fingerprint()
    assert {f.name for f in dataclasses.fields(EncodeOptions)} <= set(fingerprint)
    source = clip(tmp_path / "a.mp4", frames=2)
    out = tmp_path / "out"
    out.mkdir()
    older = {k: v for k, v in fingerprint.items() if k != "extra"}  # as if "extra" came later
    (out / "vidsr-manifest.jsonl").write_text(json.dumps({"key": "#batch", "type": "batch", "settings": older}))
    assert run_batch([str(source)], options(out)).exit_code == 0
    other = dataclasses.replace(upscale.encode, extra=(("tune", "grain"),))
    with pytest.raises(VidsrError, match=r"other settings \(extra \[\] -> \[\['tune', 'grain'\]\]\)"):
        run_batch([str(source)], dataclasses.replace(options(out), upscale=dataclasses.replace(upscale, encode=other)))


def test_foreign_file_under_an_output_name_is_not_overwritten(tmp_path: Path) -> None:
    source = clip(tmp_path / "in" / "a.mp4", frames=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"someone's work")
    report = run_batch([str(source)], options(out))
    assert report.exit_code == 1
    assert report.failures[0].error == (
        f"{out / 'a.mp4'} already exists and is not in the manifest; remove it or use another output folder"
    )
    assert (out / "a.mp4").read_bytes() == b"someone's work"


# -- disk full --------------------------------------------------------------------------------
def test_disk_full_fails_that_file_only_and_leaves_no_partial(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "in"
    clip(folder / "a.mp4", frames=4)
    clip(folder / "b.mp4", frames=12, audio=True)
    clip(folder / "c.mp4", frames=4)
    original = VideoSink._mux
    written = {"n": 0}

    def full_disk(self, packets):
        # FFmpeg's write fails with ENOSPC part-way through b.mp4, as on a full disk.
        if self.final.name == "b.mp4":
            written["n"] += 1
            if written["n"] > 3:
                raise av.error.OSError(errno.ENOSPC, "No space left on device")
        return original(self, packets)

    monkeypatch.setattr(VideoSink, "_mux", full_disk)
    out = tmp_path / "out"
    report = run_batch([str(folder)], options(out))
    assert report.exit_code == 1
    assert [(f.key, f.state) for f in report.files] == [("a.mp4", "done"), ("b.mp4", "failed"), ("c.mp4", "done")]
    assert report.failures[0].error == f"cannot write to {out / 'b.mp4'}: no space left on device"
    assert records(out)["b.mp4"]["error"] == f"cannot write to {out / 'b.mp4'}: no space left on device"
    assert sorted(p.name for p in out.iterdir()) == [".vidsr-batch.lock", "a.mp4", "c.mp4", "vidsr-manifest.jsonl"]


def test_missing_ray_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    source = clip(tmp_path / "a.mp4", frames=2)
    result = CliRunner().invoke(cli, ["batch", str(source), "-o", str(tmp_path / "out"), *FAST, "--executor", "ray"])
    assert result.exit_code == 1
    assert result.stderr == "Error: --executor ray needs Ray: pip install 'vidsr[ray]'\n"


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VidsrError, match="--address needs --executor ray"):
        BatchOptions(out_dir=tmp_path, address="ray://head:10001")
    result = CliRunner().invoke(cli, ["batch", "x.mp4", "-o", str(tmp_path), "-m", "nosuchmodel"])
    assert result.exit_code == 2


# -- a worker that dies -----------------------------------------------------------------------
@pytest.mark.signals
@pytest.mark.parametrize(
    ("signum", "why"),
    [(signal.SIGKILL, "killed, maybe out of memory"), (signal.SIGSEGV, "crashed, maybe in a decoder")],
)
def test_a_file_that_kills_its_worker_fails_alone(tmp_path: Path, monkeypatch, signum, why) -> None:
    """b.mp4 kills the worker process running it, every time, mid-file (as the OOM killer or a crash
    in a decoder would): b.mp4 is tried once more, alone, then fails naming the signal; a and c,
    in flight beside it on the other worker, finish."""
    from vidsr.batch import worker
    from vidsr.batch.progress import BatchProgress

    folder = tmp_path / "in"
    for name in ("a.mp4", "c.mp4"):
        clip(folder / name, frames=12)
    clip(folder / "b.mp4", frames=60, size=(320, 240))
    # The kill is sent when the coordinator hears b start; on a starved machine b could be done by
    # then and the kill hit an idle worker.  Held at frame 30 until the kill, b cannot finish first.
    monkeypatch.setattr(worker, "process_main", batch_hold.entry("b.mp4", 30))
    left = {"n": 99}
    original = BatchProgress.on_event

    def on_event(self, event):
        name, kind, key, _ = event
        if kind == "start" and key == "b.mp4" and left["n"] > 0:
            left["n"] -= 1
            os.kill(int(name.removeprefix("w")), signum)
        original(self, event)

    monkeypatch.setattr(BatchProgress, "on_event", on_event)
    out = tmp_path / "out"
    report = run_batch([str(folder)], options(out, jobs=2))
    states = {f.key: (f.state, f.error) for f in report.files}
    assert states["a.mp4"] == states["c.mp4"] == ("done", None)
    assert states["b.mp4"] == (
        "failed",
        f"worker process died of {signal.Signals(signum).name} ({why}), twice while upscaling it",
    )
    assert records(out)["b.mp4"]["state"] == "failed" and left["n"] == 97
    for name in ("a.mp4", "c.mp4"):
        assert len(frame_times(out / name)) == 12


def test_workers_one_per_gpu_else_jobs_on_the_cpu(monkeypatch) -> None:
    from vidsr.batch import executors

    monkeypatch.setattr(executors, "gpu_count", lambda: 2)
    assert executors.plan_workers(None, "auto") == (2, ["cuda:0", "cuda:1"])
    assert executors.plan_workers(3, "cuda") == (3, ["cuda:0", "cuda:1", "cuda:0"])
    assert executors.plan_workers(None, "cuda:1") == (1, ["cuda:1"])
    assert executors.plan_workers(4, "cpu") == (4, [None] * 4)
    monkeypatch.setattr(executors, "gpu_count", lambda: 0)
    assert executors.plan_workers(None, "auto") == (1, [None])
