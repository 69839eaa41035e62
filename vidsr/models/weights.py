"""Weights files: safetensors with JSON metadata, checked against the model they load into."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vidsr.errors import ModelError

_PASS_PREFIX = re.compile(r"^passes\.\d+\.")  # a cascade's passes (vidsr.models.srresnet.Cascade)

SHIPPED_DIR = Path(__file__).parent / "weights"
# Shipped weights come in named sets, one file each: ``espcn_x4.robust.safetensors``.
# ``robust`` (trained on a mixture of realistic degradations) is the default where it
# ships; ``large`` is ``robust`` at a larger capacity (SRResNet ``large``: more detail, several
# times the compute, so never the default where ``robust`` ships; SRResNet x3 ships only
# ``large``); ``cascade`` (SRResNet x4) is two x2 ``large`` networks in series, about five times
# ``large``'s compute at x4; ``paper`` (trained on the literature's one kernel) keeps figures
# comparable with the papers.  The first set that ships for a model and scale is its default.
WEIGHT_SETS = ("robust", "large", "cascade", "paper")


def shipped_sets(model: str, scale: int) -> dict[str, Path]:
    """The weights sets shipped for ``model`` at ``scale``, default first: ``{"robust": path, ...}``."""
    found = {name: SHIPPED_DIR / f"{model}_x{scale}.{name}.safetensors" for name in WEIGHT_SETS}
    return {name: path for name, path in found.items() if path.is_file()}


def shipped_weights_path(model: str, scale: int, weight_set: str | None = None) -> Path | None:
    """The shipped weights file of ``weight_set`` (None: the default set) for ``model`` at ``scale``, if any."""
    sets = shipped_sets(model, scale)
    if weight_set is None:
        return next(iter(sets.values()), None)
    return sets.get(weight_set)


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, Any], *, half: bool = False) -> None:
    """Write ``module``'s state dict as safetensors; each metadata value is stored as JSON."""
    tensors = {}
    for key, value in module.state_dict().items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point():
            value = value.half()
        tensors[key] = value
    save_file(tensors, str(path), metadata=_encoded(metadata))


def _encoded(metadata: dict[str, Any]) -> dict[str, str]:
    """safetensors metadata is str -> str: each value stored as JSON (:func:`read_metadata` decodes)."""
    return {k: json.dumps(v) for k, v in metadata.items()}


def rewrite_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    """Replace a safetensors file's metadata, its tensors byte for byte as they were; written under a
    temporary name and renamed, so the file is never half written."""
    path = Path(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot read weights {path}: {exc}") from None
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(temp), metadata=_encoded(metadata))
        temp.replace(path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ModelError(f"cannot write weights {path}: {exc.strerror}") from None


def tensor_digest(path: str | Path) -> str:
    """SHA-256 of a safetensors file's tensor bytes alone: unchanged when only its metadata is rewritten."""
    import hashlib

    with open(path, "rb") as f:
        header = int.from_bytes(f.read(8), "little")  # the format: u64 header length, JSON header, tensor bytes
        f.seek(8 + header)
        return hashlib.sha256(f.read()).hexdigest()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a safetensors file, each value decoded from JSON where it is JSON."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot read weights {path}: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    if path.suffix in (".pt", ".pth", ".ckpt"):
        # Never unpickle arbitrary objects from a user's file.
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"cannot read weights {path}: {exc}") from None
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        if not isinstance(state, dict):
            raise ModelError(f"weights {path} hold no state dict")
        return state, {}
    try:
        return load_file(str(path)), read_metadata(path)
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot read weights {path}: {exc}") from None


