"""The model registry: names to specs and builders, written out explicitly.

Nothing registers itself on import; adding a model means adding a line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from vidsr.errors import ModelError
from vidsr.models.espcn import CONFIGS as ESPCN_CONFIGS
from vidsr.models.espcn import espcn
from vidsr.models.interpolation import interpolation
from vidsr.models.mean import JOIN, ModelMean, mean_parts
from vidsr.models.spec import ModelSpec
from vidsr.models.srresnet import CONFIGS as SRRESNET_CONFIGS
from vidsr.models.srresnet import srresnet
from vidsr.models.weights import WEIGHT_SETS, load_weights, read_metadata, shipped_sets, shipped_weights_path
from vidsr.tiling import overlap_for

_SPECS = (
    ModelSpec("espcn", "ESPCN sub-pixel CNN on luma, chroma bicubic", "y", (2, 3, 4), True, True, espcn),
    ModelSpec("srresnet", "SRGAN generator trained on pixel loss (PSNR)", "rgb", (2, 3, 4), True, True, srresnet),
    ModelSpec(
        "srgan",
        "SRGAN generator fine-tuned adversarially (perceptual; shipped: L1 + feature matching, no VGG)",
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


def arch_config(name: str, variant: str = "") -> dict[str, Any]:
    """The builder keywords of architecture ``variant`` of model ``name`` ("" is the family's default).

    Weights files store this under ``arch_config`` so the network that fits them can be rebuilt.
    """
    spec = get_spec(name)
    if spec.architecture == "espcn":
        if variant and variant not in ESPCN_CONFIGS:
            raise ModelError(f"unknown espcn variant {variant!r}; choose from {', '.join(ESPCN_CONFIGS)}")
        return {"config": ESPCN_CONFIGS[variant or "paper"].to_dict()}
    if spec.architecture == "srresnet":
        if variant and variant not in SRRESNET_CONFIGS:
            raise ModelError(f"unknown srresnet variant {variant!r}; choose from {', '.join(SRRESNET_CONFIGS)}")
        return {"config": SRRESNET_CONFIGS[variant or "paper"].to_dict()}
    if variant:
        raise ModelError(f"{name} has no architecture variants (asked for {variant!r})")
    return {}


def build_module(name: str, scale: int, config: dict[str, Any] | None = None) -> nn.Module:
    """The untrained network of ``name`` at ``scale``, shaped by ``config`` (a weights file's ``arch_config``)."""
    return get_spec(name).builder(scale=scale, **(config or {}))


def _resolve_weights(spec: ModelSpec, scale: int, weights: str | Path | None) -> Path | None:
    """A file path, a shipped set's name (see ``WEIGHT_SETS``), or None for the default set."""
    name = None if weights is None else str(weights)
    if name is None or name in WEIGHT_SETS:
        path = shipped_weights_path(spec.name, scale, name)
        if path is None:
            have = ", ".join(shipped_sets(spec.name, scale)) or "none"
            wanted = f"the {name} weights" if name else "trained weights"
            extra = " --init SRRESNET.safetensors" if spec.name == "srgan" else ""
            raise ModelError(
                f"{wanted} for {spec.name} x{scale} do not ship (shipped sets: {have}); "
                f"train them with `vidsr train --model {spec.name} --scale {scale}{extra} "
                "--data ../shared/data/train --val ../shared/data/val` and pass --weights FILE"
            )
        return path
    return Path(weights)


def build_model(name: str, scale: int, *, weights: str | Path | None = None) -> LoadedModel:
    """Build ``name`` at ``scale`` with ``weights``: a file, a shipped set's name, or None for the default set.

    A learned model with neither refuses: random weights would write noise.
    """
    spec = get_spec(name)
    if scale not in spec.scales:
        raise ModelError(f"{name} supports scales {', '.join(map(str, spec.scales))}, not {scale}")
    if parts := mean_parts(weights):
        return _build_mean(spec, scale, parts)
    meta: dict[str, Any] = {}
    path: Path | None = None
    if spec.learned:
        path = _resolve_weights(spec, scale, weights)
        config = read_metadata(path).get("arch_config") if path.suffix == ".safetensors" and path.is_file() else None
        module = build_module(name, scale, config)
        meta = load_weights(module, path, arch=spec.architecture, scale=scale)
    elif weights is not None:
        raise ModelError(f"{name} is an interpolation baseline and takes no weights")
    else:
        module = build_module(name, scale)
    module.eval().requires_grad_(False)
    return LoadedModel(spec, scale, module, path, meta)


def _build_mean(spec: ModelSpec, scale: int, parts: list[str]) -> LoadedModel:
    """The mean of shipped sets ``parts`` (``--weights large+cascade``): one module, no one file."""
    if len(set(parts)) != len(parts):
        raise ModelError(f"--weights {JOIN.join(parts)} names a set twice")
    members = [build_model(spec.name, scale, weights=part) for part in parts]
    radius = max(overlap_for(spec.architecture, m.module) for m in members)
    module = ModelMean([m.module for m in members], radius).eval()
    meta = {"mean_of": {part: m.weights.name for part, m in zip(parts, members, strict=True) if m.weights}}
    return LoadedModel(spec, scale, module, None, meta)


def shipped_metadata(name: str, scale: int, weight_set: str | None = None) -> dict[str, Any] | None:
    """Metadata of the shipped weights of ``weight_set`` (None: the default) for ``name`` x``scale``, or None."""
    path = shipped_weights_path(get_spec(name).name, scale, weight_set)
    return read_metadata(path) if path else None


__all__ = [
    "REGISTRY",
    "WEIGHT_SETS",
    "LoadedModel",
    "ModelSpec",
    "arch_config",
    "build_model",
    "build_module",
    "get_spec",
    "shipped_metadata",
    "shipped_sets",
]
