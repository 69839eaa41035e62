"""Long videos in pieces: cut at keyframes, upscale the pieces independently, join them losslessly.

* :func:`split` copies the video packets (no re-encode) from one clean keyframe to the next into
  piece files under ``OUT_DIR/.vidsr-work/``.  Pieces are NUT files: NUT holds any codec and keeps
  every timestamp exactly (its time base is a refinement of the input's, so ``pts * tb`` is the same
  number), where Matroska would round to milliseconds.
* Each piece is upscaled by :func:`vidsr.video.upscale_video` like any file; output frames keep
  their input timestamps, so piece outputs carry the original presentation times.
* :func:`join` copies the upscaled pieces' video packets and the original file's audio, subtitle
  and data packets into the final container, interleaved by time, under a temporary name that is
  renamed when complete.  Decode timestamps are rebuilt for the joined stream (see :func:`_decode_times`)
  because each piece's encoder started its own B-frame delay from scratch.

A keyframe is a clean cut only if no packet before it is shown after it and none after it is shown
before it: an open-GOP I-frame's leading B-frames need the previous GOP, and would be lost or damaged
in a piece of their own.  Files without such cuts are simply not split.

Telecined film is cut only on its cadence (see :meth:`vidsr.media.cadence.CadenceScan.clean_cut`): at the
start of a decimation cycle of the whole file, between two whole film frames, so no film picture has
fields in two pieces and each piece decimates on the cycles one pass would.  Each piece is told where its
cycles begin (``interlace.CADENCE_TAG``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av

from vidsr.errors import InputError, OutputError
from vidsr.media import cadence, interlace, metadata
from vidsr.media.inputs import open_input, video_stream
from vidsr.media.passthrough import Passthrough
from vidsr.media.pyav import fraction
from vidsr.media.sink import output_error, temporary_path

PIECE_FORMAT = "nut"
# Pieces are written with every timestamp moved this far later, and moved back on joining.  Why: an
# encoder with B-frames starts its decode times before the first frame's presentation time, and a
# muxer that cannot store negative times (NUT) then shifts the whole piece, pts included.  An hour
# is far more than any B-frame delay, so nothing in a piece is ever negative and nothing is shifted.
PIECE_OFFSET_SECONDS = 3600
_LOOKAHEAD = 32  # packets after a keyframe checked for leading pictures (B-frame reorder depth is far less)
_PROBE_PACKETS = 24  # packets decoded to see that each holds a whole picture (both fields)


@dataclass(frozen=True)
class Segment:
    index: int
    source: Path  # the stream-copied piece of the input
    output: Path  # its upscaled version
    packets: int  # video packets with data: the frames the piece must decode to
    start: float  # seconds, for messages
    first_frame: int = 0  # the file's frame the piece begins with


@dataclass(frozen=True)
class SegmentPlan:
    id: str  # changes when the input or the cut points change: old pieces are then not reused
    segments: tuple[Segment, ...]
    fields: interlace.Interlace | None = None  # the whole file's, told to every piece


@dataclass(frozen=True)
class _Packet:
    time: int  # pts, else dts, in the stream's time base
    keyframe: bool


def plan(src: Path, work: Path, seconds: float, deinterlace: str = "auto") -> SegmentPlan:
    """Where ``src`` will be cut: at the first clean keyframe at least ``seconds`` after each cut (for
    telecined film, the first also on its cadence).  ``deinterlace``: the run's mode, for the verdict."""
    packets, time_base = _scan(src)
    fields = whole_file_fields(src, deinterlace)
    on_cadence = cadence_cuts(src, fields)
    cuts = [0]
    seen_max: int | None = None
    whole = whole_pictures(src)
    for i, p in enumerate(packets):
        if (
            whole
            and i > 0
            and p.keyframe
            and on_cadence(i)
            and float((p.time - packets[cuts[-1]].time) * time_base) >= seconds
            and seen_max is not None
            and seen_max < p.time
            and all(q.time >= p.time for q in packets[i + 1 : i + 1 + _LOOKAHEAD])
        ):
            cuts.append(i)
        seen_max = p.time if seen_max is None else max(seen_max, p.time)
    stat = src.stat()
    told = _piece_tags(fields, 0)
    key = f"{src.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{cuts}|{sorted(told.items())}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    bounds = [*cuts, len(packets)]
    segments = tuple(
        Segment(
            index=k,
            source=work / f"src-{k:04d}.{PIECE_FORMAT}",
            output=work / f"up-{k:04d}.{PIECE_FORMAT}",
            packets=bounds[k + 1] - bounds[k],
            start=float((packets[bounds[k]].time - packets[0].time) * time_base),
            first_frame=bounds[k],
        )
        for k in range(len(cuts))
    )
    return SegmentPlan(digest, segments, fields)


