"""vidsr.cuda_setup: CUDA's context and cuDNN set up in a thread during the CLI's start-up, on the GPU the
options name, joined before the first model call, and never on the CPU paths.  The set-up itself
(a real context, cuDNN) needs a GPU: ``test_set_up_on_the_gpu`` runs it there."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import torch
from click.testing import CliRunner
from conftest import make_clip

from vidsr import cuda_setup
from vidsr.cli import cli
from vidsr.upscaler import Upscaler


def _no_driver_calls(*args):
    pytest.fail("asked the CUDA driver in the caller's thread")


@pytest.fixture
def two_gpus(monkeypatch):
    """A PyTorch built with CUDA; nothing is started on a GPU (the tests replace ``set_up``), and asking
    the driver (is there a GPU, which is current) from the caller's thread fails the test."""
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", _no_driver_calls)
    monkeypatch.setattr(torch.cuda, "current_device", _no_driver_calls)
    monkeypatch.delenv(cuda_setup.SWITCH_ENV, raising=False)


@pytest.mark.parametrize(
    ("device", "backend", "precision", "index"),
    [
        ("auto", "auto", "auto", 0),
        ("cuda", "auto", "fp16", 0),
        ("cuda:1", "torch-cuda", "auto", 1),
        ("auto", "tensorrt", "fp32", 0),
        ("cpu", "auto", "auto", None),
        ("auto", "openvino", "auto", None),
        ("auto", "torch-cpu", "auto", None),
        ("auto", "auto", "int8", None),  # the CPU's, even beside a GPU
        ("cudax", "auto", "auto", None),  # not a device: the model's making says so
        ("mps", "auto", "auto", None),
    ],
)
def test_the_gpu_the_options_will_run_on(two_gpus, device, backend, precision, index):
    assert cuda_setup.cuda_index(device, backend, precision) == index


def test_nothing_from_a_pytorch_built_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    assert cuda_setup.cuda_index("auto") is None
    assert cuda_setup.cuda_index("cuda:0") is None  # resolve_device reports it, with the option's name
    assert cuda_setup.start_cuda_setup("auto") is None


def test_the_set_up_does_nothing_where_pytorch_sees_no_gpu(monkeypatch):
    """A CUDA build on a machine without a GPU: ``auto`` runs on the CPU, and the set-up touches no device
    (here any CUDA call would raise: this PyTorch has none)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cuda_setup.set_up(0)
    assert not torch.cuda.is_initialized()


def test_set_up_runs_in_its_own_thread_on_the_named_gpu(two_gpus, monkeypatch):
    seen: list[tuple[int, str]] = []
    monkeypatch.setattr(cuda_setup, "set_up", lambda index: seen.append((index, threading.current_thread().name)))
    thread = cuda_setup.start_cuda_setup("cuda:1")
    assert thread is not None and not thread.daemon  # Python waits for it before tearing CUDA down
    thread.join()
    assert seen == [(1, "vidsr-cuda-setup")]


def test_switched_off_by_the_environment(two_gpus, monkeypatch):
    monkeypatch.setattr(cuda_setup, "set_up", lambda index: pytest.fail("set up while switched off"))
    monkeypatch.setenv(cuda_setup.SWITCH_ENV, "0")
    assert cuda_setup.start_cuda_setup("auto") is None


def test_a_failed_set_up_is_only_logged(two_gpus, monkeypatch, caplog):
    def broken(index: int) -> None:
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(cuda_setup, "set_up", broken)
    with caplog.at_level(logging.DEBUG, logger="vidsr.cuda_setup"):
        cuda_setup.start_cuda_setup("auto").join()
    assert "early CUDA set-up on cuda:0 failed: CUDA driver version is insufficient" in caplog.text


def test_the_cli_finishes_the_set_up_before_the_first_model_call(tmp_path, monkeypatch):
    """A slow set-up (0.3 s) still ends before the model first runs; ``--device cpu`` starts none."""
    events: list[tuple[str, float]] = []
    asked: list[tuple[str, str, str]] = []

    def slow_setup() -> None:
        time.sleep(0.3)
        events.append(("set up", time.perf_counter()))

    def start(device: str, backend: str, precision: str) -> threading.Thread:
        asked.append((device, backend, precision))
        thread = threading.Thread(target=slow_setup)
        thread.start()
        return thread

    real_infer = Upscaler._infer

    def infer(self, x):
        events.append(("model", time.perf_counter()))
        return real_infer(self, x)

    monkeypatch.setattr(cuda_setup, "start_cuda_setup", start)
    monkeypatch.setattr(Upscaler, "_infer", infer)
    clip = make_clip(tmp_path / "in.mp4", frames=4)
    args = ["upscale", str(clip), "-o", str(tmp_path / "out.mp4"), "--device", "cpu", "-m", "espcn", "-q"]
    result = CliRunner().invoke(cli, [*args, "--precision", "fp32"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert asked == [("cpu", "auto", "fp32")]
    assert events[0][0] == "set up" and [name for name, _ in events[1:]] == ["model"] * (len(events) - 1)
    assert len(events) > 1


def test_the_cli_on_the_cpu_sets_up_no_gpu(tmp_path, two_gpus, monkeypatch):
    """Even where PyTorch sees a GPU, ``--device cpu`` leaves it alone."""
    monkeypatch.setattr(cuda_setup, "set_up", lambda index: pytest.fail(f"set up cuda:{index} for --device cpu"))
    clip = make_clip(tmp_path / "in.mp4", frames=2)
    result = CliRunner().invoke(cli, ["upscale", str(clip), "-o", str(tmp_path / "out.mp4"), "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.mp4").is_file()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to PyTorch here)")
def test_set_up_on_the_gpu():
    cuda_setup.set_up(torch.cuda.current_device())
    assert torch.cuda.is_initialized() and torch.backends.cudnn.version() is not None
