"""Host memory for the GPU path: page-locked buffers, allocated once and reused, and the batch
that is on its way back from the GPU.

A copy between the GPU and pageable memory goes through a driver staging buffer and holds the
host thread; from page-locked (pinned) memory it runs at full PCIe speed on a stream, beside the
compute of other work.  Pinning is itself costly (a system call that maps and locks the pages,
each batch anew before this module), so buffers come from a :class:`BufferPool` and go back to it
once nothing reads them: an upload buffer when its copy has run (an event says so), a download
buffer when the encoder has taken its frames.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any, Protocol

import numpy as np
import torch

from vidsr.media.depth import to_numpy


class Event(Protocol):
    def query(self) -> bool: ...


class BufferPool:
    """Reusable host tensors by shape and dtype: pinned when ``pin`` (a CUDA machine), plain else.

    Taken by the caller's thread (uploads, downloads) and given back by the encode thread, so the
    free lists are guarded by a lock."""

    def __init__(self, pin: bool) -> None:
        self.pin = pin
        self.allocated = 0  # buffers made so far: flat once the pipeline is full
        self._free: dict[tuple[tuple[int, ...], torch.dtype], list[tuple[torch.Tensor, Event | None]]]
        self._free = defaultdict(list)
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A buffer of ``shape``: a free one whose last copy has finished, else a new one."""
        key = (tuple(shape), dtype)
        with self._lock:
            free = self._free[key]
            for i, (tensor, done) in enumerate(free):
                if done is None or done.query():
                    del free[i]
                    return tensor
            self.allocated += 1
        return torch.empty(shape, dtype=dtype, pin_memory=self.pin)

    def give(self, tensor: torch.Tensor, after: Event | None = None) -> None:
        """``tensor`` may be reused (once ``after`` has happened, when given)."""
        with self._lock:
            self._free[(tuple(tensor.shape), tensor.dtype)].append((tensor, after))


class HostBatch:
    """A batch of output planes (N, H, W) being copied to host memory: the pipeline's BatchResult.

    On CUDA the copies are queued into pooled pinned buffers on ``stream`` (a copy stream, so they
    run beside the next batch's compute; default: the current stream), behind the work that made
    the planes, and :meth:`frames` (the encode thread) waits for them; on the CPU the planes are
    host memory already."""

    def __init__(self, planes: tuple[torch.Tensor, ...], pool: BufferPool | None = None, stream: Any = None) -> None:
        self._pool = pool
        self._done: Any = None
        if planes[0].device.type != "cuda":
            self._host = list(planes)
            self._device: tuple[torch.Tensor, ...] = ()
            return
        take = pool.take if pool is not None else lambda shape, dtype: torch.empty(shape, dtype=dtype, pin_memory=True)
        self._host = [take(tuple(p.shape), p.dtype) for p in planes]
        compute = torch.cuda.current_stream(planes[0].device)
        stream = stream or compute
        stream.wait_stream(compute)  # the planes are made on the compute stream
        with torch.cuda.stream(stream):
            for host, plane in zip(self._host, planes, strict=True):
                host.copy_(plane, non_blocking=True)
                plane.record_stream(stream)  # the allocator must not hand the planes out before the copy
            self._done = torch.cuda.Event()
            self._done.record(stream)
        self._device = planes  # alive until copied

    def frames(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self._done is not None:
            self._done.synchronize()
            self._device = ()
        y, cb, cr = (to_numpy(p) for p in self._host)
        return [(y[i], cb[i], cr[i]) for i in range(len(y))]

    def release(self) -> None:
        if self._pool is not None and self._done is not None:
            for host in self._host:
                self._pool.give(host)
        self._host = []