def whole_file_fields(src: Path, deinterlace: str = "auto") -> interlace.Interlace:
    """The fields of the whole file, judged once (a piece alone could look otherwise: a still start, a
    container flag NUT drops, a cadence that starts mid-cycle)."""
    mode = deinterlace if deinterlace in ("auto", "ivtc") else "auto"
    with open_input(src) as container:
        return interlace.detect(src, video_stream(container, src), mode)


def cadence_cuts(src: Path, fields: interlace.Interlace) -> Callable[[int], bool]:
    """Which frames a piece of ``src`` may begin with, as far as its cadence goes: any, unless it is
    inverse telecined; then those :meth:`cadence.CadenceScan.clean_cut` allows, from a scan of every
    frame (the one that found the film may have looked at windows)."""
    if not fields.ivtc or fields.telecine is None:
        return lambda index: True
    with open_input(src) as container:
        index = video_stream(container, src).index
    scanned = cadence.scan(src, index, cadence.ScanOptions(full_seconds=math.inf))
    cycle_start = fields.telecine.cycle_start
    return lambda frame: scanned.clean_cut(frame, cycle_start)


def _piece_tags(fields: interlace.Interlace | None, first_frame: int) -> dict[str, str]:
    """The tags that tell a piece beginning at ``first_frame`` what the whole file's fields are."""
    if fields is None:
        return {}
    tags = {interlace.VERDICT_TAG: fields.detected}
    if fields.ivtc and fields.telecine is not None:
        tags[interlace.CADENCE_TAG] = fields.telecine.tag(first_frame)
    return tags


def whole_pictures(src: Path, packets: int = _PROBE_PACKETS) -> bool:
    """Whether each video packet of ``src`` holds a whole picture, judged on its first ``packets``.

    Not always so: field-coded H.264 (PAFF) and MPEG-2 field pictures may store the two fields of a
    frame in two packets, and a cut between them would split a field pair (each piece decoding a
    lone field).  Such files are not cut.  Decoding the first packets shows it: they give fewer
    pictures than packets."""
    sent = pictures = 0
    with open_input(src) as container:
        video = video_stream(container, src)
        try:
            for packet in container.demux(video):
                if packet.size and sent == packets:
                    pictures += len(video.decode(None))  # what the decoder still holds
                    break
                sent += bool(packet.size)
                pictures += len(packet.decode())  # the end-of-file packet (size 0) drains the decoder
        except av.error.FFmpegError:
            return False  # what cannot be decoded cleanly is not cut either
    return sent > 0 and pictures >= sent


def _scan(src: Path) -> tuple[list[_Packet], Fraction]:
    packets: list[_Packet] = []
    with open_input(src) as container:
        video = video_stream(container, src)
        try:
            for packet in container.demux(video):
                if packet.size == 0:
                    continue
                time = packet.pts if packet.pts is not None else packet.dts
                if time is None:
                    # No timestamps at all: cut points cannot be placed; one piece (no split) it is.
                    return [_Packet(0, True)], fraction(video.time_base)
                packets.append(_Packet(time, bool(packet.is_keyframe)))
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read {src}: damaged or truncated ({exc.strerror})") from None
        if not packets:
            raise InputError(f"cannot read {src}: no video packets")
        return packets, fraction(video.time_base)


