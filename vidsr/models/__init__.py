"""The model registry: names to specs and builders, written out explicitly.

Nothing registers itself on import; adding a model means adding a line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from vidsr.errors import ModelError
from vidsr.models.espcn import espcn
from vidsr.models.interpolation import interpolation
from vidsr.models.spec import ModelSpec
from vidsr.models.srresnet import srresnet
from vidsr.models.weights import load_weights, read_metadata, shipped_weights_path

_SPECS = (
    ModelSpec("espcn", "ESPCN sub-pixel CNN on luma, chroma bicubic", "y", (2, 3, 4), True, True, espcn),
    ModelSpec("srresnet", "SRGAN generator trained on pixel loss (PSNR)", "rgb", (2, 3, 4), True, True, srresnet),
    ModelSpec(
        "srgan",
        "SRGAN generator fine-tuned with VGG + adversarial loss (perceptual)",
        "rgb",
        (2, 3, 4),
        True,
        True,
        srresnet,
        arch="srresnet",
    ),
    ModelSpec(
        "bicubic", "bicubic interpolation (Pillow's, a=-0.5)", "any", (2, 3, 4), False, True, interpolation("bicubic")
    ),
    ModelSpec("lanczos", "Lanczos-3 interpolation", "any", (2, 3, 4), False, True, interpolation("lanczos")),
    ModelSpec("bilinear", "bilinear interpolation", "any", (2, 3, 4), False, True, interpolation("bilinear")),
    ModelSpec("nearest", "nearest-neighbour (pixel repeat)", "any", (2, 3, 4), False, True, interpolation("nearest")),
)
REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}") from None


@dataclass
class LoadedModel:
    """A built model, in eval mode, with where its weights came from."""

    spec: ModelSpec
    scale: int
    module: nn.Module
    weights: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def build_model(name: str, scale: int, *, weights: str | Path | None = None) -> LoadedModel:
    """Build ``name`` at ``scale`` with ``weights``, or the shipped weights when None.

    A learned model with neither refuses: random weights would write noise.
    """
    spec = get_spec(name)
    if scale not in spec.scales:
        raise ModelError(f"{name} supports scales {', '.join(map(str, spec.scales))}, not {scale}")
    module = spec.builder(scale=scale)
    meta: dict[str, Any] = {}
    path = Path(weights) if weights is not None else None
    if spec.learned:
        path = path or shipped_weights_path(spec.name, scale)
        if path is None:
            raise ModelError(
                f"no trained weights ship for {name} x{scale} yet; "
                f"train them with `vidsr train --model {name} --scale {scale}` and pass --weights FILE"
            )
        meta = load_weights(module, path, arch=spec.architecture, scale=scale)
    elif path is not None:
        raise ModelError(f"{name} is an interpolation baseline and takes no weights")
    module.eval().requires_grad_(False)
    return LoadedModel(spec, scale, module, path, meta)


def shipped_metadata(name: str, scale: int) -> dict[str, Any] | None:
    """Metadata of the weights shipped for ``name`` x``scale``, or None when none ship."""
    path = shipped_weights_path(get_spec(name).name, scale)
    return read_metadata(path) if path else None


__all__ = ["REGISTRY", "LoadedModel", "ModelSpec", "build_model", "get_spec", "shipped_metadata"]
