"""What a model is and what it supports, independent of its weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

Colour = Literal["y", "rgb", "any"]


@dataclass(frozen=True)
class ModelSpec:
    """A model family: the architecture and the promises it makes.

    ``colour``: ``"y"`` works on luma only (chroma is upscaled bicubic), ``"rgb"``
    on RGB, ``"any"`` on each plane as it comes (the interpolation baselines).
    """

    name: str
    description: str
    colour: Colour
    scales: tuple[int, ...]
    learned: bool  # needs trained weights; the baselines do not
    fp16_safe: bool
    builder: Callable[[int], nn.Module]
    size_multiple: int = 1
    arch: str = ""  # the network's architecture when it differs from the name (srgan is an srresnet)

    @property
    def channels(self) -> int:
        return 3 if self.colour == "rgb" else 1

    @property
    def architecture(self) -> str:
        return self.arch or self.name
