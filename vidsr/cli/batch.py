"""``vidsr batch``: many videos into one output folder, resumable, one bad file never stops the rest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from vidsr.cli.common import debug_option, emit_json, handle_errors, quiet_ffmpeg
from vidsr.cli.options import ModelChoice, encode_options, model_options

if TYPE_CHECKING:
    from vidsr.media.encoders import EncodeOptions


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUTS...")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder: mirrors the input tree, holds vidsr-manifest.jsonl.",
)
@model_options
@encode_options
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Workers [default: one per GPU, else 1].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads per worker [cores / workers].")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="Ray cluster address (with --executor ray) [start a local Ray].")
@click.option(
    "--segment-seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="Cut videos at keyframes into pieces of about this length, upscale them in parallel, join them.",
)
@click.option(
    "--retry",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Rerun a failed input up to this many more times on later runs.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no notes; the summary still prints.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@debug_option
@handle_errors
def batch(
    inputs: tuple[str, ...],
    out_dir: Path,
    choice: ModelChoice,
    hwdec: str,
    encode: EncodeOptions,
    jobs: int | None,
    threads: int | None,
    executor: str,
    address: str | None,
    segment_seconds: float | None,
    retry: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Upscale every video in INPUTS into the folder given by -o.

    INPUTS are files, folders (searched recursively; videos found by content),
    quoted globs ('in/**/*.avi'), or @LIST: a text file with one path per line
    (relative to the list's folder; # starts a comment).  Outputs mirror the
    input tree under -o; a manifest there records every input's state.
    Rerunning the same command resumes: finished outputs are kept, failed ones
    retried (--retry), interrupted ones restarted.  Exit status 0 only if every
    input is done.
    """
    from vidsr.batch import BatchOptions, RuntimeSettings, UpscaleSettings, format_summary, run_batch

    if quiet or as_json:
        quiet_ffmpeg()
    options = BatchOptions(
        out_dir=out_dir,
        upscale=UpscaleSettings(
            choice.model, choice.scale, str(choice.weights) if choice.weights else None, encode, choice.ensemble
        ),
        runtime=RuntimeSettings(
            choice.device,
            choice.precision,
            choice.backend,
            choice.batch_size,
            threads,
            tile_pixels=choice.tile_pixels,
            compile=choice.compile,
            engine_dir=str(choice.engine_dir) if choice.engine_dir else None,
            hwdec=hwdec,
        ),
        jobs=jobs,
        executor=executor,
        address=address,
        segment_seconds=segment_seconds,
        retry=retry,
        progress=not quiet and not as_json,
    )
    report = run_batch(inputs, options)
    if as_json:
        emit_json(report.to_dict())
    else:
        if not quiet:
            for note in report.notes:
                click.echo(f"Note: {note}", err=True)
        click.echo(format_summary(report))
    click.get_current_context().exit(report.exit_code)
