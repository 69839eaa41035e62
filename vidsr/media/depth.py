"""Sample depth: 8-bit planes for 8-bit video (the fast path), 16-bit planes for 10- and 12-bit masters.

Code values become floats the way the 8-bit path does it, so the colour maths (made for 8-bit
normalised values) holds at any depth: limited range divides by ``255 * 2**(bits - 8)`` (10-bit
black 64 and white 940 land where 8-bit 16 and 235 do), full range by ``2**bits - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SampleDepth:
    bits: int = 8
    full_range: bool = False

    @property
    def deep(self) -> bool:
        return self.bits > 8

    @property
    def peak(self) -> float:
        """The code value that stands for 1.0."""
        return float((1 << self.bits) - 1) if self.full_range else 255.0 * (1 << (self.bits - 8))

    @property
    def max_code(self) -> int:
        return (1 << self.bits) - 1

    @property
    def dtype(self) -> type:
        return np.uint16 if self.deep else np.uint8


EIGHT_BIT = SampleDepth()


# Deep planes travel through torch as int16 tensors holding the uint16 bit patterns: torch's uint16
# has copies and casts on the CPU but not every CUDA kernel, and int16 has them all.
def to_torch(plane: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(plane.view(np.int16) if plane.dtype == np.uint16 else plane)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    a = t.numpy()
    return a.view(np.uint16) if a.dtype == np.int16 else a


def to_float(codes: torch.Tensor, depth: SampleDepth) -> torch.Tensor:
    """Code values (uint8, or uint16 bits in int16) to float32, 1.0 at ``depth.peak``."""
    if codes.device.type == "cpu":
        # numpy's single-threaded ufuncs: torch's elementwise ops fork their threads per op, which on
        # two shared cores costs more than the arithmetic (as vidsr.resample.to_uint8 measured).
        a = codes.numpy()
        a = a.view(np.uint16) if a.dtype == np.int16 else a
        return torch.from_numpy(np.multiply(a, np.float32(1.0 / depth.peak), dtype=np.float32))
    wide = codes.to(torch.int32)
    if codes.dtype == torch.int16:
        wide.bitwise_and_(0xFFFF)  # undo the sign the int16 view gave codes above 32767
    return wide.to(torch.float32).div_(depth.peak)


def quantise(x: torch.Tensor, depth: SampleDepth) -> torch.Tensor:
    """float32 (1.0 at the peak) to rounded code values: uint8, or for deep formats uint16 bits in int16."""
    if x.device.type == "cpu":
        a = x.detach().float().numpy()
        t = np.multiply(a, np.float32(depth.peak), dtype=np.float32)
        np.rint(t, out=t)
        np.clip(t, 0.0, float(depth.max_code), out=t)
        out = t.astype(np.uint16 if depth.deep else np.uint8)
        return torch.from_numpy(out.view(np.int16) if depth.deep else out)
    codes = x.mul(depth.peak).round_().clamp_(0.0, float(depth.max_code))
    if not depth.deep:
        return codes.to(torch.uint8)
    return codes.to(torch.int32).to(torch.int16)  # two's complement: the low 16 bits, as uint16 stores them
