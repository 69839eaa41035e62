"""The float16 graph that TensorRT FP16 engines are built from: float16 throughout, and close to the model.

The shipped ESPCN (with its bicubic residual) and SRResNet are exported and converted as the
TensorRT backend does, run in float16 in onnxruntime on crops of real photos (val/) and
compared with the float32 PyTorch model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import data_path
from PIL import Image

from vidsr.backends.onnx_export import export_onnx
from vidsr.backends.onnx_fp16 import convert_file, to_float16
from vidsr.errors import BackendError
from vidsr.models import build_model

ort = pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402 - after the skip

HALF_AN_8_BIT_STEP = 0.5 / 255


def photo_crops(channels: int, size: int = 96, scale: int = 4) -> np.ndarray:
    """Four val photos, centre crops bicubic-downscaled to ``size`` (luma for one channel), NCHW float32."""
    crops = []
    for path in sorted(data_path("val").glob("*.png"))[:4]:
        image = Image.open(path).convert("RGB")
        left, top = (image.width - size * scale) // 2, (image.height - size * scale) // 2
        image = image.crop((left, top, left + size * scale, top + size * scale)).resize((size, size), Image.BICUBIC)
        pixels = np.asarray(image, np.float32) / 255
        if channels == 1:
            pixels = (pixels @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        crops.append(pixels.transpose(2, 0, 1))
    return np.stack(crops)


def float_types(model) -> list[str]:
    """Names of everything still float32: initializers, graph inputs/outputs, typed intermediates."""
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    return [t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT] + [
        v.name for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT
    ]


@pytest.mark.parametrize(("name", "scale"), [("espcn", 2), ("srresnet", 4)])
def test_float16_graph_of_a_shipped_model_stays_close_to_it(tmp_path, name, scale):
    loaded = build_model(name, scale)
    graph = convert_file(export_onnx(loaded, tmp_path / "model.onnx"), tmp_path / "model.fp16.onnx")
    model = onnx.load(str(graph))
    onnx.checker.check_model(model, full_check=True)
    assert float_types(model) == []
    x = photo_crops(loaded.spec.channels)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.astype(np.float16)})
    with torch.inference_mode():
        expected = loaded.module.float()(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float16 and got.shape == expected.shape
    # Measured: 8.3e-4 (ESPCN x2) and 1.0e-3 (SRResNet x4); rounding only the input and output to
    # float16's 11 significant bits already costs 0.7e-3 on these crops.
    assert np.abs(got.astype(np.float32) - expected).max() < HALF_AN_8_BIT_STEP


def tiny_graph(nodes, initializers=(), opset: int = 18):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_constants_and_casts_become_float16():
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    model = tiny_graph(
        [
            helper.make_node("Constant", [], ["c"], value=half),
            helper.make_node("Mul", ["x", "c"], ["m"]),
            helper.make_node("Cast", ["m"], ["y"], to=TensorProto.FLOAT),
        ]
    )
    converted = to_float16(model)
    constant, _, cast = converted.graph.node
    assert constant.attribute[0].t.data_type == TensorProto.FLOAT16
    assert cast.attribute[0].i == TensorProto.FLOAT16
    x = np.linspace(0, 1, 16, dtype=np.float16).reshape(1, 1, 4, 4)
    (y,) = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.dtype == np.float16 and np.array_equal(y, x * np.float16(0.5))
    assert model.graph.node[0].attribute[0].t.data_type == TensorProto.FLOAT  # the original is left alone


def test_an_operator_that_keeps_float32_is_refused_by_name():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    model = tiny_graph([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up")], [scales])
    with pytest.raises(BackendError, match=r"cannot make .* float16: Resize node 'up' keeps 'scales' float32"):
        to_float16(model)


def test_weights_beyond_float16_range_are_refused():
    big = numpy_helper.from_array(np.full((1, 1, 1, 1), 1e5, np.float32), "w")
    model = tiny_graph([helper.make_node("Conv", ["x", "w"], ["y"])], [big])
    with pytest.raises(BackendError, match=r"'w' holds values beyond float16's range"):
        to_float16(model)


def test_unreadable_file_names_itself(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(BackendError, match=r"cannot read .*bad\.onnx"):
        convert_file(bad, tmp_path / "bad.fp16.onnx")
    assert not (tmp_path / "bad.fp16.onnx").exists()
