"""A CPU stand-in for the ``torch.cuda`` calls of vidsr's GPU backends (``vidsr.backends.torch_cuda.TorchCuda``).

Tensors stay on the CPU; what the stand-in models is the state CUDA keeps per thread: the
current device and each device's current stream, with the rules that make the real thing
go wrong silently:

* ``graph(g, stream=None)`` captures on a new stream of the *current* device, like
  ``torch.cuda.graph``;
* a "kernel" (a call wrapped by :meth:`FakeCuda.launch`) is recorded into a graph only
  when it is launched on the capture stream with the capture stream's device current;
  otherwise it just runs, and the graph's replay will not redo it (so stale output shows);
* replaying recomputes every recorded kernel from its (static) inputs.

Streams have non-zero handles and remember their device; stream 0 is each device's
legacy default stream.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

_handles = itertools.count(0x7F00)


class FakeStream:
    def __init__(self, device: int, handle: int | None = None) -> None:
        self.device = device
        self.cuda_stream = next(_handles) if handle is None else handle
        self.waited_on: list[FakeStream] = []

    def wait_stream(self, other: FakeStream) -> None:
        self.waited_on.append(other)

    def __repr__(self) -> str:
        return f"FakeStream(cuda:{self.device}, {self.cuda_stream:#x})"


@dataclass
class FakeGraph:
    kernels: list[tuple[Callable[[], torch.Tensor], torch.Tensor]] = field(default_factory=list)
    replays: int = 0

    def replay(self) -> None:
        self.replays += 1
        for fn, out in self.kernels:
            out.copy_(fn())


@dataclass
class Capture:
    graph: FakeGraph
    stream: FakeStream
    device: int  # current device when the capture began
    pool: Any
    capture_error_mode: str


class FakeCuda:
    """Implements the ``TorchCuda`` interface; ``devices`` GPUs named ``name``."""

    def __init__(self, devices: int = 2, name: str = "NVIDIA Stand-in GPU") -> None:
        self.count = devices
        self.name = name
        self.current = 0
        self.defaults = {i: FakeStream(i, handle=0) for i in range(devices)}
        self.currents = dict(self.defaults)
        self.captures: list[Capture] = []
        self.capturing: Capture | None = None
        self.pools = itertools.count(1)
        self.recorded: list[tuple[int, FakeStream]] = []  # (data_ptr, stream) of record_stream calls
        self.device_log: list[int] = []  # the current device at each launch
        self.streams: list[FakeStream] = []  # made by new_stream

    def known_streams(self) -> list[FakeStream]:
        return [*self.defaults.values(), *self.streams]

    # -- the TorchCuda interface ------------------------------------------------------------
    def is_available(self) -> bool:
        return self.count > 0

    def get_device_name(self, device: torch.device) -> str:
        self._index(device)
        return self.name

    @contextlib.contextmanager
    def device(self, device: torch.device) -> Iterator[None]:
        previous, self.current = self.current, self._index(device)
        try:
            yield
        finally:
            self.current = previous

    def new_stream(self, device: torch.device) -> FakeStream:
        stream = FakeStream(self._index(device))
        self.streams.append(stream)
        return stream

    def current_stream(self, device: torch.device) -> FakeStream:
        return self.currents[self._index(device)]

    @contextlib.contextmanager
    def stream(self, stream: FakeStream) -> Iterator[None]:
        # Like torch.cuda.stream: the stream's device becomes current too.
        previous_device, previous = self.current, self.currents[stream.device]
        self.current, self.currents[stream.device] = stream.device, stream
        try:
            yield
        finally:
            self.currents[stream.device], self.current = previous, previous_device

    def new_graph(self) -> FakeGraph:
        return FakeGraph()

    @contextlib.contextmanager
    def graph(
        self,
        graph: FakeGraph,
        *,
        pool: Any = None,
        stream: FakeStream | None = None,
        capture_error_mode: str = "global",
    ) -> Iterator[None]:
        stream = stream or FakeStream(self.current)  # torch.cuda.graph: a side stream of the current device
        capture = Capture(graph, stream, self.current, pool, capture_error_mode)
        self.captures.append(capture)
        self.capturing = capture
        try:
            with self.stream(stream):
                yield
        finally:
            self.capturing = None

    def graph_pool_handle(self) -> tuple[str, int]:
        return ("pool", next(self.pools))

    def record_stream(self, tensor: torch.Tensor, stream: FakeStream) -> None:
        self.recorded.append((tensor.data_ptr(), stream))

    def tensor_device(self, device: torch.device) -> torch.device:
        self._index(device)
        return torch.device("cpu")

    # -- for tests ---------------------------------------------------------------------------
    def launch(self, device: int, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run ``fn`` as a kernel on ``device``'s current stream; record it if that stream is capturing."""
        self.device_log.append(self.current)
        out = fn()
        cap = self.capturing
        stream = self.currents[self.current]
        if cap is not None and stream is cap.stream and self.current == device == cap.stream.device:
            cap.graph.kernels.append((fn, out))
        return out

    def _index(self, device: torch.device | str | int) -> int:
        d = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
        if d.type != "cuda":
            raise AssertionError(f"FakeCuda got a non-CUDA device {d}")
        index = self.current if d.index is None else d.index
        if not 0 <= index < self.count:
            raise AssertionError(f"cuda:{index} does not exist (FakeCuda has {self.count})")
        return index
