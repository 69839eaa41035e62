"""Planar Y'CbCr pixel formats by name: chroma layout and depth (no PyTorch here: the CLI's option
parsing and the encoder choice need these before anything loads a model)."""

from __future__ import annotations

# Planar Y'CbCr output formats: name -> (chroma subsampling x, y, bits per sample).
_CHROMA = {"420": (2, 2), "422": (2, 1), "444": (1, 1)}
PLANAR = {
    **{f"yuv{c}p": (*s, 8) for c, s in _CHROMA.items()},
    **{f"yuvj{c}p": (*s, 8) for c, s in _CHROMA.items()},
    **{f"yuv{c}p{b}le": (*s, b) for c, s in _CHROMA.items() for b in (10, 12, 16)},
}


def planar_format(sub_x: int, sub_y: int, bits: int) -> str:
    """The planar format with this chroma layout and depth (10, 12 or 16 bits: little-endian)."""
    chroma = next(c for c, s in _CHROMA.items() if s == (sub_x, sub_y))
    return f"yuv{chroma}p" if bits == 8 else f"yuv{chroma}p{bits}le"


def storage_bits(bits: int) -> int:
    """The depth a decoded format is kept at: 8, else the next of 10, 12, 16."""
    return next(b for b in (8, 10, 12, 16) if bits <= b)
