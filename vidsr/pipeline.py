"""Decode, infer and encode overlapped in three threads joined by bounded queues.

    reader thread ──[items]──▶ caller's thread: batch + infer ──[items]──▶ writer thread

Items keep file order: frames and passthrough packets travel in one stream, so audio
stays interleaved with the video it belongs to.  Queues are bounded, so memory is flat
in the length of the video.  An exception in any stage stops all three and is raised
from :meth:`Pipeline.run`; Ctrl-C arrives in the caller's thread and stops them too.

``process`` may hand back a batch whose results are still on their way to host memory (a
:class:`BatchResult`: on CUDA, a copy queued behind the model): the writer thread waits for
it, so the download and the encoding of one batch overlap the upload and compute of the next.
Such batches hold buffers (pinned host memory, GPU memory), so only a few are in flight at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import av

from vidsr.media.source import DecodedFrame, Planes
from vidsr.stages import StageClock

_END = object()
_POLL = 0.1  # seconds between checks of the stop flag while blocked on a queue
_STOP_GRACE = 10.0  # seconds each stage gets to stop after a failure


class BatchResult(Protocol):
    """A batch's output planes, perhaps still being copied to host memory."""

    def frames(self) -> list[Planes]:
        """The planes, one per frame, in host memory (waits for the copy)."""
        ...

    def release(self) -> None:
        """The planes are encoded: their buffers may be reused."""
        ...


@dataclass
class ReadyBatch:
    """Results already in host memory (the CPU path)."""

    planes: list[Planes]

    def frames(self) -> list[Planes]:
        return self.planes

    def release(self) -> None:
        pass


@dataclass
class _EncodeBatch:
    pts: list[int]
    result: BatchResult


class _Stopped(Exception):
    """Raised inside a stage when another stage failed or the run was interrupted."""


class Pipeline:
    """Runs ``process`` over batches of decoded frames from ``items``, handing results to ``write_*``.

    ``process(frames) -> planes`` must return one result per frame, in order.
    """

    def __init__(
        self,
        items: Iterable[DecodedFrame | av.Packet],
        process: Callable[[list[DecodedFrame]], list[Planes] | BatchResult],
        write_frame: Callable[[Planes, int], None],
        write_packet: Callable[[av.Packet], None],
        *,
        batch_size: int = 4,
        queue_frames: int = 16,
        on_frames: Callable[[int], None] | None = None,
        clock: StageClock | None = None,
    ) -> None:
        self.items = items
        self.process = process
        self.write_frame = write_frame
        self.write_packet = write_packet
        self.batch_size = max(1, batch_size)
        # Packets count against the queue too; leave room for a batch plus the audio around it.
        self.in_queue: queue.Queue[Any] = queue.Queue(maxsize=queue_frames + 4 * self.batch_size)
        self.out_queue: queue.Queue[Any] = queue.Queue(maxsize=queue_frames + 4 * self.batch_size)
        # Batches between process() and the end of their encoding: each holds its output buffers.
        self._in_flight = threading.Semaphore(max(2, queue_frames // self.batch_size))
        self.on_frames = on_frames or (lambda n: None)
        self.clock = clock or StageClock(batch=self.batch_size)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []

    # -- queue helpers that give up when the run is stopping ---------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue

    def _acquire_slot(self) -> None:
        while not self._in_flight.acquire(timeout=_POLL):
            if self._stop.is_set():
                raise _Stopped

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._stop.set()

    # -- stages ------------------------------------------------------------------------
    def _read(self) -> None:
        try:
            for item in self.items:
                self._put(self.in_queue, item)
            self._put(self.in_queue, _END)
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc)

    def _write(self) -> None:
        try:
            while (item := self._get(self.out_queue)) is not _END:
                if isinstance(item, _EncodeBatch):
                    self._write_batch(item)
                else:
                    self.write_packet(item)
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc)

    def _write_batch(self, batch: _EncodeBatch) -> None:
        with self.clock.stage("download"):
            planes = batch.result.frames()
        if len(planes) != len(batch.pts):
            raise RuntimeError(f"model returned {len(planes)} frames for {len(batch.pts)}")
        for pts, frame in zip(batch.pts, planes, strict=True):
            self.write_frame(frame, pts)
            self.clock.frame_written()
            self.on_frames(1)
        batch.result.release()
        self._in_flight.release()

    def _batches(self) -> Iterator[tuple[list[DecodedFrame], list[av.Packet]]]:
        """Frames in batches, each with the packets that arrived while it filled."""
        frames: list[DecodedFrame] = []
        packets: list[av.Packet] = []
        while (item := self._get(self.in_queue)) is not _END:
            if isinstance(item, DecodedFrame):
                frames.append(item)
                if len(frames) == self.batch_size:
                    yield frames, packets
                    frames, packets = [], []
            else:
                packets.append(item)
        if frames or packets:
            yield frames, packets

    def run(self) -> None:
        reader = threading.Thread(target=self._read, name="vidsr-decode", daemon=True)
        writer = threading.Thread(target=self._write, name="vidsr-encode", daemon=True)
        try:
            # Started inside the try: Thread.start() waits for the thread to run, which on a busy
            # machine takes long enough for a Ctrl-C to land there, and a reader started but never
            # told to stop would read on after its source was closed.
            reader.start()
            writer.start()
            for frames, packets in self._batches():
                if frames:
                    self._acquire_slot()
                    result = self.process(frames)
                    if isinstance(result, list):
                        result = ReadyBatch(result)
                    self._put(self.out_queue, _EncodeBatch([f.pts for f in frames], result))
                for packet in packets:
                    self._put(self.out_queue, packet)
            self._put(self.out_queue, _END)
            writer.join()
        except _Stopped:
            pass
        except BaseException as exc:  # Ctrl-C included: stop the other stages, then re-raise
            self._fail(exc)
        if not self._errors:
            reader.join()
            writer.join()
            self.clock.finish()
            return
        self._stop.set()
        # Stages poll the stop flag, so these joins are short.  They are bounded all the same: a
        # KeyboardInterrupt that lands inside queue.Queue.put, between its lock's acquire and the
        # with-block, leaves that lock held (CPython issue 29988) and a stage waiting on it forever.
        # The stages are daemon threads; the run's error matters more than waiting for them, and
        # a stage that outlives this cannot touch a closed file (the source and sink lock their I/O).
        for thread in (reader, writer):
            if thread.ident is not None:  # started
                thread.join(timeout=_STOP_GRACE)
        raise self._errors[0]
