"""The errors vidsr raises. The CLI turns each into a one-line ``Error: ...``."""

from __future__ import annotations


class VidsrError(Exception):
    """Base class: a problem the user can act on, with a message that says what and where."""


class InputError(VidsrError):
    """The input is missing, unreadable, not media, damaged or has nothing to upscale."""


class UnsupportedError(InputError):
    """The input is valid media but holds something vidsr cannot process."""


class OutputError(VidsrError):
    """The output cannot be written (exists, unwritable, disk full)."""


class ModelError(VidsrError):
    """Unknown model, unsupported scale, missing or mismatched weights."""


class BackendError(VidsrError):
    """The requested inference backend is unavailable or failed."""


class Interrupted(KeyboardInterrupt):
    """A stop signal other than Ctrl-C (SIGTERM), raised where Ctrl-C would raise KeyboardInterrupt;
    ``signum`` says which (the CLI exits 128 + signum)."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum
