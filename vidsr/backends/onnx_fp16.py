"""The float32 ONNX export as a float16 graph: how vidsr asks TensorRT for an FP16 engine.

TensorRT 11 builds every network strongly typed: each layer runs in the type its tensors
have in the graph, and TensorRT 10's FP16 builder flag is gone.  So an FP16 engine needs a
graph whose tensors are float16 already.  Here every float32 weight, Constant, graph input
and output and intermediate type becomes float16, and a Cast to float32 casts to float16;
integer tensors (Pad's pads, shapes) stay as they are.  TensorRT 10 builds the same graph
on a strongly typed network into the same engine, so one graph serves both.

That is right only for operators whose float tensors may all be float16 together.  An
operator whose schema keeps a tensor float32 (Resize's ``scales``), control flow (its
subgraphs would keep float32) and operators outside the standard domain are refused by name
rather than turned into a graph TensorRT would reject or misread.  vidsr's models
(convolutions, ReLU/tanh/PReLU, Add, edge Pad, DepthToSpace) convert whole.

The bicubic residual runs in float16 too.  Measured with onnxruntime against the float32
PyTorch model on four val photos: largest error 1.0e-3 and PSNR 74-75 dB for ESPCN x2/x3/x4
and SRResNet x4, where rounding only the input and output to float16 gives 0.7-0.8e-3 and
76-77 dB.  Keeping the residual float32 would close that gap (a quarter of an 8-bit step at
most) at the price of casts and a second precision in the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidsr.backends.engine_cache import atomic_write
from vidsr.errors import BackendError

FLOAT = "tensor(float)"
FLOAT16 = "tensor(float16)"


def convert_file(source: str | Path, target: str | Path) -> Path:
    """Write ``source`` (a float32 ONNX file) to ``target`` as float16; returns ``target``."""
    import onnx

    try:
        model = onnx.load(str(source))
    except Exception as exc:  # a missing file is OSError, a truncated one a protobuf DecodeError
        raise BackendError(f"cannot read {source}: {exc}") from exc
    target = Path(target)
    atomic_write(target, to_float16(model, name=Path(source).name).SerializeToString())
    return target


def to_float16(model, *, name: str = "the ONNX graph"):
    """A float16 copy of ``model`` (an ``onnx.ModelProto``); BackendError names what cannot convert."""
    import onnx

    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph
    _refuse_unconvertible(graph, _default_opset(converted), name)
    for tensor in graph.initializer:
        _tensor_to_float16(tensor, name)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    for node in graph.node:
        _attributes_to_float16(node, name)
    return converted


def _default_opset(model) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _refuse_unconvertible(graph, opset: int, name: str) -> None:
    import onnx

    for node in graph.node:
        what = f"{node.op_type} node {node.name!r}"
        if node.domain not in ("", "ai.onnx"):
            raise BackendError(f"cannot make {name} float16: {what} is outside the standard ONNX domain")
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise BackendError(f"cannot make {name} float16: {what} has subgraphs")
        schema = onnx.defs.get_schema(node.op_type, opset)
        for param in [*schema.inputs, *schema.outputs]:
            if _keeps_float32(param.type_str, schema):
                raise BackendError(
                    f"cannot make {name} float16: {what} keeps {param.name!r} float32 (ONNX schema, opset {opset})"
                )


def _keeps_float32(type_str: str, schema) -> bool:
    """Whether a parameter may be float32 but not float16: fixed ``tensor(float)`` or such a type variable."""
    allowed = {type_str}
    for constraint in schema.type_constraints:
        if constraint.type_param_str == type_str:
            allowed = set(constraint.allowed_type_strs)
    return FLOAT in allowed and FLOAT16 not in allowed


def _tensor_to_float16(tensor, name: str) -> None:
    import onnx
    from onnx import numpy_helper

    if tensor.data_type != onnx.TensorProto.FLOAT:
        return
    values = numpy_helper.to_array(tensor)
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    if (np.isfinite(values) & ~np.isfinite(half)).any():
        raise BackendError(f"cannot make {name} float16: {tensor.name!r} holds values beyond float16's range")
    tensor.CopyFrom(numpy_helper.from_array(half, tensor.name))


def _attributes_to_float16(node, name: str) -> None:
    import onnx

    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.TENSOR:
            _tensor_to_float16(attribute.t, name)
        elif node.op_type == "Cast" and attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
            attribute.i = onnx.TensorProto.FLOAT16
