"""Command group, error handling and output helpers shared by every subcommand."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from vidsr import __version__
from vidsr.errors import VidsrError


class Context:
    """Per-invocation settings every subcommand can read: ``--debug``."""

    def __init__(self, debug: bool) -> None:
        self.debug = debug


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and Ctrl-C) into ``Error: ...`` and an exit code, no traceback.

    With ``--debug`` the exception propagates, traceback and all.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_object(Context) and ctx.find_object(Context).debug)
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
    ctx.obj = Context(debug)


def _register() -> None:
    # Explicit, in one place: a command exists because it is listed here.
    from vidsr.cli import info, upscale
    from vidsr.cli import train as training

    cli.add_command(upscale.upscale)
    cli.add_command(info.models)
    cli.add_command(info.probe)
    cli.add_command(training.train)
    cli.add_command(training.evaluate)


_register()


def main() -> None:
    # Global --debug may also appear after the subcommand, where users type it.
    argv = sys.argv[1:]
    if "--debug" in argv[1:] and argv[:1] != ["--debug"]:
        argv = ["--debug", *[a for a in argv if a != "--debug"]]
    cli.main(args=argv, prog_name="vidsr")
