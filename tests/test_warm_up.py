"""Upscaler.warm_up: the first batch's model work done ahead (on a GPU, while the input opens),
without changing a result, the first-batch precision check, or the shapes the model sees."""

from __future__ import annotations

import threading

import torch
from conftest import make_clip

from vidsr import upscaler as upscaler_module
from vidsr.media.source import VideoSource
from vidsr.upscaler import Upscaler


class RecordingBackend:
    """Wraps a backend: which thread called it with which shapes, in order."""

    def __init__(self, backend, delay_s: float = 0.0) -> None:
        self.backend, self.delay_s = backend, delay_s
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.dtype, self.device = backend.dtype, backend.device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.delay_s:
            threading.Event().wait(self.delay_s)  # a slow first call (cuDNN's kernel choice)
        self.calls.append((threading.current_thread().name, tuple(x.shape)))
        return self.backend(x)


def _frames(n: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(n, 1, height, width, generator=torch.Generator().manual_seed(5))


def test_warm_up_changes_no_result_and_leaves_the_precision_check_to_the_first_batch(monkeypatch):
    checked: list[tuple[int, ...]] = []
    real_check = upscaler_module._precision_problem
    monkeypatch.setattr(
        upscaler_module, "_precision_problem", lambda x, out: checked.append(tuple(x.shape)) or real_check(x, out)
    )
    x = _frames(2, 36, 64)
    cold = Upscaler("espcn", 2, device="cpu", backend="torch-cpu", precision="bf16")
    expected = cold.run_model(x)
    assert checked == [(2, 1, 36, 64)]

    warmed = Upscaler("espcn", 2, device="cpu", backend="torch-cpu", precision="bf16")
    warmed.warm_up(2, 36, 64)
    assert checked == [(2, 1, 36, 64)]  # blank frames prove nothing about precision
    torch.testing.assert_close(warmed.run_model(x), expected, rtol=0, atol=0)
    assert checked == [(2, 1, 36, 64)] * 2


def test_tiled_frames_warm_up_with_the_tiles_the_real_frames_use():
    up = Upscaler("espcn", 2, device="cpu", tile_pixels=40 * 40)
    up.backend = RecordingBackend(up.backend)
    up.warm_up(3, 72, 100)
    warm_shapes = [shape for _, shape in up.backend.calls]
    up.backend.calls.clear()
    up.run_model(_frames(3, 72, 100))
    assert len(warm_shapes) > 1  # it was tiled
    assert sorted(warm_shapes) == sorted(shape for _, shape in up.backend.calls)


def test_background_warm_up_finishes_before_the_first_call_and_runs_once_a_shape():
    up = Upscaler("espcn", 2, device="cpu")
    up.backend = RecordingBackend(up.backend, delay_s=0.3)
    up.warm_up_in_background(2, 36, 64)
    up.run_model(_frames(2, 36, 64))  # must wait for the warm-up, not race it
    assert up.backend.calls == [("vidsr-warm-up", (2, 1, 36, 64)), ("MainThread", (2, 1, 36, 64))]
    up.warm_up_in_background(2, 36, 64)  # a second file of the same size: nothing to warm
    up.warm_up_in_background(2, 48, 64)
    up.run_model(_frames(2, 48, 64))
    assert [name for name, _ in up.backend.calls] == ["vidsr-warm-up", "MainThread", "vidsr-warm-up", "MainThread"]


def test_a_failing_warm_up_leaves_the_failure_to_the_real_call():
    up = Upscaler("espcn", 2, device="cpu")
    calls = 0
    real = up.backend

    def flaky(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("out of memory in the warm-up")
        return real(x)

    flaky.dtype, flaky.device = real.dtype, real.device
    up.backend = flaky
    up.warm_up_in_background(2, 36, 64)
    assert up.run_model(_frames(2, 36, 64)).shape == (2, 1, 72, 128)
    assert calls == 2


def test_the_source_tells_the_picture_size_once_before_decoding(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", size=(96, 40), frames=4)
    sizes: list[tuple[int, int]] = []
    with VideoSource(clip, on_size=lambda h, w: sizes.append((h, w))) as source:
        assert sizes == [(40, 96)]
        assert source.layout.height == 40 and source.layout.width == 96
