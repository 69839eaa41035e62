"""PyTorch on a CUDA GPU: FP16, channels-last, ``torch.compile`` and CUDA graphs.

Video batches all have one shape (frame size x batch size; the Upscaler pads the last
batch and tiles big frames into equal tiles), so each shape is captured once into a
CUDA graph and replayed: one launch per batch instead of one per kernel, which is most
of the time for a small network such as ESPCN.

Every CUDA call goes through a :class:`TorchCuda` object (``torch.cuda`` by default), so
the device, stream and graph handling can be driven and checked on a CPU with a stand-in
(tests/cuda_standin.py).  The rules it follows:

* everything runs with the backend's own device current (``torch.cuda.device``): a batch
  worker on ``cuda:1`` must not capture on, or enqueue to, ``cuda:0``;
* capture uses the backend's private stream, named explicitly: without ``stream=``,
  ``torch.cuda.graph`` captures on a stream of the *current* device, and a graph captured
  there records nothing of the work on the backend's device, so every replay would return
  the first batch again;
* ``capture_error_mode="thread_local"``: the decode thread (NVDEC) and the copy stream keep
  making CUDA calls while a graph is captured, which the default ``"global"`` mode turns
  into a failed capture;
* all graphs share one memory pool: graphs are replayed one at a time on one stream and
  their outputs are cloned right after replay, so the pool can be shared safely, and eight
  shapes of SRResNet at 1080p no longer hold eight ~10 GB pools.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
MAX_GRAPHS = 8  # distinct input shapes kept as graphs; beyond this, run eagerly (odd shapes)
WARMUP_RUNS = 3  # cuDNN autotuning and compile happen here, not inside the capture
CAPTURE_ERROR_MODE = "thread_local"  # other threads (decode, upload) may use CUDA during a capture


class TorchCuda:
    """The ``torch.cuda`` calls the GPU backends make, behind one object that tests can replace."""

    def is_available(self) -> bool:
        return torch.cuda.is_available()

    def get_device_name(self, device: torch.device) -> str:
        return torch.cuda.get_device_name(device)

    def device(self, device: torch.device) -> Any:
        """Context manager: ``device`` is the current CUDA device inside."""
        return torch.cuda.device(device)

    def new_stream(self, device: torch.device) -> Any:
        return torch.cuda.Stream(device)

    def current_stream(self, device: torch.device) -> Any:
        return torch.cuda.current_stream(device)

    def stream(self, stream: Any) -> Any:
        """Context manager: ``stream`` is the current stream inside."""
        return torch.cuda.stream(stream)

    def new_graph(self) -> Any:
        return torch.cuda.CUDAGraph()

    def graph(self, graph: Any, *, pool: Any, stream: Any, capture_error_mode: str) -> Any:
        return torch.cuda.graph(graph, pool=pool, stream=stream, capture_error_mode=capture_error_mode)

    def graph_pool_handle(self) -> Any:
        return torch.cuda.graph_pool_handle()

    def record_stream(self, tensor: torch.Tensor, stream: Any) -> None:
        tensor.record_stream(stream)

    def tensor_device(self, device: torch.device) -> torch.device:
        """Where tensors for ``device`` live (the device itself; a CPU stand-in says ``cpu``)."""
        return device


TORCH_CUDA = TorchCuda()


def use_device(device: str | None) -> None:
    """Make ``cuda:i`` this process's current device (a batch worker per GPU calls it first).

    Work that does not name its device (CUDA graph capture, TensorRT contexts, libraries'
    scratch buffers) otherwise lands on cuda:0 for every worker.
    """
    if device and device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(device))


def prepare_module(
    loaded: LoadedModel, compile: bool, engine_dir: str | Path | None = None
) -> tuple[Callable[[torch.Tensor], torch.Tensor], bool]:
    """The module to call and whether it is compiled.

    Compiling is asked for (``--compile``), not the default: on the first H200 run max-autotune
    took 10-20 s for every new input shape, inside the timed run, and in every ESPCN listing the
    plain cuDNN convolution won, so it bought nothing there; cuDNN's own autotuning
    (``cudnn.benchmark``) and one CUDA graph per shape stay.  Only learned models are compiled: the
    interpolation baselines are Python loops over taps (:mod:`vidsr.resample`) that Dynamo
    unrolls, measured at 14 s for one 48x80 shape on the CPU.  What is compiled is cached on disk
    beside the TensorRT engines (:func:`compile_cache_dir`), so the next run, and every batch
    worker, reuses it.
    """
    module = loaded.module
    if not compile or not loaded.spec.learned:
        return module, False
    os.environ.setdefault(INDUCTOR_CACHE_ENV, str(compile_cache_dir(engine_dir)))
    try:
        # CUDA graphs are ours (GraphRunner), so compile without its own cudagraph trees.
        return torch.compile(module, mode="max-autotune-no-cudagraphs", dynamic=False), True
    except Exception as exc:  # no Triton, unsupported platform: eager
        log.warning("torch.compile unavailable (%s); running eager", exc)
        return module, False


def compile_cache_dir(engine_dir: str | Path | None = None) -> Path:
    """Where Inductor keeps compiled kernels and autotuning results: ``inductor/`` in the engine dir
    (an explicit ``TORCHINDUCTOR_CACHE_DIR`` wins).  Valid for one PyTorch, Triton and GPU, which
    Inductor's own keys check."""
    from vidsr.backends.engine_cache import default_engine_dir

    return Path(engine_dir or default_engine_dir()) / "inductor"


