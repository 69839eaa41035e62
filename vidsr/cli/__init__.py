"""The ``vidsr`` command: a thin layer that parses, calls the library and maps errors."""

from __future__ import annotations

from vidsr.cli.main import cli, main

__all__ = ["cli", "main"]