def load_weights(module: nn.Module, path: str | Path, *, arch: str, scale: int) -> dict[str, Any]:
    """Load ``path`` into ``module`` after checking it was made for ``arch`` x``scale``.

    Returns the file's metadata.  Any mismatch is a :class:`ModelError` naming the file.
    """
    path = Path(path)
    state, meta = _read_tensors(path)
    made_for = (meta.get("architecture"), meta.get("scale"))
    if made_for[0] is not None and (made_for[0] != arch or int(made_for[1] or scale) != scale):
        raise ModelError(f"weights {path} are for {made_for[0]} x{made_for[1]}, not {arch} x{scale}")
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} is {tuple(state[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing ({', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
        if wrong:
            problems.append(f"{len(wrong)} of the wrong shape ({'; '.join(wrong[:2])})")
        raise ModelError(f"weights {path} do not fit {arch} x{scale}: tensors {', '.join(problems)}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return meta


def init_from(module: nn.Module, path: str | Path) -> tuple[int, int]:
    """Start ``module`` from the tensors of ``path`` whose names and shapes fit; the rest stay as built.

    This is how a run starts from a network trained at another scale (every layer but the
    last fits), and how a cascade starts from one x2 network in each of its passes (a tensor
    ``passes.N.name`` takes the file's ``name``).  Returns (loaded, left); nothing fitting is an error.
    """
    path = Path(path)
    state, _meta = _read_tensors(path)
    own = module.state_dict()
    fitting = {}
    for name, tensor in own.items():
        source = state.get(name) if name in state else state.get(_PASS_PREFIX.sub("", name, count=1))
        if source is not None and source.shape == tensor.shape:
            fitting[name] = source.to(tensor.dtype)
    if not fitting:
        raise ModelError(f"no tensor of {path} fits this network")
    module.load_state_dict(fitting, strict=False)
    return len(fitting), len(own) - len(fitting)


def interpolate_states(
    tuned: dict[str, torch.Tensor], parent: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """Network interpolation (Wang et al., ESRGAN, 2018): ``alpha * tuned + (1 - alpha) * parent``, tensor by
    tensor, in float32.  ``tuned`` must have been fine-tuned from ``parent`` (an SRGAN from the SRResNet it
    started as): the two then lie in one basin, and ``alpha`` trades the GAN's texture for the parent's
    fidelity smoothly, with no training.  Unrelated networks of the same shape average into noise."""
    if not 0.0 <= alpha <= 1.0:
        raise ModelError(f"interpolation weight {alpha} is outside [0, 1]")
    _check_same_network(tuned, parent, "interpolate")
    return {
        k: alpha * tuned[k].float() + (1.0 - alpha) * parent[k].float() if tuned[k].is_floating_point() else tuned[k]
        for k in tuned
    }


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A uniform "model soup" (Wortsman et al., 2022): each tensor the mean of the members', in float32.
    Like interpolation it needs networks fine-tuned from one set of weights, which stay in one basin,
    where the average often scores above every member; unrelated networks average into noise."""
    if not states:
        raise ModelError("cannot average no networks")
    first = states[0]
    for other in states[1:]:
        _check_same_network(first, other, "average")
    return {
        k: sum(s[k].float() for s in states) / len(states) if first[k].is_floating_point() else first[k] for k in first
    }


def _check_same_network(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], verb: str) -> None:
    if a.keys() != b.keys():
        odd = sorted(a.keys() ^ b.keys())
        raise ModelError(f"cannot {verb}: the networks differ in {len(odd)} tensors ({', '.join(odd[:3])})")
    wrong = [k for k in a if a[k].shape != b[k].shape]
    if wrong:
        raise ModelError(f"cannot {verb}: {len(wrong)} tensors differ in shape ({', '.join(wrong[:3])})")


def training_runs(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs a weights file came from, oldest first: its ``history``, or, for a file trained in one run
    that records only its ``recipe`` (the first shipped sets), that recipe."""
    return list(meta.get("history") or ([meta["recipe"]] if meta.get("recipe") else []))


def extra_photo_sources(meta: dict[str, Any]) -> list[str]:
    """The photo sources (``--extra-photos``) any of a weights file's runs added, sorted."""
    return sorted({source for run in training_runs(meta) for source in run.get("extra_photos", [])})


def trained_on(meta: dict[str, Any]) -> str:
    """What a weights file was trained on, in words: its LR recipe, and the photo sources any of its runs added."""
    extra = extra_photo_sources(meta)
    recipe = (meta.get("degradations") or {}).get("name", "protocol")
    return recipe + "".join(f" + {source} photos" for source in extra)
