"""Decode, infer and encode overlapped in three threads joined by bounded queues.

    reader thread ──[items]──▶ caller's thread: batch + infer ──[items]──▶ writer thread

Items keep file order: frames and passthrough packets travel in one stream, so audio
stays interleaved with the video it belongs to.  Queues are bounded, so memory is flat
in the length of the video.  An exception in any stage stops all three and is raised
from :meth:`Pipeline.run`; Ctrl-C arrives in the caller's thread and stops them too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import av

from vidsr.media.source import DecodedFrame, Planes

_END = object()
_POLL = 0.1  # seconds between checks of the stop flag while blocked on a queue
_STOP_GRACE = 10.0  # seconds each stage gets to stop after a failure


@dataclass
class EncodedFrame:
    pts: int
    planes: Planes


class _Stopped(Exception):
    """Raised inside a stage when another stage failed or the run was interrupted."""


class Pipeline:
    """Runs ``process`` over batches of decoded frames from ``items``, handing results to ``write_*``.

    ``process(frames) -> planes`` must return one result per frame, in order.
    """

    def __init__(
        self,
        items: Iterable[DecodedFrame | av.Packet],
        process: Callable[[list[DecodedFrame]], list[Planes]],
        write_frame: Callable[[Planes, int], None],
        write_packet: Callable[[av.Packet], None],
        *,
        batch_size: int = 4,
        queue_frames: int = 16,
        on_frames: Callable[[int], None] | None = None,
    ) -> None:
        self.items = items
        self.process = process
        self.write_frame = write_frame
        self.write_packet = write_packet
        self.batch_size = max(1, batch_size)
        # Packets count against the queue too; leave room for a batch plus the audio around it.
        self.in_queue: queue.Queue[Any] = queue.Queue(maxsize=queue_frames + 4 * self.batch_size)
        self.out_queue: queue.Queue[Any] = queue.Queue(maxsize=queue_frames + 4 * self.batch_size)
        self.on_frames = on_frames or (lambda n: None)
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
                if isinstance(item, EncodedFrame):
                    self.write_frame(item.planes, item.pts)
                    self.on_frames(1)
                else:
                    self.write_packet(item)
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc)

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
                results = self.process(frames) if frames else []
                if len(results) != len(frames):
                    raise RuntimeError(f"model returned {len(results)} frames for {len(frames)}")
                for frame, planes in zip(frames, results, strict=True):
                    self._put(self.out_queue, EncodedFrame(frame.pts, planes))
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
