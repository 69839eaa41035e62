"""The mean of several trained networks' answers for one input: ``--weights large+cascade``.

Two networks trained apart make partly different errors, so their mean is closer to the truth than
either (model ensembling); on the selection photos the mean of SRResNet x4 ``large`` and ``cascade``
scored 1.598 where each alone scored 1.505 and 1.551 when it was chosen (benchmarks/training/README.md
follows the figures as the members are trained on).  It costs the members' time added up.  One module,
so every backend (eager, compiled, ONNX, OpenVINO, TensorRT) runs it as one graph, and the geometric
self-ensemble (``--ensemble``) turns it whole.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vidsr.models.weights import WEIGHT_SETS

# A weights name of shipped set names joined by this means their mean: "large+cascade".
JOIN = "+"
# The means that are measured and documented (benchmarks/quality.py, temporal.py, precision.py; README),
# by model and scale.  Any other mean of shipped sets runs too; these are the ones with figures.
DOCUMENTED = {("srresnet", 4): "large+cascade"}


class ModelMean(nn.Module):
    """The mean of ``members``' outputs; every member takes and gives the same shapes."""

    def __init__(self, members: list[nn.Module], receptive_radius: int) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("a mean of networks needs two or more")
        self.members = nn.ModuleList(members)
        # Tiling is exact when the overlap covers the widest member's reach.
        self.receptive_radius = receptive_radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.members[0](x)
        for member in self.members[1:]:
            total = total + member(x)
        return total / len(self.members)


def mean_parts(weights: object) -> list[str] | None:
    """The set names of a mean (``"large+cascade"`` -> ``["large", "cascade"]``), else None."""
    if not isinstance(weights, str | Path) or JOIN not in str(weights):
        return None
    parts = str(weights).split(JOIN)
    # Only shipped set names: a file whose name holds a "+" stays a file.
    if len(parts) < 2 or not all(p in WEIGHT_SETS for p in parts):
        return None
    return parts
