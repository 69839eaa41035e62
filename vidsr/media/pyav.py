"""What changed between PyAV 18 and 19, handled in one place.

PyAV 19 (the only release with wheels for Python 3.13+, and what pip installs on 3.12) removed
``av.open(metadata_errors=...)``: tags are always read as UTF-8 with ``surrogateescape``, which is
byte exact (a tag in another encoding survives as lone surrogates and is written back as the same
bytes). PyAV 18's default is strict, so a file with one non-UTF-8 tag would not open at all; vidsr
asked it to replace such bytes.  PyAV 19 also returns :class:`av.AVRational` for every rate and time
base (never None; an unset one is the falsy 0/1), which has no ``limit_denominator``, ``int()`` or
``round()``; arithmetic on it gives a :class:`~fractions.Fraction`.

So: open files with :func:`open_container`, turn a stream's rationals into Fractions with
:func:`fraction` where they leave PyAV, and make a tag printable with :func:`text` where it is shown
(the tags themselves are carried over untouched).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av

PYAV_MAJOR = int(av.__version__.split(".")[0])


def open_container(path: Path | str, mode: str = "r", **options: Any) -> Any:
    """``av.open`` for a file path; on reading, damaged (non-UTF-8) tags never stop it."""
    if mode == "r" and PYAV_MAJOR < 19:
        options.setdefault("metadata_errors", "replace")
    return av.open(str(path), mode=mode, **options)


def fraction(value: Any) -> Fraction | None:
    """A PyAV rational (Fraction on 18, AVRational on 19) as a Fraction; None when unset (None or 0)."""
    if not value:
        return None
    return Fraction(value.numerator, value.denominator)


def text(value: str) -> str:
    """A tag as printable UTF-8: the bytes PyAV 19 kept as surrogates become U+FFFD, as 18's reading did."""
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that did not come from a byte
        raw = value.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")