def split(src: Path, segment_plan: SegmentPlan) -> None:
    """Write the pieces of ``segment_plan`` that are not on disk yet (each under a temporary name first)."""
    wanted = [s for s in segment_plan.segments if not s.source.exists()]
    if not wanted:
        return
    wanted_index = {s.index for s in wanted}
    bounds = []
    start = 0
    for s in segment_plan.segments:
        bounds.append((start, start + s.packets))
        start += s.packets
    # The fields are judged once, on the whole file, and each piece told (see interlace.VERDICT_TAG).
    fields = segment_plan.fields or whole_file_fields(src)
    with open_input(src) as container:
        video = video_stream(container, src)
        time_base = fraction(video.time_base)
        n = 0
        current: tuple[Segment, av.container.OutputContainer, av.stream.Stream, Path] | None = None
        try:
            for packet in container.demux(video):
                if packet.size == 0:
                    continue
                k = next(i for i, (a, b) in enumerate(bounds) if a <= n < b)
                n += 1
                if current is not None and current[0].index != k:
                    _close_piece(current)
                    current = None
                if k not in wanted_index:
                    continue
                if current is None:
                    seg = segment_plan.segments[k]
                    temp = seg.source.with_name(seg.source.name + ".partial")
                    out = av.open(str(temp), "w", format=PIECE_FORMAT)
                    stream = out.add_stream_from_template(video)
                    stream.time_base = time_base
                    stream.metadata.update(_piece_tags(fields, seg.first_frame))
                    current = (seg, out, stream, temp)
                offset = piece_offset(time_base)
                packet.pts = None if packet.pts is None else packet.pts + offset
                packet.dts = None if packet.dts is None else packet.dts + offset
                packet.stream = current[2]
                current[1].mux(packet)
            if current is not None:
                _close_piece(current)
                current = None
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError) and current is not None:
                raise output_error(current[0].source, exc) from None
            raise InputError(f"cannot split {src}: {exc.strerror or exc}") from None
        except OSError as exc:
            raise output_error(current[0].source if current else src, exc) from None
        finally:
            if current is not None:
                current[1].close()
                current[3].unlink(missing_ok=True)


def piece_offset(time_base: Fraction) -> int:
    """:data:`PIECE_OFFSET_SECONDS` in ticks of ``time_base`` (a whole number, so exactly undone)."""
    return math.ceil(PIECE_OFFSET_SECONDS / time_base)


def _close_piece(current: tuple[Segment, av.container.OutputContainer, av.stream.Stream, Path]) -> None:
    seg, out, _, temp = current
    out.close()
    os.replace(temp, seg.source)


def join(segment_plan: SegmentPlan, src: Path, final: Path) -> tuple[int, list[str]]:
    """Join the upscaled pieces with ``src``'s other streams into ``final``; returns (frames, warnings)."""
    outputs = [s.output for s in segment_plan.segments]
    warnings: list[str] = []
    with open_input(src) as original:
        source_video = video_stream(original, src)
        passthrough = metadata.side_streams(original, source_video)
        times, delay, time_base = _piece_times(outputs, fraction(source_video.time_base))
        dts = _decode_times(times, delay)
        meta = _metadata(src, original, source_video, outputs[0])
        temp = temporary_path(final)
        try:
            out = av.open(str(temp), "w")
        except (av.error.FFmpegError, OSError) as exc:
            raise output_error(final, exc) from None
        try:
            with av.open(str(outputs[0])) as first:
                ov = out.add_stream_from_template(first.streams.video[0])
            ov.time_base = time_base
            others = Passthrough(out, passthrough, final)
            warnings += others.warnings
            metadata.apply(out, ov, meta)
            offset = _offset_seconds(fraction(source_video.time_base)) / time_base
            frames = _interleave(out, outputs, ov, time_base, int(offset), dts, original, passthrough, others)
            others.flush()
            out.close()
            dropped = metadata.dropped_warning(final, temp, meta, others.tags)
            warnings += [dropped] if dropped else []
            os.replace(temp, final)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                out.close()
            temp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise output_error(final, exc) from None
            if isinstance(exc, av.error.FFmpegError):
                raise OutputError(f"cannot join the pieces of {src} into {final}: {exc}") from None
            raise
    return frames, warnings


def _metadata(
    src: Path, original: av.container.InputContainer, video: av.video.stream.VideoStream, piece: Path
) -> metadata.Metadata:
    """The original's metadata for the joined file; its field order as the pieces left it."""
    meta = metadata.read(original, video, metadata.first_matrix(src, video.index))
    with av.open(str(piece)) as p:
        if p.streams.video[0].metadata.get(interlace.VERDICT_TAG) == interlace.DEINTERLACED:
            meta = replace(meta, field_order=metadata.FIELD_PROGRESSIVE)
    return meta


