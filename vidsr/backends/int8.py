"""Static int8 for the CPU runtimes: the fp32 ONNX export rewritten in QDQ form.

Why: on CPUs with VNNI dot products (AVX512-VNNI, AVX-VNNI) ONNX Runtime and OpenVINO run
uint8 x int8 convolutions at several times the fp32 rate.  Measured on the 2-core development
machine (AMD EPYC, AVX-512 + VNNI; ``benchmarks/precision.py``): the robust ESPCN x2 on a
768x576 luma frame 349 -> 117 ms on onnxruntime and 78 ms on openvino, each losing 0.028 dB
PSNR-Y on val.  The paper
ESPCN gains nothing (its tanh layers stay fp32 between the quantised convolutions), so only the
ReLU family is quantised.

The scheme, and why each part:

* Activations: uint8, one scale per tensor, from ranges measured once on training inputs
  (:func:`calibrate`) and stored in the weights file under ``int8``.  Nothing is calibrated at
  run time, so the graph is the same on every machine and needs no data.
* Weights: int8 per output channel in 7 bits ([-64, 63]).  AVX2 CPUs without VNNI sum pairs of
  u8 x s8 products in 16 bits, which full-range weights can saturate; 7 bits keep every CPU's
  result the same (measured cost on val: under 0.01 dB more than 8 bits).
* Biases: int32 at input scale x weight scale, zero point 0.
* The layout ONNX Runtime fuses into ``QLinearConv`` (OpenVINO into its int8 convolutions):
  DequantizeLinear on input, weight and bias, the Conv, then QuantizeLinear.  A ReLU right
  before a uint8 QuantizeLinear with zero point 0 is dropped: rounding to uint8 already clamps
  at 0, so the result is identical.
* Only the body convolutions are quantised; the bicubic residual branch, which carries the
  picture itself, stays fp32, and so do the add and the pixel shuffle.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidsr.errors import BackendError
from vidsr.models import LoadedModel

METADATA_KEY = "int8"  # where a weights file keeps its calibration
SCHEME = "qdq-u8-act-s7-weight-v1"  # in the cache key: a change of scheme re-quantises
WEIGHT_MAX = 63  # 7-bit weights: see the module docstring


@dataclass(frozen=True)
class Int8Calibration:
    """Activation ranges of a network's quantised convolutions, measured on ``source``.

    ``ranges`` maps ``"body.0:input"`` (what enters that convolution) and, for the last one,
    ``"body.14:output"`` (what leaves it) to (min, max).
    """

    ranges: dict[str, tuple[float, float]]
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": SCHEME, "source": self.source, "ranges": {k: list(v) for k, v in self.ranges.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Int8Calibration:
        try:
            ranges = {str(k): (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}
            return cls(ranges, str(data.get("source", "")))
        except (KeyError, TypeError, ValueError, IndexError):
            raise BackendError("the weights' int8 calibration is malformed; run `vidsr calibrate` again") from None

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def quantised_layers(module: nn.Module) -> list[str]:
    """Names of the convolutions the int8 graph quantises: an ESPCN-family ReLU body, else none."""
    config = getattr(module, "config", None)
    body = getattr(module, "body", None)
    if getattr(config, "activation", None) != "relu" or not isinstance(body, nn.Sequential):
        return []
    return [f"body.{name}" for name, layer in body.named_children() if isinstance(layer, nn.Conv2d)]


def supports_int8(loaded: LoadedModel) -> bool:
    return bool(quantised_layers(loaded.module))


def calibration_of(loaded: LoadedModel) -> Int8Calibration | None:
    """The int8 calibration its weights file carries, if any (and if the network can use one)."""
    data = loaded.metadata.get(METADATA_KEY)
    if not data or not supports_int8(loaded):
        return None
    calibration = Int8Calibration.from_dict(data)
    layers = quantised_layers(loaded.module)
    wanted = {f"{name}:input" for name in layers} | {f"{layers[-1]}:output"}
    if not wanted <= calibration.ranges.keys():
        raise BackendError("the weights' int8 calibration does not fit this network; run `vidsr calibrate` again")
    return calibration


@torch.inference_mode()
def calibrate(module: nn.Module, batches: Iterable[torch.Tensor], source: str) -> Int8Calibration:
    """Min and max of what enters each quantised convolution (and leaves the last) over ``batches``."""
    layers = quantised_layers(module)
    if not layers:
        raise BackendError(f"{type(module).__name__} has no int8 form (the ReLU ESPCN family has)")
    seen: dict[str, list[float]] = {}

    def record(key: str, t: torch.Tensor) -> None:
        lo, hi = float(t.min()), float(t.max())
        old = seen.setdefault(key, [lo, hi])
        old[0], old[1] = min(old[0], lo), max(old[1], hi)

    def hook(name: str, last: bool):
        def run(_m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            record(f"{name}:input", args[0])
            if last:
                record(f"{name}:output", out)

        return run

    modules = dict(module.named_modules())
    handles = [modules[name].register_forward_hook(hook(name, name == layers[-1])) for name in layers]
    try:
        count = 0
        for x in batches:
            module(x.float())
            count += 1
    finally:
        for h in handles:
            h.remove()
    if not count:
        raise BackendError("calibration needs at least one batch")
    return Int8Calibration({k: (v[0], v[1]) for k, v in seen.items()}, source)


def uint8_params(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point of an asymmetric uint8 tensor covering [lo, hi] (and 0, exactly)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def _weight_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8 (7 bits): (int8 weights, float32 scales)."""
    peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scales = np.where(peak > 0, peak / WEIGHT_MAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scales.reshape(-1, *([1] * (w.ndim - 1)))), -WEIGHT_MAX - 1, WEIGHT_MAX)
    return q.astype(np.int8), scales


