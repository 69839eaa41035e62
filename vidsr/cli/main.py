"""The ``vidsr`` command group: the subcommands, listed in one place.  Their shared helpers live in
:mod:`vidsr.cli.common` (re-exported here for older imports)."""

from __future__ import annotations

import click

from vidsr import __version__
from vidsr.cli.common import Context, debug_option, emit_json, handle_errors, setup_logging

__all__ = ["Context", "cli", "debug_option", "emit_json", "handle_errors", "main", "setup_logging"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidsr")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """vidsr: learned super-resolution for video, streaming, frame-exact."""
    ctx.ensure_object(Context).debug = debug


def _register() -> None:
    # Explicit, in one place: a command exists because it is listed here.
    from vidsr.cli import batch, gpu, info, upscale
    from vidsr.cli import train as training

    cli.add_command(upscale.upscale)
    cli.add_command(batch.batch)
    cli.add_command(info.models)
    cli.add_command(info.probe)
    cli.add_command(training.train)
    cli.add_command(training.evaluate)
    cli.add_command(training.calibrate)
    cli.add_command(gpu.export_onnx)
    cli.add_command(gpu.build_engine)
    cli.add_command(gpu.bench)


_register()


def main() -> None:
    from vidsr.bytecode import keep_bytecode

    keep_bytecode()  # before any command imports PyTorch
    cli.main(prog_name="vidsr")
