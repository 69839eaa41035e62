"""Which encoder writes the video, and the options that make it do what :class:`EncodeOptions` asks.

Lossless output is per encoder: FFV1 is lossless by design (and what archives keep masters in, in
Matroska), x264 is lossless at quantiser 0, x265 and VP9 have a ``lossless`` switch.  Encoders
without a lossless mode are refused rather than silently writing a lossy "master".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av

from vidsr.errors import OutputError
from vidsr.media.pixfmt import PLANAR, planar_format

DEFAULT_CODECS = {"avi": "mpeg4", "webm": "libvpx-vp9"}
# --lossless without --codec: FFV1 where the container is meant to hold it, else lossless H.264.
LOSSLESS_DEFAULTS = {"matroska": "ffv1", "avi": "ffv1", "nut": "ffv1", "webm": "libvpx-vp9"}
_FF_QP2LAMBDA = 118
# Cores from which libx264 gets frame threads (measured better on 16 cores, slightly worse on 2).
FRAME_THREADS_FROM_CORES = 8


@dataclass(frozen=True)
class EncodeOptions:
    """How the output video is made.  ``None`` leaves the choice to the container / encoder.

    ``codec`` None: libx264, except AVI (MPEG-4 Part 2, its native codec: FFmpeg reads
    H.264 in AVI back one frame late) and WebM (VP9); with ``lossless``, FFV1 in Matroska, AVI
    and NUT.  For mpeg4, ``crf`` is its quantiser.  ``qp`` is a constant quantiser (x264, x265,
    NVENC; 0 is lossless for x264).  ``pix_fmt`` None ("auto"): yuv420p for 8-bit input, the
    input's chroma layout at its own depth for 10- and 12-bit input.

    ``deinterlace``: auto (detect, and deinterlace interlaced input or inverse telecine film), on, off,
    ivtc (inverse telecine); ``field_rate`` makes one frame per field (twice the frame rate) instead of
    one per frame.
    """

    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    extra: tuple[tuple[str, str], ...] = ()  # further encoder options, name/value
    qp: int | None = None
    lossless: bool = False
    deinterlace: str = "auto"
    field_rate: bool = False


def codec_for(container_format: str, opts: EncodeOptions) -> str:
    """The encoder name: the one asked for, else the container's default (lossless or not)."""
    if opts.codec:
        return opts.codec
    first = container_format.split(",")[0]
    if opts.lossless:
        return LOSSLESS_DEFAULTS.get(first, "libx264")
    return DEFAULT_CODECS.get(first, "libx264")


def _private_options(cc: av.codec.context.CodecContext) -> set[str]:
    return {o.name for o in cc.supported_options.private}


def _add_param(options: dict[str, str], key: str, value: str) -> None:
    """Append ``value`` to a colon-separated parameter list option (x265-params)."""
    options[key] = f"{options[key]}:{value}" if options.get(key) else value


_quiet = False


def quiet_encoders() -> None:
    """libx265's own log (its ~28-line banner) down to errors for every encoder set up from now on.
    FFmpeg's log needs nothing: PyAV leaves it off unless asked (``av.logging.set_level``), but x265
    prints past it."""
    global _quiet
    _quiet = True