def quantise_graph(model: Any, calibration: Int8Calibration) -> Any:
    """The QDQ form of the fp32 ONNX ``model`` (an ``onnx.ModelProto``; a new one is returned)."""
    from onnx import helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    layers = {name.split(":")[0] for name in calibration.ranges}

    def layer_of(node) -> str | None:
        if node.op_type != "Conv" or len(node.input) < 2 or not node.input[1].endswith(".weight"):
            return None
        name = node.input[1].removesuffix(".weight")
        return name if name in layers and node.input[1] in inits else None

    convs = [n for n in graph.node if layer_of(n)]
    if {layer_of(n) for n in convs} != layers:
        raise BackendError("the ONNX graph does not have the calibrated layers; export it again")
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    # A ReLU feeding only quantised convolutions whose input range starts at 0 goes: the uint8 Q clamps.
    drop: dict[str, str] = {}  # the ReLU's output -> its input
    for node in graph.node:
        if node.op_type != "Relu":
            continue
        users = consumers.get(node.output[0], [])
        if users and all(
            layer_of(u) and uint8_params(*calibration.ranges[f"{layer_of(u)}:input"])[1] == 0 for u in users
        ):
            drop[node.output[0]] = node.input[0]

    new_inits: list[Any] = []
    nodes: list[Any] = []
    done: dict[str, str] = {}  # fp32 tensor -> its quantised-dequantised twin

    def qdq(tensor: str, lo: float, hi: float) -> str:
        if tensor in done:
            return done[tensor]
        scale, zero = uint8_params(lo, hi)
        s, z = f"{tensor}_int8_scale", f"{tensor}_int8_zero"
        new_inits.append(numpy_helper.from_array(np.array(scale, np.float32), s))
        new_inits.append(numpy_helper.from_array(np.array(zero, np.uint8), z))
        nodes.append(helper.make_node("QuantizeLinear", [tensor, s, z], [f"{tensor}_q"], name=f"{tensor}_Q"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{tensor}_q", s, z], [f"{tensor}_dq"], name=f"{tensor}_DQ"))
        done[tensor] = f"{tensor}_dq"
        return done[tensor]

    def dq_initializer(name: str, q: np.ndarray, scales: np.ndarray, zero_dtype: type) -> str:
        new_inits.append(numpy_helper.from_array(q, f"{name}_int8"))
        new_inits.append(numpy_helper.from_array(scales.astype(np.float32), f"{name}_int8_scale"))
        new_inits.append(numpy_helper.from_array(np.zeros(q.shape[0], zero_dtype), f"{name}_int8_zero"))
        ins = [f"{name}_int8", f"{name}_int8_scale", f"{name}_int8_zero"]
        nodes.append(helper.make_node("DequantizeLinear", ins, [f"{name}_dq"], name=f"{name}_DQ", axis=0))
        return f"{name}_dq"

    renamed: dict[str, str] = {}  # consumers of the last conv's output read its Q/DQ twin
    last = convs[-1]
    for node in graph.node:
        if node.op_type == "Relu" and node.output[0] in drop:
            continue
        node.input[:] = [renamed.get(drop.get(name, name), drop.get(name, name)) for name in node.input]
        layer = layer_of(node)
        if layer is None:
            nodes.append(node)
            continue
        in_scale = uint8_params(*calibration.ranges[f"{layer}:input"])[0]
        w_q, w_scales = _weight_int8(numpy_helper.to_array(inits[node.input[1]]))
        node.input[0] = qdq(node.input[0], *calibration.ranges[f"{layer}:input"])
        node.input[1] = dq_initializer(node.input[1], w_q, w_scales, np.int8)
        if len(node.input) > 2 and node.input[2]:
            b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
            b_scales = in_scale * w_scales.astype(np.float64)
            b_q = np.clip(np.rint(b / b_scales), -(2**31), 2**31 - 1).astype(np.int32)
            node.input[2] = dq_initializer(node.input[2], b_q, b_scales, np.int32)
        nodes.append(node)
        if node is last:
            renamed[node.output[0]] = qdq(node.output[0], *calibration.ranges[f"{layer}:output"])
    used = {name for n in nodes for name in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    for output in graph.output:  # a graph output is never renamed, only read through
        if output.name in renamed:
            raise BackendError("int8: the last quantised convolution cannot be the graph's output")
    return model


@cache
def cpu_has_vnni() -> bool:
    """Whether this CPU has VNNI dot products (Linux's /proc/cpuinfo flags; elsewhere: unknown, no)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_vnni" in flags or "avx_vnni" in flags


__all__ = [
    "METADATA_KEY",
    "Int8Calibration",
    "calibrate",
    "calibration_of",
    "cpu_has_vnni",
    "quantise_graph",
    "quantised_layers",
    "supports_int8",
    "uint8_params",
]
