"""Geometric self-ensemble: a model run on the eight flips and transposes of its input, each output
turned back, and the eight averaged (Lim et al., EDSR, 2017).

A convolutional network is not exactly equivariant to those turns, so its eight answers differ in
their errors, and their mean is closer to the truth: on the selection photos ESPCN robust x2
gained 0.14 dB more over bicubic on the mean of issue 24's six degradations, 0.26 dB on aliased
input (``--ensemble``; README, Quality).  It costs eight model calls a frame.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# (transpose, flip width, flip height): the dihedral group of the square, identity first.
TURNS: tuple[tuple[bool, bool, bool], ...] = tuple((bool(k & 4), bool(k & 1), bool(k & 2)) for k in range(8))


def _turn(x: torch.Tensor, transpose: bool, flip_w: bool, flip_h: bool) -> torch.Tensor:
    if transpose:
        x = x.transpose(-1, -2)
    if flip_w:
        x = x.flip(-1)
    if flip_h:
        x = x.flip(-2)
    return x


def _unturn(y: torch.Tensor, transpose: bool, flip_w: bool, flip_h: bool) -> torch.Tensor:
    if flip_h:
        y = y.flip(-2)
    if flip_w:
        y = y.flip(-1)
    if transpose:
        y = y.transpose(-1, -2)
    return y


def self_ensemble(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, transpose: bool = True
) -> torch.Tensor:
    """The mean of ``fn`` over the turns of ``x`` (N, C, H, W), each output turned back.  ``transpose``
    False keeps the four flips only (a backend whose input size is bounded per side)."""
    turns = [t for t in TURNS if transpose or not t[0]]
    total: torch.Tensor | None = None
    for turn in turns:
        y = _unturn(fn(_turn(x, *turn).contiguous()), *turn)
        total = y.to(torch.float32, copy=True) if total is None else total.add_(y)
    assert total is not None
    return total.div_(len(turns))


class SelfEnsembled(nn.Module):
    """``module`` under :func:`self_ensemble`, as a module (for measuring it where a module is taken).

    ``per_stage``: a network of passes in series (``module.passes``, the x4 cascade) ensembled pass by
    pass, the next pass fed the mean of the last; the same number of calls as the whole network's
    ensemble.  On the selection photos it scored below that (``benchmarks/selection.py --ensemble``;
    benchmarks/training/README.md), so ``--ensemble`` ensembles the whole network.
    """

    def __init__(self, module: nn.Module, *, per_stage: bool = False) -> None:
        super().__init__()
        if per_stage and not isinstance(getattr(module, "passes", None), nn.ModuleList):
            raise ValueError(f"{type(module).__name__} has no passes to ensemble one by one")
        self.module = module
        self.per_stage = per_stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.per_stage:
            return self_ensemble(self.module, x)
        for one_pass in self.module.passes:
            x = self_ensemble(one_pass, x)
        return x
