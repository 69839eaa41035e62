"""Demux once, decode video to 8-bit Y'CbCr planes, hand every other packet on untouched.

The source yields, in file order, :class:`DecodedFrame` items for the video stream
and raw ``av.Packet`` items for every stream that is copied to the output.

One thread reads (the pipeline's decode thread) while another may close the source (the caller,
on Ctrl-C or a failure).  FFmpeg's demuxer must never run on a closed container: PyAV frees the
format context on close, and a read after that dereferences freed memory (a SIGSEGV inside
``av_read_frame``).  So every read holds the source's I/O lock and checks for a close request
first; :meth:`VideoSource.close` takes the lock between packets, or, when a read is in progress,
leaves the close to the reading thread, which does it as soon as that read returns.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidsr.colour import rgb_to_ycbcr
from vidsr.errors import InputError
from vidsr.media import interlace, metadata, telecine
from vidsr.media.fieldscan import FieldScan
from vidsr.media.inputs import open_input, truncation, video_stream
from vidsr.media.pixfmt import planar_format, storage_bits
from vidsr.media.pyav import fraction
from vidsr.media.tags import ColourTags, resolve, ycbcr_format
from vidsr.stages import StageClock

log = logging.getLogger(__name__)

# pix_fmt -> (chroma subsampling x, y, full range) for formats whose planes we take as they are.
PLANAR_8BIT = {
    "yuv420p": (2, 2, False),
    "yuvj420p": (2, 2, True),
    "yuv422p": (2, 1, False),
    "yuvj422p": (2, 1, True),
    "yuv444p": (1, 1, False),
    "yuvj444p": (1, 1, True),
}
# How many decoded frames we hold back to put timestamps in presentation order (see _Retimer).
REORDER_WINDOW = 16
# How long close() waits for a read in progress before leaving the close to the reading thread.
_CLOSE_WAIT = 2.0

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class DecodedFrame:
    index: int
    pts: int
    planes: Planes


@dataclass(frozen=True)
class PlaneLayout:
    """How decoded frames are laid out once converted: size, chroma subsampling, sample depth."""

    width: int
    height: int
    sub_x: int
    sub_y: int
    bits: int = 8  # 8: uint8 planes; 10, 12, 16: uint16 planes holding codes of that many bits

    @property
    def chroma_size(self) -> tuple[int, int]:
        return -(-self.height // self.sub_y), -(-self.width // self.sub_x)


def plane_view(plane: av.video.plane.VideoPlane, dtype: type = np.uint8) -> np.ndarray:
    """A (height, width) view of a plane (uint8, or uint16 for deep formats), without the line padding."""
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // item)[:, : plane.width]


class _FrameConverter:
    """Turns decoded frames of one stream into Y'CbCr planes, choosing the cheapest path once."""

    def __init__(self, first: av.VideoFrame, tags: ColourTags) -> None:
        name = first.format.name
        self.tags = tags
        self.reformat_to: str | None = None
        self.note: str | None = None
        bits = max(c.bits for c in first.format.components)
        self.dtype: type = np.uint8
        if name in PLANAR_8BIT:
            self.mode = "planar"
            sub_x, sub_y, _ = PLANAR_8BIT[name]
        elif bits > 8 and not first.format.is_rgb and len(first.format.components) >= 3:
            # 10-, 12-bit masters keep their depth: 16-bit planes, as the decoder gave them where it can.
            self.mode = "planar"
            sub_x = -(-first.width // first.format.chroma_width(first.width))
            sub_y = -(-first.height // first.format.chroma_height(first.height))
            if (sub_x, sub_y) not in ((2, 2), (2, 1), (1, 1)):
                sub_x, sub_y = 1, 1  # 4:1:1, 4:4:0: kept whole rather than guessed at
            bits = storage_bits(bits)
            target = planar_format(sub_x, sub_y, bits)
            self.reformat_to = None if target == name else target
            self.dtype = np.uint16
        elif first.format.is_rgb or first.format.has_palette:
            # RGB sources (Cinepak, PNG...): we convert with the matrix we will tag the output with.
            self.mode = "rgb"
            sub_x, sub_y = 1, 1
        elif name in ("gray", "gray8"):
            self.mode = "gray"
            sub_x, sub_y = 2, 2
        else:
            # nv12, 10-bit and other layouts: swscale to 8-bit planar, same matrix.
            self.mode = "planar"
            full = first.color_range == 2
            chroma_full = first.format.chroma_width(first.width) == first.width
            self.reformat_to = (
                ("yuvj444p" if full else "yuv444p") if chroma_full else ("yuvj420p" if full else "yuv420p")
            )
            sub_x, sub_y, _ = PLANAR_8BIT[self.reformat_to]
            if bits > 8:
                self.note = f"input is {name}: processed at 8 bits per sample"
        if self.dtype is np.uint8:
            bits = 8
        self.layout = PlaneLayout(first.width, first.height, sub_x, sub_y, bits)

    def __call__(self, frame: av.VideoFrame) -> Planes:
        if (frame.width, frame.height) != (self.layout.width, self.layout.height):
            # A mid-stream size change: the encoder has one size, so scale to it.
            frame = frame.reformat(width=self.layout.width, height=self.layout.height)
        if self.mode == "planar":
            if self.reformat_to:
                frame = frame.reformat(format=self.reformat_to)
            return tuple(plane_view(p, self.dtype).copy() for p in frame.planes[:3])  # type: ignore[return-value]
        if self.mode == "gray":
            y = plane_view(frame.planes[0]).copy()
            ch, cw = self.layout.chroma_size
            grey = np.full((ch, cw), 128, np.uint8)
            return y, grey, grey.copy()
        rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float().div_(255.0)
        ycc = rgb_to_ycbcr(rgb, ycbcr_format(self.tags)).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
        return tuple(p.numpy() for p in ycc)  # type: ignore[return-value]


class _Retimer:
    """Gives frames their timestamps in presentation order.

    Some files store decode-order timestamps (pts == dts on every packet although
    the stream has B-frames); decoded frames then come out with pts out of order.
    Each frame leaves a short window holding back REORDER_WINDOW frames and takes
    the smallest timestamp seen but not yet given: for a well-formed stream that is
    its own pts, for a scrambled one the right presentation time.
    """

    def __init__(self, window: int = REORDER_WINDOW, frame_ticks: int = 1) -> None:
        """``frame_ticks``: one frame interval in ticks of the time base, for frames without pts before
        any interval was seen (a raw .h264 file has none: its clock is the parser's 1/1200000 s)."""
        self.window = window
        self.frames: deque[tuple[int, Planes]] = deque()
        self.heap: list[int] = []
        self.last: int | None = None
        self.step: int | None = None  # the smallest frame interval seen, for frames without pts
        self.frame_ticks = max(1, frame_ticks)

    def push(self, index: int, pts: int | None, planes: Planes) -> Iterator[DecodedFrame]:
        if pts is None:  # no timestamp at all: continue the cadence
            step = self.step or self.frame_ticks
            pts = (max(self.heap) if self.heap else (self.last if self.last is not None else -step)) + step
        heapq.heappush(self.heap, pts)
        self.frames.append((index, planes))
        while len(self.frames) > self.window:
            yield self._pop()

    def drain(self) -> Iterator[DecodedFrame]:
        while self.frames:
            yield self._pop()

    def _pop(self) -> DecodedFrame:
        index, planes = self.frames.popleft()
        pts = heapq.heappop(self.heap)
        if self.last is not None and pts > self.last:
            self.step = pts - self.last if self.step is None else min(self.step, pts - self.last)
        self.last = pts
        return DecodedFrame(index, pts, planes)


class VideoSource:
    """An opened input: its video stream, the streams to pass through, and an item iterator."""

    def __init__(
        self,
        path: str | Path,
        *,
        threads: bool = True,
        hwaccel: av.codec.hwaccel.HWAccel | None = None,
        deinterlace: str = "off",
        field_rate: bool = False,
        clock: StageClock | None = None,
        on_size: Callable[[int, int], None] | None = None,
        fields: FieldScan | None = None,
    ) -> None:
        """``deinterlace``: auto (detect; deinterlace what is interlaced, inverse telecine film), on, off,
        ivtc (see :mod:`.interlace`); ``field_rate``: one frame per field; ``clock``: where decoding
        and plane extraction time goes (:mod:`vidsr.stages`); ``on_size(height, width)``: hears the
        stream's picture size as soon as its header gives it, before field detection and the first
        frame are decoded (a model warms up meanwhile); ``fields``: the field detection, started
        earlier on this path (:mod:`.fieldscan`), whose answer replaces detecting here."""
        self.path = Path(path)
        self.clock = clock or StageClock()
        self._io = threading.Lock()  # held by whoever touches the container (see the module docstring)
        self._closing = threading.Event()
        self._closed = False
        # hwaccel: NVDEC decode (vidsr.backends.hwvideo.decode_hwaccel); frames still arrive in host memory.
        self.container = open_input(self.path, hwaccel=hwaccel)
        try:
            self.video = video_stream(self.container, self.path)
            if threads:
                self.video.thread_type = "AUTO"
            if on_size is not None and self.video.height > 0 and self.video.width > 0:
                on_size(self.video.height, self.video.width)
            early = fields.result(self.video.index, deinterlace, field_rate) if fields is not None else None
            self.interlace = early or interlace.detect(self.path, self.video, deinterlace, field_rate)
            # The stream's facts, read while it is open (PyAV 19 frees a closed container's streams).
            self._input_time_base = fraction(self.video.time_base)
            self._input_rate = fraction(self.video.average_rate) or fraction(self.video.guessed_rate) or Fraction(25)
            self._deinterlacer: interlace.Deinterlacer | telecine.InverseTelecine | None = None
            if self.interlace.ivtc:
                assert self.interlace.telecine is not None
                self._deinterlacer = telecine.InverseTelecine(self.interlace.telecine, self._input_time_base)
            elif self.interlace.deinterlace:
                self._deinterlacer = interlace.Deinterlacer(self.interlace, self._input_time_base)
            self.frames_estimate = self._estimate_frames()
            self._matrix: tuple[int, ...] | None = None  # the first frame's display matrix, before any filter
            self.frames_read = 0  # pictures the decoder gave (frames_decoded counts those handed on)
            self.corrupt_packets = 0  # packets the decoder rejected: their frames are lost
            self.damaged_frames = 0  # frames the decoder flagged as concealed: written, but warned of
            self.frames_decoded = 0
            self.passthrough = metadata.side_streams(self.container, self.video)
            self._packets = self.container.demux(self.video, *self.passthrough)
            self._pending: deque[av.Packet | av.VideoFrame] = deque()
            self._video_end: int | None = None
            first = self._prime()
            raw = ColourTags(first.colorspace, first.color_range, first.color_primaries, first.color_trc)
            full = PLANAR_8BIT.get(first.format.name, (0, 0, False))[2]
            self.tags = resolve(raw, first.width, first.height, full_range_format=full)
            self.input_tags = raw
            self.metadata = metadata.read(self.container, self.video, self._matrix)
            self.metadata = replace(self.metadata, video=interlace.output_tags(self.metadata.video, self.interlace))
            if self._deinterlacer is not None:
                self.metadata = replace(self.metadata, field_order=metadata.FIELD_PROGRESSIVE)
            self._convert = _FrameConverter(first, self.tags)
            self.layout = self._convert.layout
            self.note = self._convert.note
        except BaseException:
            self._close_container()
            raise

    # -- facts about the input ---------------------------------------------------------
    @property
    def time_base(self) -> Fraction:
        """The clock of the frames handed on: the input's, or half of it at field rate."""
        return self._deinterlacer.output_time_base if self._deinterlacer else self._input_time_base

    @property
    def frame_rate(self) -> Fraction:
        """The rate of the frames handed on: the input's, twice it at field rate, 4/5 of it once inverse
        telecined (nominal: video-rate sections of a mixed file keep their own)."""
        return self._input_rate * self._rate_factor

    @property
    def input_frame_rate(self) -> Fraction:
        return self._input_rate

    @property
    def _rate_factor(self) -> Fraction:
        if isinstance(self._deinterlacer, telecine.InverseTelecine):
            return telecine.FILM_RATIO
        return Fraction(2 if self._deinterlacer is not None and self.interlace.field_rate else 1)

    def _estimate_frames(self) -> int | None:
        """The container's frame count or duration x rate; None when it says nothing."""
        if self.video.frames:
            return round(int(self.video.frames) * self._rate_factor)
        if self.video.duration and self._input_time_base:
            return round(float(self.video.duration * self._input_time_base * self.frame_rate))
        if self.container.duration:
            return round(self.container.duration / 1_000_000 * float(self.frame_rate))
        return None

    # -- reading -----------------------------------------------------------------------
    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            frames = list(packet.decode())
        except av.error.FFmpegError as exc:
            # Like ffmpeg: a damaged packet costs its frame, not the run.
            self.corrupt_packets += 1
            log.debug("corrupt packet at pts %s: %s", packet.pts, exc)
            return []
        self.frames_read += len(frames)
        if frames and self.frames_read == len(frames):  # the first: its side data is the input's
            self._matrix = metadata.display_matrix(frames[0])
        if self._deinterlacer is None:
            return frames
        return [out for frame in frames for out in self._deinterlacer.push(frame)]

    def _read_one(self) -> list[av.Packet | av.VideoFrame] | None:
        """What one packet gives (a passthrough packet, or the frames it decodes to), read under the
        I/O lock; None at the end of the file or once a close was requested."""
        with self._io:
            if self._closing.is_set():
                self._close_container()  # asked while we were elsewhere: the reader closes its container
                return None
            try:
                packet = next(self._packets)
            except StopIteration:
                return None
            except av.error.FFmpegError as exc:
                # The demuxer itself gave up: a cut-off or damaged file.
                if self.frames_decoded == 0 and not self._pending:
                    raise InputError(f"cannot read {self.path}: damaged or truncated ({exc.strerror})") from None
                self.corrupt_packets += 1
                log.debug("demux error: %s", exc)
                return []
            if packet.stream is self.video:
                if packet.size and packet.pts is not None:
                    end = packet.pts + (packet.duration or 0)
                    self._video_end = end if self._video_end is None else max(self._video_end, end)
                with self.clock.stage("decode"):
                    return self._decode(packet)  # a flush packet (size 0) drains the decoder
            return [packet] if packet.size else []

    def _next_raw(self) -> Iterator[av.Packet | av.VideoFrame]:
        """Packets of passthrough streams and decoded video frames, in file order."""
        while (items := self._read_one()) is not None:
            yield from items
        if self._deinterlacer is not None and not self._closing.is_set():
            yield from self._deinterlacer.push(None)  # the last frames bwdif held for their successors

    def _prime(self) -> av.VideoFrame:
        """Read up to the first decodable frame, keeping what came before it for later."""
        self._raw = self._next_raw()
        for item in self._raw:
            self._pending.append(item)
            if isinstance(item, av.VideoFrame):
                return item
        raise InputError(
            f"cannot read {self.path}: no decodable video frame"
            + (f" ({self.corrupt_packets} damaged packets)" if self.corrupt_packets else "")
        )

    def items(self, *, convert: bool = True) -> Iterator[DecodedFrame | av.Packet]:
        """Every decoded frame (as planes, with presentation-ordered pts) and passthrough packet.

        ``convert=False`` leaves the planes out (``None``): counting frames needs no colour conversion.
        """
        retimer = _Retimer(frame_ticks=round(1 / (self.frame_rate * self.time_base)) if self.time_base else 1)
        index = 0
        held: list[av.Packet] = []

        def source() -> Iterator[av.Packet | av.VideoFrame]:
            while self._pending:
                yield self._pending.popleft()
            yield from self._raw

        for item in source():
            if isinstance(item, av.VideoFrame):
                self.frames_decoded += 1
                self.damaged_frames += item.is_corrupt
                with self.clock.stage("planes"):
                    planes = self._convert(item) if convert else None
                ready = list(retimer.push(index, item.pts, planes))
                index += 1
                yield from ready
                if ready and held:
                    yield from held
                    held.clear()
            else:
                # Packets wait with the frames the retimer holds, so they keep their place.
                held.append(item)
                if len(held) > 4 * REORDER_WINDOW:
                    yield from held
                    held.clear()
        with self._io:
            if self._closing.is_set():
                return  # stopped early: the stream facts below live in the (closing) container
            self._check_complete()
        yield from retimer.drain()
        yield from held

    def _check_complete(self) -> None:
        problem = truncation(self.container, self.video, self._video_end)
        if problem:
            raise InputError(f"{self.path} {problem}")

    def close(self) -> None:
        """Close the container, from any thread: between two reads, never during one."""
        self._closing.set()
        if self._io.acquire(timeout=_CLOSE_WAIT):
            try:
                self._close_container()
            finally:
                self._io.release()
        # Else a read is in progress (a slow disk, a starved thread): the reading thread closes the
        # container when that read returns, and reads nothing more.

    def _close_container(self) -> None:
        if not self._closed:
            self._closed = True
            self.container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