def configure(
    stream: av.video.stream.VideoStream, codec: str, opts: EncodeOptions, *, quiet: bool | None = None
) -> dict[str, str]:
    """Set the encoder's rate control on ``stream`` and return its private options (``quiet``: the
    encoder's own log down to errors; None: as :func:`quiet_encoders` left it)."""
    quiet = _quiet if quiet is None else quiet
    cc = stream.codec_context
    private = _private_options(cc)
    options = dict(opts.extra)
    if opts.crf is not None and opts.qp is not None:
        raise OutputError("--crf and --qp both set; choose one")
    if opts.lossless and (opts.crf is not None or opts.qp is not None):
        raise OutputError("--lossless takes no --crf or --qp")
    if codec == "ffv1":
        # Archival FFV1 (as the FFV1 spec, RFC 9043, and the archives that use it advise): version 3
        # (slices, per-slice CRCs to detect damage), every frame a keyframe (a damaged frame spoils
        # nothing after it; cuts anywhere).
        cc.level = 3
        cc.gop_size = 1
        options.setdefault("slicecrc", "1")
        if opts.crf is not None or opts.qp is not None:
            raise OutputError("ffv1 is always lossless: it takes no --crf or --qp")
    elif opts.lossless:
        if codec == "libx264":
            options["qp"] = "0"
        elif codec == "libx265":
            _add_param(options, "x265-params", "lossless=1")
        elif "lossless" in private:
            options["lossless"] = "1"
        else:
            raise OutputError(f"{codec} has no lossless mode; use ffv1 (in .mkv) or libx264")
    elif codec == "mpeg4":
        cc.qscale = True  # constant quantiser: FFmpeg's -q:v, 2 is near transparent
        q = opts.qp if opts.qp is not None else opts.crf
        cc.global_quality = _FF_QP2LAMBDA * min(max(q or 2, 1), 31)
    elif opts.qp is not None:
        if "qp" not in private:
            raise OutputError(f"{codec} has no constant quantiser (--qp); use --crf")
        options["qp"] = str(opts.qp)
    elif opts.crf is not None:
        options["crf"] = str(opts.crf)
    if opts.preset is not None:
        options["preset"] = opts.preset
    if codec == "libx264" and (os.cpu_count() or 1) >= FRAME_THREADS_FROM_CORES:
        # x264's frame threads, not the sliced threads PyAV asks every encoder for (its default
        # thread_type is SLICE): alone at 3840x2160, veryfast, 53 fps against 46 on the 16-core H200
        # host, and its 4K io_ceiling 47 fps against 31 (benchmarks/RESULTS.md).  On the 2-core CPU
        # frame threads were 2% slower end to end (vtest.avi x2, 3 runs each), so small machines keep slices.
        cc.thread_type = "FRAME"
    if codec == "libx265" and quiet:
        _add_param(options, "x265-params", "log-level=error")
    return options


# The muxer FFmpeg picks for a file name (where the default encoder depends on it).
_MUXERS = {".mkv": "matroska", ".mka": "matroska", ".avi": "avi", ".webm": "webm", ".nut": "nut", ".mov": "mov"}


def muxer_for(path: Path) -> str:
    return _MUXERS.get(path.suffix.lower(), "mp4")


def pixel_formats(codec: str) -> set[str]:
    """What ``codec`` encodes (empty when FFmpeg does not say, or has no such encoder)."""
    try:
        return {f.name for f in (av.codec.Codec(codec, "w").video_formats or [])}
    except (av.error.FFmpegError, ValueError):
        return set()


def output_format(asked: str | None, codec: str, sub_x: int, sub_y: int, bits: int) -> tuple[str, str | None]:
    """The output pixel format, and a note when it is shallower than the input.

    Asked for: that.  Auto: yuv420p for 8-bit input (the fast path, and what every player takes); for
    deeper input its own chroma layout at its own depth.  Where the encoder takes neither, the nearest it
    does: the same layout at less depth, then more chroma (no loss: ProRes has no 4:2:0), then less."""
    if asked:
        shallow = bits > 8 and asked in PLANAR and PLANAR[asked][2] == 8
        return asked, f"input has {bits} bits per sample: written at 8 bits ({asked})" if shallow else None
    own = (2, 2) if bits == 8 else (sub_x, sub_y)
    share = {(2, 2): 1, (2, 1): 2, (1, 1): 4}  # chroma samples per two luma samples
    richer = [own, *sorted((s for s in share if share[s] > share[own]), key=share.get)]
    poorer = sorted((s for s in share if share[s] < share[own]), key=share.get, reverse=True)
    if bits == 8:
        candidates = [(layout, 8) for layout in richer] + [(layout, 10) for layout in richer]
    else:
        # The input's depth, then less, then more (16-bit samples hold 10-bit ones without loss); each
        # with the input's chroma or more (upsampled chroma loses nothing), then less, then 8 bits.
        deep = [b for b in (16, 12, 10) if b <= bits] + [b for b in (12, 16) if b > bits]
        candidates = [(layout, b) for b in deep for layout in richer] + [(layout, b) for b in deep for layout in poorer]
        candidates += [(layout, 8) for layout in richer + poorer]
    supported = pixel_formats(codec)
    for layout, depth in candidates:
        candidate = planar_format(*layout, depth)
        if not supported or candidate in supported:
            shallow = bits > 8 >= depth
            return candidate, f"{codec} cannot encode {bits}-bit video: written at 8 bits" if shallow else None
    return planar_format(*own, 8), None  # nothing planar: the sink says what the encoder takes
