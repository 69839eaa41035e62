"""Where the time goes (vidsr.stages), host buffers reused (vidsr.hostbuffers), and the pipeline's
deferred results: a batch whose copy to host memory is still running is waited for by the encode
thread, in order, with only a few batches in flight."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_clip

from vidsr.backends import BackendOptions
from vidsr.backends.torch_cuda import INDUCTOR_CACHE_ENV, compile_cache_dir, prepare_module
from vidsr.cli import cli
from vidsr.hostbuffers import BufferPool, HostBatch
from vidsr.media.source import DecodedFrame
from vidsr.models import LoadedModel, get_spec
from vidsr.pipeline import Pipeline
from vidsr.stages import STAGES, StageClock, process_started
from vidsr.upscaler import Upscaler
from vidsr.video import upscale_video


def test_clock_splits_startup_from_the_steady_state():
    clock = StageClock(started=time.perf_counter(), batch=2)
    time.sleep(0.05)
    for _ in range(6):
        clock.frame_written()
        time.sleep(0.01)
    clock.finish()
    assert clock.startup_s is not None and clock.startup_s >= 0.05
    assert clock.first_frame_at is not None and clock.steady_from is not None
    assert clock.steady_from > clock.first_frame_at
    # 4 frames after the first batch, about 10 ms apart
    assert 0 < clock.steady_fps < 4 / 0.04 + 1


def test_clock_without_a_second_batch_has_no_steady_rate():
    clock = StageClock(batch=8)
    for _ in range(5):
        clock.frame_written()
    clock.finish()
    assert clock.steady_fps is None and clock.startup_s is not None


def test_stage_seconds_add_up_per_stage():
    clock = StageClock()
    for _ in range(3):
        with clock.stage("encode"):
            time.sleep(0.01)
    report = clock.report()
    assert set(report) == set(STAGES)
    assert report["encode"] >= 0.03 and report["decode"] == 0.0


def test_process_start_is_before_now():
    started = process_started()
    assert 0 <= time.perf_counter() - started < 24 * 3600


class Done:
    def __init__(self, done: bool) -> None:
        self.done = done

    def query(self) -> bool:
        return self.done


def test_pool_reuses_a_buffer_once_its_copy_has_run():
    pool = BufferPool(pin=False)
    a = pool.take((2, 4, 4), torch.uint8)
    pending = Done(False)
    pool.give(a, after=pending)
    b = pool.take((2, 4, 4), torch.uint8)
    assert b is not a and pool.allocated == 2  # a's copy still runs
    pending.done = True
    assert pool.take((2, 4, 4), torch.uint8) is a
    pool.give(b)
    assert pool.take((2, 4, 4), torch.int16) is not b  # another dtype is another buffer
    assert pool.take((2, 4, 4), torch.uint8) is b and pool.allocated == 3


def test_host_batch_on_the_cpu_is_the_planes_as_frames():
    y, cb, cr = torch.arange(32, dtype=torch.uint8).reshape(2, 4, 4), torch.zeros(2, 2, 2), torch.ones(2, 2, 2)
    frames = HostBatch((y, cb, cr)).frames()
    assert len(frames) == 2 and np.array_equal(frames[1][0], y[1].numpy())


class SlowCopy:
    """A batch result whose host copy finishes only later: what a GPU's download looks like."""

    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def __init__(self, frames: list[DecodedFrame]) -> None:
        self.planes = [f.planes for f in frames]
        self.released = False
        with SlowCopy.lock:
            SlowCopy.in_flight += 1
            SlowCopy.most_in_flight = max(SlowCopy.most_in_flight, SlowCopy.in_flight)

    def frames(self):
        time.sleep(0.02)  # the copy, waited for by the encode thread
        return self.planes

    def release(self) -> None:
        self.released = True
        with SlowCopy.lock:
            SlowCopy.in_flight -= 1


