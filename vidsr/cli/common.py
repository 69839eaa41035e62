"""What every subcommand shares: ``--debug``, logging, errors mapped to ``Error: ...`` and exit codes,
SIGTERM treated as Ctrl-C, JSON output.  Subcommand modules import this; :mod:`vidsr.cli.main` imports
the subcommands: imports run one way.

Exit codes: 0 success; 1 an error (one ``Error:`` line); 2 a bad option or argument (click's usage
error, with the usage line); 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

from vidsr.errors import Interrupted, VidsrError


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
    """vidsr's warnings on stderr."""
    root = logging.getLogger("vidsr")
    if not any(isinstance(h, _WarningHandler) for h in root.handlers):
        root.addHandler(_WarningHandler())
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False


def quiet_ffmpeg() -> None:
    """``--quiet`` / ``--json``: encoders that print past FFmpeg's (silenced) log, libx265, to errors."""
    from vidsr.media.encoders import quiet_encoders  # not the sink: it would import PyTorch before the field scan

    quiet_encoders()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a service manager, a CI timeout) stops like Ctrl-C: the partial output is
    removed and the exit code says which signal (143).  Main thread only; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and Ctrl-C, SIGTERM) into ``Error: ...`` and an exit code, no traceback.

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
        except KeyboardInterrupt as exc:
            if debug:
                raise
            signum = getattr(exc, "signum", signal.SIGINT)
            by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
            click.echo(f"Error: interrupted{by}", err=True)
            ctx.exit(128 + signum)
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
