"""int8 on onnxruntime: calibration, the QDQ rewrite, auto's choice, the cache, `vidsr calibrate`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import data_path

pytest.importorskip("onnxruntime", reason="int8 runs on onnxruntime")

import onnx
import onnxruntime as ort

from vidsr.backends import BackendOptions, create_backend
from vidsr.backends import int8 as int8_module
from vidsr.backends.int8 import METADATA_KEY, calibrate, calibration_of, quantise_graph, uint8_params
from vidsr.backends.onnxruntime import OnnxRuntimeBackend, cached_onnx
from vidsr.colour import BT601_STUDIO
from vidsr.errors import BackendError
from vidsr.models import LoadedModel, build_model, get_spec
from vidsr.models.espcn import ESPCNConfig, espcn
from vidsr.models.weights import read_metadata, rewrite_metadata, shipped_weights_path
from vidsr.upscaler import PlaneBatch, Upscaler, output_geometry

SMALL = ESPCNConfig(features=(16, 16, 16), head_kernel=3, activation="relu", residual=True)


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "int8-cache"
    monkeypatch.setenv("VIDSR_ENGINE_DIR", str(folder))
    return folder


def smooth_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Luma-like inputs in [0, 1]: gradients, edges and noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out = []
    for i in range(n):
        base = 0.5 + 0.4 * torch.sin(xx / (3.0 + i) + yy / 5.0)
        out.append((base + 0.05 * torch.randn(h, w, generator=g)).clamp(0, 1))
    return torch.stack(out)[:, None]


def calibrated_small(scale: int = 2, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    module = espcn(scale=scale, config=SMALL)
    for conv in [m for m in module.body if isinstance(m, torch.nn.Conv2d)]:
        torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")  # the zero-initialised last layer too
        conv.bias.data.normal_(0, 0.02)
    module.eval().requires_grad_(False)
    calibration = calibrate(module, [smooth_images(4, 24, 32, seed=s) for s in range(3)], "test")
    return LoadedModel(get_spec("espcn"), scale, module, None, {METADATA_KEY: calibration.to_dict()})


def run_onnx(model: onnx.ModelProto, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def test_ranges_bound_what_the_layers_saw():
    loaded = calibrated_small()
    ranges = calibration_of(loaded).ranges
    assert set(ranges) == {"body.0:input", "body.2:input", "body.4:input", "body.6:input", "body.6:output"}
    assert ranges["body.0:input"][0] >= 0 and ranges["body.0:input"][1] <= 1  # the luma input
    for name in ("body.2", "body.4", "body.6"):
        assert ranges[f"{name}:input"][0] == 0.0 and ranges[f"{name}:input"][1] > 0  # after a ReLU
    assert ranges["body.6:output"][0] < 0 < ranges["body.6:output"][1]  # the residual detail, signed
    assert uint8_params(0.0, 2.55) == (pytest.approx(0.01), 0)
    assert uint8_params(-1.0, 1.55)[1] == 100


def test_qdq_graph_has_the_layout_onnxruntime_fuses_and_tracks_fp32(tmp_path):
    loaded = calibrated_small()
    path, _ = cached_onnx(loaded, tmp_path)
    fp32 = onnx.load(str(path))
    q = quantise_graph(fp32, calibration_of(loaded))
    onnx.checker.check_model(q)
    ops = [n.op_type for n in q.graph.node]
    assert "Relu" not in ops  # each ReLU sat before a uint8 Q with zero point 0, which clamps the same
    assert ops.count("Conv") == [n.op_type for n in fp32.graph.node].count("Conv")
    assert ops.count("QuantizeLinear") == 5  # the four body inputs and the last body output
    bicubic = next(n for n in q.graph.node if n.op_type == "Conv" and n.input[1] == "bicubic.kernel")
    pad = next(n for n in q.graph.node if bicubic.input[0] in n.output)
    assert (pad.op_type, pad.input[0]) == ("Pad", "input")  # the picture's own branch stays fp32, unquantised
    kinds = {i.name: i.data_type for i in q.graph.initializer}
    assert kinds["body.0.weight_int8"] == onnx.TensorProto.INT8 and kinds["body.0.bias_int8"] == onnx.TensorProto.INT32
    weights = onnx.numpy_helper.to_array(next(i for i in q.graph.initializer if i.name == "body.2.weight_int8"))
    assert weights.min() >= -64 and weights.max() <= 63 and weights.max() == 63  # 7 bits, used to the full

    x = smooth_images(2, 20, 28, seed=9)
    ref, got = run_onnx(fp32, x), run_onnx(q, x)
    assert got.shape == ref.shape
    error = np.abs(got - ref)
    assert error.mean() < 0.01 * (ref.max() - ref.min())  # about 8-bit steps, not a broken graph
    assert 0 < error.max() < 0.1


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_int8_tracks_fp32_on_a_real_frame(scale):
    import av

    from vidsr.media.source import plane_view

    with av.open(str(data_path("video", "vtest.avi"))) as c:
        frame = next(c.decode(video=0)).reformat(format="yuv420p")
        y, cb, cr = (plane_view(p) for p in frame.planes[:3])
    batch = PlaneBatch.stack([(y[:144, :192].copy(), cb[:72, :96].copy(), cr[:72, :96].copy())])
    g = output_geometry(144, 192, scale, 2, 2)
    outs = [
        Upscaler("espcn", scale, backend="onnxruntime", precision=p).upscale_planes(
            batch, BT601_STUDIO, BT601_STUDIO, g
        )
        for p in ("int8", "fp32")
    ]
    a, b = (o.y.numpy().astype(float) for o in outs)
    psnr = 10 * np.log10(255**2 / ((a - b) ** 2).mean())
    assert psnr > 45, psnr  # measured 55 dB (x2) and 53 dB (x4)
    assert np.abs(a - b).mean() < 0.5
    assert np.array_equal(outs[0].cb.numpy(), outs[1].cb.numpy())  # chroma never meets the model


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_int8_loses_under_the_bar_on_val(scale):
    from vidsr.evaluate import evaluate_images, list_images, load_rgb, module_upscaler

    val = [(p.name, load_rgb(p)) for p in list_images(data_path("val"))]
    loaded = build_model("espcn", scale)
    psnr = [
        evaluate_images(val, scale, module_upscaler(OnnxRuntimeBackend(loaded, precision=p), "y")).psnr
        for p in ("fp32", "int8")
    ]
    assert psnr[0] - psnr[1] <= 0.05, psnr  # the bar; measured 0.028 (x2), 0.006 (x4)


def test_every_robust_espcn_set_ships_a_calibration_that_fits():
    for scale in (2, 3, 4):
        loaded = build_model("espcn", scale, weights="robust")
        calibration = calibration_of(loaded)
        assert calibration is not None, scale
        assert " robust-v" in calibration.source and "seed 0" in calibration.source  # the set's own recipe
    assert calibration_of(build_model("espcn", 2, weights="paper")) is None  # tanh: no int8 form


def test_auto_takes_int8_on_vnni_cpus_with_calibrated_weights(monkeypatch, plain_cpu):
    from vidsr.backends import openvino as ov_module

    loaded = calibrated_small()
    monkeypatch.setattr(int8_module, "cpu_has_vnni", lambda: True)
    backend = create_backend(loaded, BackendOptions(device="cpu"))
    runtime = "openvino" if ov_module.openvino_available() else "onnxruntime"  # the faster int8 first
    assert (backend.name, backend.precision) == (runtime, "int8")
    assert backend.reason == "--device cpu; int8: a VNNI CPU and calibrated weights"
    assert Upscaler(loaded=loaded, scale=2, device="cpu").describe().startswith(f"espcn x2 on {runtime} (int8)")
    onnxruntime = create_backend(loaded, BackendOptions(backend="onnxruntime"))
    assert (onnxruntime.name, onnxruntime.precision) == ("onnxruntime", "int8")
    monkeypatch.setattr(int8_module, "cpu_has_vnni", lambda: False)
    backend = create_backend(loaded, BackendOptions(device="cpu"))
    assert backend.precision == "fp32" and "no VNNI" in backend.reason
    assert create_backend(loaded, BackendOptions(device="cpu", precision="int8")).precision == "int8"  # asked for
    # fp32 when asked, whatever the CPU.
    monkeypatch.setattr(int8_module, "cpu_has_vnni", lambda: True)
    assert create_backend(loaded, BackendOptions(precision="fp32")).precision == "fp32"


def test_int8_refusals_say_what_to_do():
    uncalibrated = build_model("espcn", 2)
    uncalibrated.metadata = {k: v for k, v in uncalibrated.metadata.items() if k != METADATA_KEY}
    with pytest.raises(BackendError, match=r"carry no int8 calibration \(add one: vidsr calibrate"):
        create_backend(uncalibrated, BackendOptions(precision="int8"))
    with pytest.raises(BackendError, match="has no int8 form"):
        create_backend(build_model("espcn", 2, weights="paper"), BackendOptions(precision="int8"))
    with pytest.raises(BackendError, match="int8 runs on the openvino or onnxruntime backend"):
        create_backend(calibrated_small(), BackendOptions(backend="torch-cpu", precision="int8"))
    with pytest.raises(BackendError, match="int8 runs on the CPU"):
        create_backend(calibrated_small(), BackendOptions(device="cuda", precision="int8"))
    bad = calibrated_small()
    bad.metadata = {METADATA_KEY: {"ranges": {"body.0:input": [0, 1]}}}
    with pytest.raises(BackendError, match="does not fit this network"):
        create_backend(bad, BackendOptions(precision="int8"))


def test_int8_graph_is_cached_beside_fp32_and_keyed_by_calibration(tmp_path):
    loaded = calibrated_small()
    path, made = cached_onnx(loaded, tmp_path, "int8")
    assert made and "_int8_" in path.name
    assert sorted(p.suffix for p in tmp_path.glob("*.onnx")) == [".onnx", ".onnx"]  # the fp32 export it came from
    assert cached_onnx(loaded, tmp_path, "int8") == (path, False)
    other = calibrated_small()
    other.metadata = {METADATA_KEY: {**other.metadata[METADATA_KEY], "source": "elsewhere"}}
    assert cached_onnx(other, tmp_path, "int8")[0] != path  # a new calibration, a new graph
    assert cached_onnx(other, tmp_path, "fp32")[1] is False  # the fp32 export did not change


def test_vidsr_calibrate_stores_ranges_and_leaves_the_tensors(tmp_path):
    from click.testing import CliRunner
    from PIL import Image
    from safetensors.torch import load_file

    from vidsr.cli.main import cli

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        gradient = np.linspace(0, 255, 256)[None, :, None] * np.ones((256, 1, 3))
        pixels = np.clip(gradient + rng.normal(0, 30, (256, 256, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(photos / f"p{i}.png")
    weights = tmp_path / "espcn_x2.safetensors"
    shutil.copy(shipped_weights_path("espcn", 2, "robust"), weights)
    meta = read_metadata(weights)
    rewrite_metadata(weights, {k: v for k, v in meta.items() if k != METADATA_KEY})
    assert METADATA_KEY not in read_metadata(weights)
    # The recipe's extra photos are scikit-image's: keep the test to the folder given.
    history = [{**run, "extra_photos": []} for run in meta["history"]]
    rewrite_metadata(weights, {**{k: v for k, v in meta.items() if k != METADATA_KEY}, "history": history})

    result = CliRunner().invoke(cli, ["calibrate", str(weights), "--data", str(photos), "--patches", "8", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    recipe = meta["degradations"]["name"]  # the shipped set's own
    assert payload["source"] == f"8 {recipe} LR luma patches (96px) of photos, seed 0, min/max"
    stored = read_metadata(weights)[METADATA_KEY]
    assert stored["ranges"] == payload["ranges"] and len(stored["ranges"]) == 9
    before, after = load_file(shipped_weights_path("espcn", 2, "robust")), load_file(weights)
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert calibration_of(build_model("espcn", 2, weights=weights)) is not None

    paper = tmp_path / "paper.safetensors"
    shutil.copy(shipped_weights_path("espcn", 2, "paper"), paper)
    result = CliRunner().invoke(cli, ["calibrate", str(paper), "--data", str(photos)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "has no int8 form" in result.output


def test_auto_falls_back_to_fp32_when_the_int8_rewrite_fails(monkeypatch, caplog, plain_cpu):
    from vidsr.backends import onnxruntime as ort_backend

    def broken(*_args):
        raise BackendError("the ONNX graph does not have the calibrated layers; export it again")

    monkeypatch.setattr(int8_module, "cpu_has_vnni", lambda: True)
    monkeypatch.setattr(ort_backend, "quantise_graph", broken)
    backend = create_backend(calibrated_small(seed=3), BackendOptions(device="cpu"))
    assert (backend.name, backend.precision) == ("onnxruntime", "fp32")
    assert "int8 failed: the ONNX graph does not have the calibrated layers" in backend.reason
    assert "int8 unavailable for espcn x2" in caplog.text
    with pytest.raises(BackendError, match="does not have the calibrated layers"):  # asked for by name: an error
        create_backend(calibrated_small(seed=3), BackendOptions(precision="int8"))
