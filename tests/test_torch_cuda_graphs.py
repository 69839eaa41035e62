"""torch-cuda's CUDA-graph, device and compile logic on the CPU, with a stand-in torch.cuda (tests/cuda_standin.py).

The stand-in records a "kernel" into a graph only when it is launched on the capture stream
with the capture stream's device current, like CUDA; a graph captured anywhere else replays
nothing and returns the first batch's output again, which is what these tests look for.
"""

from __future__ import annotations

import pytest
import torch
from cuda_standin import FakeCuda
from torch import nn

from vidsr.backends.torch_cuda import CAPTURE_ERROR_MODE, GraphRunner, prepare_module, use_device
from vidsr.models import LoadedModel, get_spec


def conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(1, 2, 3, padding=1).eval().requires_grad_(False)


def runner_on(index: int, fake: FakeCuda, model: nn.Module) -> GraphRunner:
    def forward(x: torch.Tensor) -> torch.Tensor:  # a "kernel" for cuda:index
        return fake.launch(index, lambda: model(x))

    return GraphRunner(forward, torch.device(f"cuda:{index}"), cuda=fake, warmup_runs=1)


@pytest.mark.parametrize("index", [0, 1])
def test_replays_compute_each_new_batch_on_any_gpu(index):
    fake, model = FakeCuda(devices=2), conv()
    runner = runner_on(index, fake, model)
    with torch.inference_mode():
        for seed in range(3):  # the first call captures, the others replay
            x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
            assert torch.allclose(runner(x), model(x), atol=1e-6), f"batch {seed} on cuda:{index}"
    (capture,) = fake.captures
    assert capture.graph.replays == 3
    assert set(fake.device_log) == {index}  # warm-up and capture ran with cuda:index current


def test_capture_uses_the_runners_stream_device_pool_and_thread_local_mode():
    fake, model = FakeCuda(devices=2), conv()
    runner = runner_on(1, fake, model)
    with torch.inference_mode():
        runner(torch.rand(2, 1, 8, 8))
        runner(torch.rand(2, 1, 8, 12))  # a second shape: a second graph
    assert len(fake.captures) == 2
    for capture in fake.captures:
        assert capture.stream is runner.stream and capture.stream.device == 1
        assert capture.device == 1
        assert capture.capture_error_mode == CAPTURE_ERROR_MODE == "thread_local"
        assert capture.pool == runner.pool  # one pool for every graph
    assert runner.stream.waited_on  # ordered after the caller's stream, which wrote static_in


def test_short_and_long_batches_use_the_captured_graph():
    fake, model = FakeCuda(devices=1), conv()
    runner = runner_on(0, fake, model)
    with torch.inference_mode():
        runner(torch.rand(3, 1, 8, 8))
        short = torch.rand(2, 1, 8, 8)
        assert torch.allclose(runner(short), model(short), atol=1e-6)  # padded into the batch-3 graph
        long = torch.rand(7, 1, 8, 8)
        assert torch.allclose(runner(long), model(long), atol=1e-6)  # split 3+3+1
    assert len(fake.captures) == 1


def test_outputs_are_copies_callers_may_keep():
    fake, model = FakeCuda(devices=1), conv()
    runner = runner_on(0, fake, model)
    with torch.inference_mode():
        a_in, b_in = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
        a = runner(a_in)
        runner(b_in)
        assert torch.allclose(a, model(a_in), atol=1e-6)  # not overwritten by the next replay


class Counting(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize(("name", "compiled"), [("espcn", True), ("bicubic", False), ("lanczos", False)])
def test_only_learned_models_are_compiled(monkeypatch, name, compiled):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: calls.append(kw) or module)
    loaded = LoadedModel(get_spec(name), 2, Counting())
    _, is_compiled = prepare_module(loaded, compile=True)
    assert is_compiled is compiled and len(calls) == int(compiled)
    assert prepare_module(loaded, compile=False) == (loaded.module, False)


@pytest.mark.parametrize(("device", "expected"), [("cuda:1", [torch.device("cuda:1")]), ("cuda", []), ("cpu", [])])
def test_use_device_sets_the_workers_gpu(monkeypatch, device, expected):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    use_device(device)
    use_device(None)
    assert calls == expected


def test_batch_worker_makes_its_gpu_current(monkeypatch):
    from vidsr import upscaler
    from vidsr.backends import torch_cuda
    from vidsr.batch import worker
    from vidsr.batch.options import RuntimeSettings, UpscaleSettings

    calls = []
    monkeypatch.setattr(torch_cuda, "use_device", calls.append)
    monkeypatch.setattr(upscaler, "Upscaler", lambda *a, **kw: kw["device"])
    monkeypatch.setattr(worker, "STATE", worker._WorkerState())
    spec = worker.WorkerSpec(UpscaleSettings(), RuntimeSettings())
    assert worker.get_upscaler(spec, "cuda:3") == "cuda:3"
    assert calls == ["cuda:3"]