def test_pipeline_waits_for_deferred_results_in_order_with_few_in_flight():
    frames = [DecodedFrame(i, 10 * i, (np.full((2, 2), i, np.uint8),) * 3) for i in range(40)]
    written: list[tuple[int, int]] = []
    results: list[SlowCopy] = []
    SlowCopy.in_flight = SlowCopy.most_in_flight = 0

    def process(batch):
        results.append(SlowCopy(batch))
        return results[-1]

    clock = StageClock(batch=4)
    Pipeline(
        iter(frames),
        process,
        lambda planes, pts: written.append((int(planes[0][0, 0]), pts)),
        lambda packet: None,
        batch_size=4,
        queue_frames=8,
        clock=clock,
    ).run()
    assert written == [(i, 10 * i) for i in range(40)]
    assert all(r.released for r in results) and len(results) == 10
    assert SlowCopy.most_in_flight <= 2  # queue_frames // batch_size batches hold buffers at once
    assert clock.seconds["download"] >= 10 * 0.02 * 0.9
    assert clock.frames == 40 and clock.steady_fps is not None


def test_a_result_with_too_few_frames_fails_the_run():
    frames = [DecodedFrame(i, i, (np.zeros((2, 2), np.uint8),) * 3) for i in range(4)]
    with pytest.raises(RuntimeError, match="model returned 1 frames for 2"):
        Pipeline(iter(frames), lambda batch: [batch[0].planes], lambda p, t: None, lambda p: None, batch_size=2).run()


def test_summary_reports_startup_steady_rate_and_stages(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=12)
    began = time.perf_counter()
    summary = upscale_video(clip, tmp_path / "out.mp4", model="bicubic", scale=2, progress=False, batch_size=2)
    assert summary.startup_s is not None and 0 < summary.startup_s <= time.perf_counter() - began
    assert summary.steady_fps is not None and summary.steady_fps > 0
    stages = summary.stage_seconds
    assert set(stages) == set(STAGES) and all(v >= 0 for v in stages.values())
    assert stages["encode"] > 0 and stages["decode"] > 0 and stages["model"] > 0
    phases = summary.startup_phases
    assert list(phases) == ["input open", "first frame"]
    assert sum(phases.values()) == pytest.approx(summary.startup_s, abs=0.005)


def test_cli_json_counts_startup_from_the_process_start(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=6)
    args = ["upscale", str(clip), "-m", "bicubic", "-s", "2", "-o", str(tmp_path / "o.mp4"), "--json", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # In-process (CliRunner), the "process start" is pytest's: far earlier than the run itself.
    assert data["startup_s"] > data["seconds"] and set(data["stage_seconds"]) == set(STAGES)
    assert list(data["startup_phases"]) == ["model ready", "input open", "first frame"]


def test_compile_is_asked_for_not_the_default():
    assert BackendOptions().compile is False
    assert Upscaler("bicubic", 2, device="cpu").options.compile is False


def test_compiled_code_is_cached_beside_the_engines(monkeypatch, tmp_path):
    monkeypatch.delenv(INDUCTOR_CACHE_ENV, raising=False)
    monkeypatch.setattr(torch, "compile", lambda module, **kw: module)
    loaded = LoadedModel(get_spec("espcn"), 2, torch.nn.Identity())
    prepare_module(loaded, compile=True, engine_dir=tmp_path)
    assert os.environ[INDUCTOR_CACHE_ENV] == str(tmp_path / "inductor") == str(compile_cache_dir(tmp_path))
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, "/elsewhere")  # an explicit cache dir wins
    prepare_module(loaded, compile=True, engine_dir=tmp_path)
    assert os.environ[INDUCTOR_CACHE_ENV] == "/elsewhere"


def test_hwdec_auto_decodes_in_software_when_the_model_runs_on_the_cpu(tmp_path, monkeypatch):
    import vidsr.video as video

    asked = []
    monkeypatch.setattr(video, "decode_hwaccel", lambda hwdec: asked.append(hwdec))
    clip = make_clip(tmp_path / "c.mp4", frames=3)
    upscale_video(clip, tmp_path / "o.mp4", model="bicubic", scale=2, progress=False, hwdec="auto")
    assert asked == ["none"]