def _rescale(value: int, src: Fraction, dst: Fraction, where: Path) -> int:
    exact = Fraction(value) * src / dst
    if exact.denominator != 1:
        raise OutputError(f"cannot join {where}: timestamp {value}*{src} is not a whole number of {dst} ticks")
    return int(exact)


def _offset_seconds(time_base: Fraction) -> Fraction:
    return piece_offset(time_base) * time_base


def _piece_times(outputs: list[Path], time_base: Fraction) -> tuple[list[int], int, Fraction]:
    """Presentation times of every video packet of the pieces, in decode order; the largest reorder
    delay an encoder declared (B-frame pyramid depth); and the clock they are counted in: the input's,
    or half of it where the pieces hold one picture per field (the second fields fall midway), or the
    finer one inverse telecine's film frames need."""
    seconds: list[Fraction] = []
    delay = 0
    offset = _offset_seconds(time_base)
    for path in outputs:
        with av.open(str(path)) as piece:
            stream = piece.streams.video[0]
            delay = max(delay, stream.codec_context.has_b_frames or 0)
            for packet in piece.demux(stream):
                if packet.size:
                    if packet.pts is None:
                        raise OutputError(f"cannot join {path}: a packet has no timestamp")
                    seconds.append(packet.pts * stream.time_base - offset)
    # Inverse telecine times film frames in a finer clock than the input's (a quarter frame interval):
    # the coarsest clock holding every piece timestamp exactly.
    finest = Fraction(1, math.lcm(*(Fraction(t).denominator for t in seconds))) if seconds else time_base
    for clock in (time_base, time_base / 2, finest):
        ticks = [t / clock for t in seconds]
        if all(t.denominator == 1 for t in ticks):
            return [int(t) for t in ticks], delay, clock
    raise OutputError(f"cannot join {outputs[0].parent}: piece timestamps are not whole ticks of {time_base}")


def _decode_times(pts: list[int], declared_delay: int) -> list[int]:
    """Strictly increasing decode times, each no later than its packet's presentation time.

    As x264 does: with a reorder delay ``d``, packet ``i`` decodes at the ``i-d``-th presentation
    time (sorted), and the first ``d`` at their own sorted time minus the delay span.  ``d`` is the
    largest of what the encoder declared and what the packets need (how far a packet's rank in
    presentation order lags its position in decode order), so ``dts <= pts`` always holds.
    """
    order = sorted(pts)
    if len(set(order)) != len(order):
        raise OutputError("cannot join: two frames share a timestamp")
    rank = {t: r for r, t in enumerate(order)}
    d = max([declared_delay, *(i - rank[t] for i, t in enumerate(pts))])
    d = min(d, len(order) - 1)
    span = order[d] - order[0]
    return [order[i] - span if i < d else order[i - d] for i in range(len(pts))]


def _interleave(out, outputs, ov, time_base, offset, dts, original, passthrough, others: Passthrough) -> int:
    """Mux video (pieces in order) and passthrough packets, earliest decode time first, so the muxer's
    interleaving queue stays short however long the file is."""
    video = _video_packets(outputs, ov, time_base, offset, dts)
    extra = (p for p in original.demux(*passthrough) if others.wants(p)) if passthrough else iter(())
    v = next(video, None)
    o = next(extra, None)
    frames = 0
    while v is not None or o is not None:
        if o is None or (v is not None and _seconds(v) <= _seconds(o)):
            out.mux(v)
            frames += 1
            v = next(video, None)
        else:
            others.write(o)
            o = next(extra, None)
    return frames


def _seconds(packet: av.Packet) -> Fraction:
    t = packet.dts if packet.dts is not None else (packet.pts or 0)
    return Fraction(t) * packet.time_base


def _video_packets(outputs, ov, time_base, offset, dts):
    i = 0
    for path in outputs:
        with av.open(str(path)) as piece:
            stream = piece.streams.video[0]
            for packet in piece.demux(stream):
                if not packet.size:
                    continue
                pts = _rescale(packet.pts, stream.time_base, time_base, path) - offset
                duration = packet.duration
                packet.stream = ov
                packet.time_base = time_base
                packet.pts, packet.dts = pts, dts[i]
                if duration:
                    packet.duration = _rescale_round(duration, stream.time_base, time_base)
                i += 1
                yield packet


def _rescale_round(value: int, src: Fraction, dst: Fraction) -> int:
    return max(1, round(Fraction(value) * src / dst))
