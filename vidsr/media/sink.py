"""Encode Y'CbCr planes and mux them with the passthrough streams into a temporary file,
renamed to the final name only when everything is written.

As with the source, the container is touched under one I/O lock: the pipeline's encode thread
writes, while the caller may abort from its own thread.  :meth:`VideoSink.abort` closes between
two writes, or, if a write is in progress, removes the file's name at once and leaves the close
to the writing thread, which does it before its next write.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import threading
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av

from vidsr.errors import OutputError
from vidsr.media import encoders, metadata
from vidsr.media.encoders import DEFAULT_CODECS, EncodeOptions  # noqa: F401  (re-exported: callers import them from here)
from vidsr.media.passthrough import Passthrough
from vidsr.media.pixfmt import PLANAR
from vidsr.media.source import Planes, plane_view
from vidsr.media.tags import ColourTags
from vidsr.stages import StageClock

log = logging.getLogger(__name__)


# FFmpeg colorspace enum values: the matrices players assume for untagged video.
_BT709, _BT601 = {1}, {5, 6}
_MATRIX_NAMES = {1: "BT.709", 5: "BT.601", 6: "BT.601", 9: "BT.2020"}
_ABORT_WAIT = 2.0  # seconds abort() waits for a write in progress
PARTIAL = re.compile(r"\.vidsr-(\d+)\.partial")  # in temporary names: the pid that writes them


@dataclass(frozen=True)
class VideoSpec:
    """What the output video stream is: size, timing and colour."""

    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction
    tags: ColourTags


@dataclass
class SinkReport:
    frames: int = 0
    retimed: int = 0
    warnings: list[str] = field(default_factory=list)


def temporary_path(final: Path) -> Path:
    """A hidden name beside ``final`` with the same extension, so the muxer is chosen alike."""
    return final.with_name(f".{final.stem}.vidsr-{os.getpid()}.partial{final.suffix}")


def stale_partials(final: Path) -> tuple[list[Path], list[Path]]:
    """Temporary files of earlier runs for ``final``: (those whose process is gone, those whose
    process still runs).  A SIGKILL or a power cut leaves them; they never carry a final name."""
    dead, alive = [], []
    folder = final.parent if str(final.parent) else Path(".")
    for path in folder.glob(f".{glob_escape(final.stem)}.vidsr-*.partial{glob_escape(final.suffix)}"):
        m = PARTIAL.search(path.name)
        if m is None or int(m.group(1)) == os.getpid():
            continue
        (alive if pid_alive(int(m.group(1))) else dead).append(path)
    return dead, alive


def glob_escape(text: str) -> str:
    return re.sub(r"([*?[])", r"[\1]", text)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (OSError, IndexError):
        return True  # no /proc: it exists


def remove_stale_partials(final: Path) -> list[str]:
    """Remove what killed runs left beside ``final``; return a warning for each file found."""
    dead, alive = stale_partials(final)
    notes = []
    for path in dead:
        with contextlib.suppress(OSError):
            path.unlink()
            notes.append(f"removed {path.name}, a partial output left by a killed run")
    for path in alive:
        notes.append(f"{path.name} beside the output belongs to a running process; remove it if no vidsr runs")
    return notes


def output_error(path: Path, exc: BaseException) -> OutputError:
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return OutputError(f"cannot write to {path}: no space left on device")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot write to {path}: permission denied")
    return OutputError(f"cannot write to {path}: {getattr(exc, 'strerror', None) or exc}")


VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")


def unknown_container(final: Path) -> str:
    if not final.suffix:
        return f"cannot write {final}: no extension to choose a container by; name it e.g. {final}.mp4"
    return f"cannot write {final}: unknown container format {final.suffix!r}; use one of {', '.join(VIDEO_SUFFIXES)}"


def check_output_path(final: Path, source: Path, *, overwrite: bool) -> None:
    """Refuse what would lose data: writing over the input, or over a file without --overwrite."""
    if final.resolve() == source.resolve():
        raise OutputError(f"output {final} is the input; choose another name")
    if final.is_dir():
        raise OutputError(f"output {final} is a directory")
    if final.exists() and not overwrite:
        raise OutputError(f"{final} already exists (to replace it: --overwrite, or overwrite=True from Python)")
    parent = final.parent if str(final.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write to {final}: folder {parent} does not exist")
    probe_folder(final)


def probe_folder(final: Path) -> None:
    """Create and remove the temporary file ``final`` will be written through, before any decoding.

    ``os.access`` answers yes for root everywhere and knows nothing of file systems that refuse new
    files (procfs, a full quota); creating the file is the one check that cannot disagree with the run.
    """
    probe = temporary_path(final)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return  # this process is writing it already: the folder takes files
    except OSError as exc:
        if exc.errno == errno.ENOENT:  # the folder exists (checked above) but takes no new names: procfs, sysfs
            raise OutputError(f"cannot write to {final}: folder {probe.parent} does not take new files") from None
        raise output_error(final, exc) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()


class VideoSink:
    """An output container written at a temporary path; ``commit`` renames it into place."""

    def __init__(
        self,
        final: Path,
        encode: EncodeOptions,
        video: VideoSpec,
        passthrough: list,
        meta: metadata.Metadata | None = None,
        *,
        clock: StageClock | None = None,
    ) -> None:
        """``clock``: where the time spent building encoder frames and encoding goes (:mod:`vidsr.stages`)."""
        self.final = final
        self.clock = clock or StageClock()
        self.metadata = meta or metadata.Metadata()
        self.temp = temporary_path(final)
        # pix_fmt None (auto) is resolved against the input by upscale_video; alone, the sink writes 8-bit 4:2:0.
        self.encode_options = encode if encode.pix_fmt else replace(encode, pix_fmt="yuv420p")
        self.spec = video
        self.report = SinkReport()
        self._last_pts: int | None = None
        self._io = threading.Lock()  # held by whoever touches the container (see the module docstring)
        self._aborting = threading.Event()
        self._closed = False
        try:
            self.container = av.open(str(self.temp), mode="w")
        except (av.error.FFmpegError, ValueError) as exc:
            self._remove_temp()
            # PyAV raises a plain ValueError ("Could not determine output format") for unknown names.
            if isinstance(exc, ValueError) or "format" in str(exc).lower():
                raise OutputError(unknown_container(final)) from None
            raise output_error(final, exc) from None
        try:
            self.stream = self._add_video()
            self.passthrough = Passthrough(self.container, passthrough, final)
            self.report.warnings += self.passthrough.warnings
            metadata.apply(self.container, self.stream, self.metadata)
        except BaseException:
            self.abort()
            raise

    def _add_video(self) -> av.video.stream.VideoStream:
        opts = self.encode_options
        fmt = self.container.format.name
        codec = encoders.codec_for(fmt, opts)
        if codec == "libx264" and fmt == "avi":
            self._warn("H.264 in AVI is read back one frame late by FFmpeg-based players; prefer .mp4 or .mkv")
        try:
            stream = self.container.add_stream(codec, rate=self.spec.frame_rate)
        except (av.error.FFmpegError, ValueError) as exc:
            if encoders.pixel_formats(codec):  # a real encoder, in a container that cannot hold its codec
                where = f"cannot encode {self.final}: {self.final.suffix}"
                raise OutputError(f"{where} cannot hold {codec}; try .mkv") from None
            raise OutputError(f"cannot encode {self.final}: unknown encoder {codec!r} ({exc})") from None
        if stream.type != "video":
            raise OutputError(f"{codec!r} is not a video encoder")
        supported = {f.name for f in (stream.codec_context.codec.video_formats or [])}
        if supported and opts.pix_fmt not in supported:
            raise OutputError(f"{codec} cannot encode {opts.pix_fmt}; it takes {', '.join(sorted(supported))}")
        stream.width, stream.height = self.spec.width, self.spec.height
        stream.pix_fmt = opts.pix_fmt
        self.time_base = self.spec.time_base
        cc = stream.codec_context
        if self.container.format.name == "avi":
            # AVI has no timestamps, only frame slots at a fixed rate (gaps become empty
            # slots), and no B-frame reordering: count in slots, encode without B-frames.
            cc.max_b_frames = 0
            if self.spec.time_base > Fraction(1, 1000) or self.spec.time_base == 1 / self.spec.frame_rate:
                self.time_base = self.spec.time_base  # already a slot clock (AVI in, AVI out)
            else:
                self.time_base = 1 / self.spec.frame_rate
        if codec == "mpeg4" and self.time_base.denominator > 65535:
            # MPEG-4 Part 2 caps the clock at 16 bits (tree.avi ticks at 66667/1000000 s).
            self.time_base = self.time_base.limit_denominator(65535)
        stream.time_base = self.time_base
        cc.time_base = self.time_base
        tags = self.spec.tags
        cc.colorspace, cc.color_range = tags.colorspace, tags.color_range
        cc.color_primaries, cc.color_trc = tags.primaries, tags.transfer
        if self.container.format.name == "avi":
            self._warn_untagged(tags.colorspace)
        options = encoders.configure(stream, codec, opts)
        if options:
            stream.options = options
        return stream

    def _warn_untagged(self, colorspace: int) -> None:
        """AVI stores no colour tags: players guess the matrix from the size (BT.709 from 720 lines)."""
        guess = _BT709 if self.spec.height >= 720 else _BT601
        if colorspace not in guess:
            self._warn(
                f"AVI cannot store colour tags: players will read this {self.spec.height}-line video as "
                f"{'BT.709' if guess is _BT709 else 'BT.601'}, not as its {_MATRIX_NAMES.get(colorspace, 'own')} "
                "colours; use .mp4 or .mkv to keep them"
            )

    def _warn(self, message: str) -> None:
        self.report.warnings.append(message)
        log.warning(message)

    # -- writing -------------------------------------------------------------------------
    def write_frame(self, planes: Planes, pts: int) -> None:
        """Encode one frame; ``pts`` is in the input's time base."""
        with self.clock.stage("frames"):
            frame = av.VideoFrame(self.spec.width, self.spec.height, self.encode_options.pix_fmt)
            for plane, data in zip(frame.planes, planes, strict=True):
                plane_view(plane, data.dtype)[...] = data
        if self.time_base != self.spec.time_base:
            pts = round(pts * self.spec.time_base / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            # Encoders need strictly increasing pts; duplicates in the input get nudged by a tick.
            pts = self._last_pts + 1
            self.report.retimed += 1
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = self.time_base
        tags = self.spec.tags
        frame.colorspace, frame.color_range = tags.colorspace, tags.color_range
        with self._io, self.clock.stage("encode"):
            self._check_open()
            self._mux(self.stream.encode(frame))
        self.report.frames += 1

    def write_packet(self, packet: av.Packet) -> None:
        with self._io:
            self._check_open()
            try:
                self.passthrough.write(packet)
            except av.error.FFmpegError as exc:
                raise output_error(self.final, exc) from None

    def _check_open(self) -> None:
        """Called with the I/O lock held: after an abort, the writing thread closes and stops."""
        if self._aborting.is_set():
            self._close()
            raise OutputError(f"writing {self.final} was aborted")

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self.container.mux(packets)
        except av.error.FFmpegError as exc:
            raise output_error(self.final, exc) from None

    def finish(self) -> None:
        """Flush encoders and write the trailer (still under the temporary name)."""
        with self._io:
            self._check_open()
            try:
                self._mux(self.stream.encode(None))
                self.passthrough.flush()
                self._closed = True
                self.container.close()
            except OSError as exc:
                raise output_error(self.final, exc) from None
        warning = metadata.dropped_warning(self.final, self.temp, self.metadata, self.passthrough.tags)
        if warning:
            self._warn(warning)

    def commit(self) -> None:
        try:
            os.replace(self.temp, self.final)
        except OSError as exc:
            self._remove_temp()
            raise output_error(self.final, exc) from None

    def abort(self) -> None:
        """Close without caring for errors, and leave nothing behind; from any thread."""
        self._aborting.set()
        if self._io.acquire(timeout=_ABORT_WAIT):
            try:
                self._close()
            finally:
                self._io.release()
        # Else a write is in progress: the name goes now (the open file lives on, nameless, until
        # the writing thread closes it before its next write).
        self._remove_temp()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self.container.close()

    def _remove_temp(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def pixel_layout(pix_fmt: str) -> tuple[int, int, int]:
    """Chroma subsampling (x, y) and bits per sample of a planar output format."""
    if pix_fmt not in PLANAR:
        raise OutputError(f"output pixel format {pix_fmt!r} is not supported; use one of {', '.join(PLANAR)}")
    return PLANAR[pix_fmt]
