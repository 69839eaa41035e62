"""``vidsr upscale``: one video (or still image) in, its upscaled twin out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vidsr.cli.common import debug_option, emit_json, handle_errors, quiet_ffmpeg, sigterm_as_interrupt
from vidsr.cli.options import ModelChoice, encode_options, model_options

if TYPE_CHECKING:
    from vidsr.media.encoders import EncodeOptions


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output file [default: INPUT.x<scale>.<ext>].")
@model_options
@encode_options
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads for the model (openvino, onnxruntime, torch-cpu) [all cores; the codecs share them].",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@debug_option
@handle_errors
@sigterm_as_interrupt()
def upscale(
    input_path: Path,
    output: Path | None,
    choice: ModelChoice,
    hwdec: str,
    encode: EncodeOptions,
    threads: int | None,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Upscale INPUT (a video, or a PNG/JPEG image) with a super-resolution model.

    Sound, subtitles, timestamps and colour tags are kept; the output appears
    under its final name only once complete.
    """
    from vidsr.media.fieldscan import FieldScan
    from vidsr.media.inputs import check_input_path, is_image

    check_input_path(input_path)  # before loading a model: a typo should not wait for weights
    if quiet or as_json:
        quiet_ffmpeg()
    # Field detection decodes up to the input's first 60 frames: it runs while PyTorch and the model load.
    image = is_image(input_path)
    fields = None if image else FieldScan(input_path, encode.deinterlace, encode.field_rate)
    # On a GPU, its context and cuDNN are set up while the other imports and the weights load.
    from vidsr.cuda_setup import start_cuda_setup

    cuda_setup = start_cuda_setup(choice.device, choice.backend, choice.precision)

    from vidsr.media.sink import check_output_path
    from vidsr.stages import process_started
    from vidsr.video import default_output, upscale_image_file, upscale_video

    # Before loading a model too: a wrong output folder, or one that exists, should not wait for weights.
    check_output_path(output or default_output(input_path, choice.scale), input_path, overwrite=overwrite)

    if threads:
        import torch

        torch.set_num_threads(threads)  # torch-cpu's model threads; onnxruntime gets them below
    try:
        up = choice.upscaler(threads)
    finally:
        if cuda_setup is not None:
            cuda_setup.join()  # before any model call: nothing of it may run beside a CUDA graph's capture
    model_ready = time.perf_counter()  # imports, the weights, the backend and its device
    if not quiet and not as_json:
        click.echo(f"vidsr: {up.describe()}", err=True)
    if image:
        summary = upscale_image_file(input_path, output, overwrite=overwrite, upscaler=up)
    else:
        summary = upscale_video(
            input_path,
            output,
            batch_size=choice.batch_size,
            encode=encode,
            hwdec=hwdec,
            overwrite=overwrite,
            progress=not quiet and not as_json,
            upscaler=up,
            started=process_started(),  # start-up as the user waits for it: imports and model loading too
            marks={"model ready": model_ready},
            fields=fields,
        )
    if as_json:
        emit_json(summary.to_dict())
    elif not quiet:
        click.echo(
            f"{summary.output}: {summary.frames_out} frames, {summary.width}x{summary.height}, "
            f"{summary.seconds:.1f} s ({summary.fps:.1f} fps{_startup_and_steady(summary)})",
            err=True,
        )
        fields = summary.interlace
        if fields and fields.get("ivtc"):
            click.echo(
                f"inverse telecine: {summary.frames_in} frames at {summary.frame_rate_in} fps in, "
                f"{summary.frames_out} at {summary.frame_rate_out} fps out ({fields['reason']})",
                err=True,
            )
        elif fields and fields["deinterlaced"]:
            click.echo(f"deinterlaced: {fields['done']} ({fields['reason']})", err=True)


def _startup_and_steady(summary) -> str:
    """``; first frame after 2.1 s, then 11.3 fps``: what the plain fps averages over."""
    if summary.startup_s is None:
        return ""
    steady = f", then {summary.steady_fps:.1f} fps" if summary.steady_fps else ""
    return f"; first frame after {summary.startup_s:.1f} s{steady}"
