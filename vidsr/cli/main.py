"""Command group, error handling and output helpers shared by every subcommand."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from vidsr import __version__
from vidsr.errors import VidsrError


class Context:
    """Per-invocation settings every subcommand can read: ``--debug``."""

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Context).debug = True


def debug_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--debug`` on a subcommand too, where users type it: tracebacks instead of one-line errors."""
    return click.option(
        "--debug", is_flag=True, expose_value=False, callback=_set_debug, help="Show full tracebacks on errors."
    )(fn)


class _WarningHandler(logging.Handler):
    """Library warnings as ``Warning: ...`` lines on stderr, clear of any progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(f"Warning: {record.getMessage()}", file=sys.stderr)


def setup_logging(debug: bool) -> None:
    root = logging.getLogger("vidsr")
    if not any(isinstance(h, _WarningHandler) for h in root.handlers):
        root.addHandler(_WarningHandler())
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and Ctrl-C) into ``Error: ...`` and an exit code, no traceback.

    With ``--debug`` the exception propagates, traceback and all.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = ctx.ensure_object(Context).debug
        setup_logging(debug)
        try:
            return fn(*args, **kwargs)
        except VidsrError as exc:
            if debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("Error: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # `vidsr models | head`: the reader left; not an error worth a word.
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stderr at exit
            ctx.exit(0)
        except OSError as exc:
            if debug:
                raise
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)

    return wrapper


def emit_json(payload: Any) -> None:
    """Machine-readable output on stdout: one JSON document."""
    click.echo(json.dumps(payload, indent=2, default=str))


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
    cli.add_command(gpu.export_onnx)
    cli.add_command(gpu.build_engine)
    cli.add_command(gpu.bench)


_register()


def main() -> None:
    cli.main(prog_name="vidsr")