@dataclass
class _Graph:
    graph: Any
    static_in: torch.Tensor
    static_out: torch.Tensor


class GraphRunner:
    """``forward`` replayed from one CUDA graph per input shape, on ``device`` and a private stream."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        *,
        cuda: TorchCuda = TORCH_CUDA,
        max_graphs: int = MAX_GRAPHS,
        warmup_runs: int = WARMUP_RUNS,
    ) -> None:
        self.forward = forward
        self.device = device
        self.cuda = cuda
        self.max_graphs = max_graphs
        self.warmup_runs = warmup_runs
        self.enabled = True
        self.graphs: dict[tuple[int, ...], _Graph] = {}
        self._batch_for: dict[tuple[int, ...], int] = {}  # (C, H, W) -> captured batch size
        with cuda.device(device):
            self.stream = cuda.new_stream(device)
            self.pool = cuda.graph_pool_handle()

    def capture(self, x: torch.Tensor) -> _Graph:
        cuda = self.cuda
        with cuda.device(self.device):
            caller = cuda.current_stream(self.device)
            static_in = torch.empty_like(x, memory_format=torch.channels_last).copy_(x)
            self.stream.wait_stream(caller)  # static_in is written on the caller's stream
            with cuda.stream(self.stream):
                for _ in range(self.warmup_runs):
                    self.forward(static_in)
            graph = cuda.new_graph()
            with cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode=CAPTURE_ERROR_MODE):
                static_out = self.forward(static_in)
            caller.wait_stream(self.stream)
        return _Graph(graph, static_in, static_out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.forward(x)
        n, rest = x.shape[0], tuple(x.shape[1:])
        batch = self._batch_for.setdefault(rest, n)
        if n > batch:
            return torch.cat([self(chunk) for chunk in x.split(batch)])
        shape = (batch, *rest)
        entry = self.graphs.get(shape)
        if entry is None:
            if len(self.graphs) >= self.max_graphs:
                return self.forward(x)
            try:
                entry = self.capture(_pad_batch(x, batch))
            except Exception as exc:  # uncapturable ops: stay correct, eager
                log.warning("CUDA graph capture failed for %s (%s); running eager", shape, exc)
                self.enabled = False
                return self.forward(x)
            self.graphs[shape] = entry
        with self.cuda.device(self.device):
            # A short last batch is padded to the captured size: replaying beats a new capture.
            entry.static_in[:n].copy_(x)
            entry.graph.replay()
            # The graph overwrites static_out on the next replay, and graphs share one pool:
            # callers (tiling) may keep results, so they get a copy.
            return entry.static_out[:n].clone()


class TorchCudaBackend:
    """Eager-compatible module call, accelerated.  ``compile`` and ``cuda_graphs`` can be turned off."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        dtype: torch.dtype,
        *,
        compile: bool = False,
        cuda_graphs: bool = True,
        cuda: TorchCuda = TORCH_CUDA,
        engine_dir: str | Path | None = None,
    ) -> None:
        if device.type != "cuda":
            raise BackendError(f"torch-cuda needs a CUDA device, not {device}")
        self.name = "torch-cuda"
        self.device = device
        self.dtype = dtype
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels once
        where = cuda.tensor_device(device)
        loaded.module.to(device=where, dtype=dtype).to(memory_format=torch.channels_last)
        self.eager = loaded.module
        self.module, self.compiled = prepare_module(loaded, compile, engine_dir)
        self.graphs = GraphRunner(self._forward, device, cuda=cuda) if cuda_graphs else None
        self._where = where

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.module(x)
        except Exception:
            if not self.compiled:
                raise
            # A compile failure surfaces at the first call; eager still gives the right answer.
            log.warning("torch.compile failed at run time; running eager", exc_info=True)
            self.module, self.compiled = self.eager, False
            return self.module(x)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._where, self.dtype).contiguous(memory_format=torch.channels_last)
        return self._forward(x) if self.graphs is None else self.graphs(x)


def _pad_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    if x.shape[0] == batch:
        return x
    pad = x[-1:].expand(batch - x.shape[0], *x.shape[1:])
    return torch.cat((x, pad)).contiguous(memory_format=torch.channels_last)
