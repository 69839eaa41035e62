"""``upscale_video`` and ``upscale_image_file``: the library's whole-file entry points."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vidsr.backends import precision_of
from vidsr.backends.hwvideo import check_encoder, decode_hwaccel
from vidsr.errors import InputError, OutputError
from vidsr.hostbuffers import HostBatch
from vidsr.media import encoders
from vidsr.media.depth import SampleDepth
from vidsr.media.fieldscan import FieldScan
from vidsr.media.inputs import IMAGE_SUFFIXES, is_image
from vidsr.media.interlace import Interlace
from vidsr.media.sink import (
    EncodeOptions,
    VideoSink,
    VideoSpec,
    check_output_path,
    pixel_layout,
    remove_stale_partials,
    unknown_container,
)
from vidsr.media.source import DecodedFrame, VideoSource
from vidsr.media.tags import RANGE_FULL, ycbcr_format
from vidsr.pipeline import Pipeline
from vidsr.progress import progress_bar
from vidsr.stages import StageClock
from vidsr.upscaler import Upscaler, output_geometry

log = logging.getLogger(__name__)


@dataclass
class UpscaleSummary:
    """What a run did: returned by :func:`upscale_video`, printed by ``--json``."""

    input: str
    output: str
    model: str
    scale: int
    backend: str
    precision: str
    frames_in: int
    frames_out: int
    seconds: float
    fps: float
    width: int
    height: int
    corrupt_packets: int = 0
    warnings: list[str] = field(default_factory=list)
    interlace: dict[str, Any] | None = None  # what was detected about the input's fields, and done
    # Frames a second before and after: they differ where the output has another frame count than the
    # input (inverse telecine: 29.97 -> 23.976; field rate: twice the input's).
    frame_rate_in: float | None = None
    frame_rate_out: float | None = None
    # Start-up (the run's start, or the process's from the CLI, to the first frame written) apart from
    # the steady state (frames a second after the first batch), and seconds per stage (vidsr.stages).
    startup_s: float | None = None
    steady_fps: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    startup_phases: dict[str, float] = field(default_factory=dict)  # where startup_s went (StageClock)
    ensemble: bool = False  # the model's self-ensemble (--ensemble)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(
        cls,
        src: Path,
        final: Path,
        up: Upscaler,
        frames_in: int,
        frames_out: int,
        seconds: float,
        width: int,
        height: int,
        **extra: Any,
    ) -> UpscaleSummary:
        return cls(
            input=str(src),
            output=str(final),
            model=up.spec.name,
            scale=up.scale,
            backend=up.backend.name,
            precision=precision_of(up.backend),
            frames_in=frames_in,
            frames_out=frames_out,
            seconds=round(seconds, 3),
            fps=round(frames_out / seconds, 2) if seconds > 0 else 0.0,
            width=width,
            height=height,
            ensemble=getattr(up, "ensemble", False),  # bench stand-ins have none
            **extra,
        )


def default_output(src: Path, scale: int) -> Path:
    """``cctv.mp4`` -> ``cctv.x2.mp4`` beside the input."""
    return src.with_name(f"{src.stem}.x{scale}{src.suffix}")


def upscale_video(
    src: str | Path,
    dst: str | Path | None = None,
    *,
    model: str = "espcn",
    scale: int = 2,
    weights: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    backend: str = "auto",
    batch_size: int | None = None,
    tile_pixels: int | None = None,
    hwdec: str = "auto",
    encode: EncodeOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
    upscaler: Upscaler | None = None,
    on_frames: Callable[[int], None] | None = None,
    before_commit: Callable[[], None] | None = None,
    started: float | None = None,
    marks: dict[str, float] | None = None,
    fields: FieldScan | None = None,
) -> UpscaleSummary:
    """Upscale every frame of ``src`` into ``dst`` (default ``<stem>.x<scale><ext>``).

    Sound, subtitles and data are copied; timestamps and colour tags are kept.  ``hwdec``
    (none, auto, cuda) decodes with NVDEC (auto: where the model runs on CUDA and FFmpeg has NVDEC,
    measured twice as fast end to end on the first H200 run); ``tile_pixels`` bounds the frame size per model call.  The
    output appears under its final name only once complete.  Pass ``upscaler`` to
    reuse a loaded model across files, ``on_frames(n)`` to hear of frames as they are written,
    ``before_commit()`` to hear that the complete output is about to take its final name (a batch
    worker stops turning a stop request into an interruption there: the file is done).  ``started``:
    the :func:`time.perf_counter` time the summary's ``startup_s`` counts from (default: this call);
    ``marks``: earlier moments of the start-up by name (the CLI's ``model ready``), for ``startup_phases``;
    ``fields``: field detection started earlier on ``src`` with ``encode``'s deinterlace options
    (:class:`~vidsr.media.fieldscan.FieldScan`: the CLI's, which overlaps its model loading).
    """
    clock = StageClock(started=time.perf_counter() if started is None else started)
    for name, at in (marks or {}).items():
        clock.mark(name, at)
    src = Path(src)
    up = upscaler or Upscaler(
        model, scale, weights=weights, device=device, precision=precision, backend=backend, tile_pixels=tile_pixels
    )
    final = Path(dst) if dst is not None else default_output(src, up.scale)
    encode = encode or EncodeOptions()
    if encode.pix_fmt is not None:
        pixel_layout(encode.pix_fmt)  # a bad name fails before anything is decoded
    if encode.codec and encode.codec.endswith("_nvenc"):
        check_encoder(encode.codec)  # fail before decoding anything: most GPUs' NVENC limits, H100's absence
    if is_image(final):
        raise OutputError(f"cannot write {final}: a video cannot be written as an image; use .mp4, .mkv or .avi")
    if not final.suffix:
        raise OutputError(unknown_container(final))
    source_options = {"deinterlace": encode.deinterlace, "field_rate": encode.field_rate, "fields": fields}
    hwaccel = decode_hwaccel("none" if hwdec == "auto" and up.device.type != "cuda" else hwdec)
    batch = batch_size or (8 if up.device.type == "cuda" else 2)
    # On a GPU the first batch's model call (cuDNN's kernel choice, the CUDA graph) runs while the
    # input is still being opened; on a CPU a warm-up would only take cores from the opening.
    warm_up = partial(up.warm_up_in_background, batch) if up.device.type == "cuda" else None
    with VideoSource(src, hwaccel=hwaccel, clock=clock, on_size=warm_up, **source_options) as source:
        check_output_path(final, src, overwrite=overwrite)
        for note in remove_stale_partials(final):
            log.warning(note)
        layout = source.layout
        codec = encoders.codec_for(encoders.muxer_for(final), encode)
        pix_fmt, depth_note = encoders.output_format(encode.pix_fmt, codec, layout.sub_x, layout.sub_y, layout.bits)
        encode = replace(encode, pix_fmt=pix_fmt)
        sub_x, sub_y, bits_out = pixel_layout(pix_fmt)
        full_range = source.tags.color_range == RANGE_FULL
        depth_in, depth_out = SampleDepth(layout.bits, full_range), SampleDepth(bits_out, full_range)
        # Only deep video names its depths: 8-bit calls stay those of any upscaler (bench's stand-ins too).
        depths = {"depth_in": depth_in, "depth_out": depth_out} if depth_in.deep or depth_out.deep else {}
        geometry = output_geometry(layout.height, layout.width, up.scale, sub_x, sub_y)
        warnings = [note for note in (source.note, depth_note) if note]
        warnings += interlace_notes(source.interlace)
        if (geometry.height, geometry.width) != (layout.height * up.scale, layout.width * up.scale):
            warnings.append(f"output trimmed to {geometry.width}x{geometry.height}: {encode.pix_fmt} needs even sizes")
        fmt = ycbcr_format(source.tags)
        spec = VideoSpec(geometry.width, geometry.height, source.time_base, source.frame_rate, source.tags)
        clock.batch = batch

        def process(frames: list[DecodedFrame]) -> HostBatch:
            with clock.stage("upload"):
                planes = up.upload([f.planes for f in frames])
            with clock.stage("model"):
                out = up.upscale_planes(planes, fmt, fmt, geometry, **depths)
            return up.download(out)  # waited for in the encode thread (the pipeline's "download")

        sink = VideoSink(final, encode, spec, source.passthrough, source.metadata, clock=clock)
        clock.mark("input open")  # decoder (NVDEC), field detection, encoder set up
        began = time.perf_counter()
        try:
            with progress_bar(total=source.frames_estimate, desc=src.name, enabled=progress) as bar:

                def written(n: int) -> None:
                    bar.update(n)
                    if on_frames is not None:
                        on_frames(n)

                Pipeline(
                    source.items(),
                    process,
                    sink.write_frame,
                    sink.write_packet,
                    batch_size=batch,
                    on_frames=written,
                    clock=clock,
                ).run()
            sink.finish()
            if sink.report.frames != source.frames_decoded:
                raise OutputError(f"wrote {sink.report.frames} frames of {source.frames_decoded}; output discarded")
            if before_commit is not None:
                before_commit()
            sink.commit()
        except BaseException:
            sink.abort()
            raise
        seconds = time.perf_counter() - began
    if source.corrupt_packets:
        warnings.append(f"{src.name}: {source.corrupt_packets} damaged packets could not be decoded and were skipped")
    if source.damaged_frames:
        warnings.append(f"{src.name}: {source.damaged_frames} frames decoded with errors (concealed) and written")
    if sink.report.retimed:
        warnings.append(f"{sink.report.retimed} frames had duplicate timestamps and were nudged by one tick")
    for w in warnings:
        log.warning(w)
    # Already logged where they happened: stream changes (sink), the FP16 -> FP32 fallback (upscaler).
    warnings += sink.report.warnings + [w for w in up.warnings if w not in warnings]
    return UpscaleSummary.of(
        src,
        final,
        up,
        source.frames_read,
        sink.report.frames,
        seconds,
        geometry.width,
        geometry.height,
        corrupt_packets=source.corrupt_packets,
        warnings=warnings,
        interlace=source.interlace.describe(),
        frame_rate_in=round(float(source.input_frame_rate), 3),
        frame_rate_out=round(float(source.frame_rate), 3),
        startup_s=None if clock.startup_s is None else round(clock.startup_s, 3),
        steady_fps=None if clock.steady_fps is None else round(clock.steady_fps, 2),
        stage_seconds=clock.report(),
        startup_phases=clock.startup_phases,
    )


def interlace_notes(found: Interlace) -> list[str]:
    """What the user should know about fields left as they are, or an option that did nothing."""
    if found.detected != "progressive" and not found.deinterlace:
        return [f"input is interlaced ({found.reason}): upscaled as progressive, its combing magnified"]
    if found.field_rate and not found.deinterlace:
        return ["--field-rate does nothing: the input is not deinterlaced"]
    if found.field_rate and found.ivtc:
        return ["--field-rate does nothing with inverse telecine: the film's own frames come out"]
    return []


def upscale_image_file(
    src: str | Path,
    dst: str | Path | None = None,
    *,
    overwrite: bool = False,
    upscaler: Upscaler | None = None,
    **options: Any,
) -> UpscaleSummary:
    """Upscale a still image (PNG, JPEG, ...) into an image file of the same kind."""
    from PIL import Image, UnidentifiedImageError

    from vidsr.media.inputs import check_input_path

    src = Path(src)
    check_input_path(src)
    up = upscaler or Upscaler(**options)
    final = Path(dst) if dst is not None else default_output(src, up.scale)
    if not is_image(final):
        raise OutputError(
            f"cannot write {final}: an image input gives an image; use one of {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    check_output_path(final, src, overwrite=overwrite)
    for note in remove_stale_partials(final):
        log.warning(note)
    started = time.perf_counter()
    try:
        with Image.open(src) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read {src}: not an image, or damaged ({exc})") from None
    out = up.upscale_image(rgb)
    from vidsr.media.sink import output_error, temporary_path

    temp = temporary_path(final)
    try:
        Image.fromarray(out).save(temp, format=Image.registered_extensions().get(final.suffix.lower()))
        temp.replace(final)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise output_error(final, exc) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - started
    return UpscaleSummary.of(src, final, up, 1, 1, seconds, out.shape[1], out.shape[0])
