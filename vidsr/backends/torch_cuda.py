"""PyTorch on a CUDA GPU: FP16, channels-last, ``torch.compile`` and CUDA graphs.

Video batches all have one shape (frame size x batch size; the Upscaler pads the last
batch and tiles big frames into equal tiles), so each shape is captured once into a
CUDA graph and replayed: one launch per batch instead of one per kernel, which is most
of the time for a small network such as ESPCN.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

MAX_GRAPHS = 8  # distinct input shapes kept as graphs; beyond this, run eagerly (odd shapes)
WARMUP_RUNS = 3  # cuDNN autotuning and compile happen here, not inside the capture


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    static_in: torch.Tensor
    static_out: torch.Tensor


class TorchCudaBackend:
    """Eager-compatible module call, accelerated.  ``compile`` and ``cuda_graphs`` can be turned off."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        dtype: torch.dtype,
        *,
        compile: bool = True,
        cuda_graphs: bool = True,
    ) -> None:
        if device.type != "cuda":
            raise BackendError(f"torch-cuda needs a CUDA device, not {device}")
        self.name = "torch-cuda"
        self.device = device
        self.dtype = dtype
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels once
        module = loaded.module.to(device=device, dtype=dtype).to(memory_format=torch.channels_last)
        self.eager = module
        self.module = module
        self.compiled = False
        if compile:
            try:
                # CUDA graphs are ours (below), so compile without its own cudagraph trees.
                self.module = torch.compile(module, mode="max-autotune-no-cudagraphs", dynamic=False)
                self.compiled = True
            except Exception as exc:  # no Triton, unsupported platform: eager
                log.warning("torch.compile unavailable (%s); running eager", exc)
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple[int, ...], _Graph] = {}
        self._batch_for: dict[tuple[int, ...], int] = {}  # (C, H, W) -> captured batch size

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.module(x)
        except Exception as exc:
            if not self.compiled:
                raise
            # A compile failure surfaces at the first call; eager still gives the right answer.
            log.warning("torch.compile failed at run time (%s); running eager", exc)
            self.module, self.compiled = self.eager, False
            return self.module(x)

    def _capture(self, x: torch.Tensor) -> _Graph:
        static_in = torch.empty_like(x, memory_format=torch.channels_last).copy_(x)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        return _Graph(graph, static_in, static_out)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
        if not self.cuda_graphs:
            return self._forward(x)
        n, rest = x.shape[0], tuple(x.shape[1:])
        batch = self._batch_for.setdefault(rest, n)
        if n > batch:
            return torch.cat([self(chunk) for chunk in x.split(batch)])
        shape = (batch, *rest)
        entry = self._graphs.get(shape)
        if entry is None:
            if len(self._graphs) >= MAX_GRAPHS:
                return self._forward(x)
            try:
                entry = self._capture(_pad_batch(x, batch))
            except Exception as exc:  # uncapturable ops: stay correct, eager
                log.warning("CUDA graph capture failed for %s (%s); running eager", shape, exc)
                self.cuda_graphs = False
                return self._forward(x)
            self._graphs[shape] = entry
        # A short last batch is padded to the captured size: replaying beats a new capture.
        entry.static_in[:n].copy_(x)
        entry.graph.replay()
        # The graph overwrites static_out on the next replay; callers (tiling) may keep results.
        return entry.static_out[:n].clone()


def _pad_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    if x.shape[0] == batch:
        return x
    pad = x[-1:].expand(batch - x.shape[0], *x.shape[1:])
    return torch.cat((x, pad)).contiguous(memory_format=torch.channels_last)
