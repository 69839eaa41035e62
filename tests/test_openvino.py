"""The OpenVINO backend: the cached ONNX graphs on OpenVINO's CPU plugin, and when auto takes it."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from conftest import data_path

from vidsr.backends import BackendOptions, create_backend, precision_of
from vidsr.backends import int8 as int8_module
from vidsr.backends import openvino as ov_module
from vidsr.backends.int8 import METADATA_KEY, calibrate
from vidsr.colour import BT601_STUDIO
from vidsr.errors import BackendError
from vidsr.models import LoadedModel, get_spec
from vidsr.models.espcn import ESPCNConfig, espcn
from vidsr.upscaler import PlaneBatch, Upscaler, output_geometry

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")
pytest.importorskip("onnxruntime", reason="the graphs are exported with the onnxruntime backend's cache")

SMALL_RELU = ESPCNConfig(features=(16, 16), head_kernel=3, activation="relu", residual=True)
needs_bf16 = pytest.mark.skipif(not ov_module.native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX)")


def small(config: ESPCNConfig | None = None, *, scale: int = 2, seed: int = 0, calibrated: bool = False) -> LoadedModel:
    torch.manual_seed(seed)
    module = espcn(scale=scale) if config is None else espcn(scale=scale, config=config)
    for conv in [m for m in module.body if isinstance(m, torch.nn.Conv2d)]:
        torch.nn.init.normal_(conv.weight, std=0.2)  # trained-looking magnitudes, the last layer too
    module.eval().requires_grad_(False)
    metadata = {}
    if calibrated:
        batches = [torch.rand(2, 1, 24, 32, generator=torch.Generator().manual_seed(s)) for s in range(3)]
        metadata = {METADATA_KEY: calibrate(module, batches, "test").to_dict()}
    return LoadedModel(get_spec("espcn"), scale, module, None, metadata)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSR_ENGINE_DIR", str(tmp_path / "engines"))


@pytest.mark.parametrize("config", [None, SMALL_RELU], ids=["paper", "relu-residual"])
def test_fp32_matches_pytorch_on_every_shape(config):
    loaded = small(config)
    backend = create_backend(loaded, BackendOptions(backend="openvino", precision="fp32"))
    assert (backend.name, backend.precision, precision_of(backend)) == ("openvino", "fp32", "float32")
    for shape in [(1, 1, 20, 28), (3, 1, 13, 9)]:  # dynamic batch, height and width in one compiled model
        x = torch.rand(*shape)
        with torch.inference_mode():
            ref = loaded.module(x)
        out = backend(x)
        assert out.shape == ref.shape and out.dtype == torch.float32
        assert torch.allclose(out, ref, atol=1e-4), float((out - ref).abs().max())


def test_each_call_returns_its_own_array():
    backend = create_backend(small(), BackendOptions(backend="openvino", precision="fp32"))
    a, b = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    first = backend(a)
    kept = first.clone()
    backend(b)
    assert torch.equal(first, kept)  # the second call did not write into the first result


def test_int8_runs_the_qdq_graph_like_onnxruntime():
    loaded = small(SMALL_RELU, calibrated=True)
    ov = create_backend(loaded, BackendOptions(backend="openvino", precision="int8"))
    ort = create_backend(loaded, BackendOptions(backend="onnxruntime", precision="int8"))
    assert ov.path == ort.path and "_int8_" in ov.path.name  # one cached graph for both runtimes
    x = torch.rand(2, 1, 24, 32, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        ref = loaded.module(x)
    a, b = ov(x), ort(x)
    spread = float(ref.max() - ref.min())
    # Both are quantised the same way; they differ only in rounding order inside the kernels.
    assert float((a - b).abs().mean()) < 0.01 * spread
    assert 0 < float((a - ref).abs().max()) < 0.1 * spread  # int8, not a silent fp32 graph


@needs_bf16
def test_bf16_is_close_to_fp32_but_not_equal():
    loaded = small()
    bf16 = create_backend(loaded, BackendOptions(backend="openvino", precision="bf16"))
    assert precision_of(bf16) == "bfloat16"
    x = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref = loaded.module(x)
    error = (bf16(x) - ref).abs() / ref.abs().mean()
    assert 0 < float(error.max()) < 0.05  # 8 significant bits (measured: 0.015 max, 0.003 mean), not another network
    assert float(error.mean()) < 0.01


def test_bf16_without_native_support_is_refused(monkeypatch):
    monkeypatch.setattr(ov_module, "native_bf16", lambda: False)
    with pytest.raises(BackendError, match="needs a CPU with AVX512-BF16 or AMX"):
        create_backend(small(), BackendOptions(backend="openvino", precision="bf16"))
    # auto with bf16 asked for goes to eager PyTorch, which emulates it, and says so.
    backend = create_backend(small(), BackendOptions(precision="bf16"))
    assert backend.name == "torch-cpu" and "openvino with native bf16 is not here" in backend.reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU choice")
def test_auto_takes_the_low_precision_the_cpu_computes(monkeypatch, plain_cpu):
    calibrated, plain = small(SMALL_RELU, calibrated=True), small()
    # Neither VNNI nor native bf16: fp32 on onnxruntime, the faster fp32 runtime.
    assert (create_backend(plain, BackendOptions()).name, "fp32") == ("onnxruntime", "fp32")
    monkeypatch.setattr(ov_module, "native_bf16", lambda: True)
    backend = create_backend(plain, BackendOptions())
    assert (backend.name, backend.precision) == ("openvino", "bf16")
    assert backend.reason.startswith("no CUDA GPU; bf16: the CPU computes bf16 natively (not int8: no VNNI")
    monkeypatch.setattr(int8_module, "cpu_has_vnni", lambda: True)
    backend = create_backend(calibrated, BackendOptions())
    assert (backend.name, backend.precision) == ("openvino", "int8")  # int8 beats bf16 where it is calibrated
    assert create_backend(plain, BackendOptions()).precision == "bf16"  # no calibration: bf16 still
    assert create_backend(calibrated, BackendOptions(precision="fp32")).name == "onnxruntime"
    assert create_backend(calibrated, BackendOptions(backend="onnxruntime")).precision == "int8"  # no bf16 there
    monkeypatch.setattr(ov_module, "openvino_available", lambda: False)
    assert create_backend(calibrated, BackendOptions()).name == "onnxruntime"  # int8 without OpenVINO


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU choice")
def test_auto_goes_on_to_the_next_runtime_when_openvino_fails(monkeypatch, caplog, plain_cpu):
    def broken(*_args, **_kwargs):
        raise RuntimeError("simulated OpenVINO failure")

    monkeypatch.setattr(int8_module, "cpu_has_vnni", lambda: True)
    monkeypatch.setattr(ov_module, "OpenVINOBackend", broken)
    with caplog.at_level(logging.WARNING, logger="vidsr.backends"):
        backend = create_backend(small(SMALL_RELU, calibrated=True), BackendOptions())
    assert (backend.name, backend.precision) == ("onnxruntime", "int8")
    assert "openvino int8 failed: RuntimeError: simulated OpenVINO failure" in backend.reason
    assert "openvino int8 unavailable for espcn x2" in caplog.text
    with pytest.raises(RuntimeError, match="simulated"):  # asked for by name: an error, not a fallback
        create_backend(small(), BackendOptions(backend="openvino"))


def test_settings_reach_the_compiled_model():
    backend = create_backend(small(), BackendOptions(backend="openvino", precision="fp32", threads=1))
    assert backend.threads == 1
    assert int(backend.compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    assert int(backend.compiled.get_property("NUM_STREAMS")) == 1
    assert backend.compiled.get_property("ENABLE_CPU_PINNING") is False  # the codecs share these cores
    with pytest.raises(BackendError, match="threads must be 1 or more"):
        create_backend(small(), BackendOptions(backend="openvino", threads=0))


def test_errors_a_user_can_act_on():
    with pytest.raises(BackendError, match="openvino runs on the CPU"):
        create_backend(small(), BackendOptions(backend="openvino", device="cuda"))
    with pytest.raises(BackendError, match="runs fp32 or bf16 or int8"):
        create_backend(small(), BackendOptions(backend="openvino", precision="fp16"))
    with pytest.raises(BackendError, match="no int8 form"):
        create_backend(small(), BackendOptions(backend="openvino", precision="int8"))
    backend = create_backend(small(), BackendOptions(backend="openvino", precision="fp32"))
    with pytest.raises(BackendError, match="float32 CPU tensors"):
        backend(torch.rand(1, 1, 8, 8, dtype=torch.float64))


def test_damaged_cached_graph_is_exported_again(caplog):
    loaded = small(seed=4)
    first = create_backend(loaded, BackendOptions(backend="openvino", precision="fp32"))
    first.path.write_bytes(first.path.read_bytes()[:100])  # a copy cut short
    with caplog.at_level(logging.WARNING, logger="vidsr.backends.onnxruntime"):
        again = create_backend(loaded, BackendOptions(backend="openvino", precision="fp32"))
    assert "does not load in openvino" in caplog.text
    x = torch.rand(1, 1, 12, 12)
    with torch.inference_mode():
        assert torch.allclose(again(x), loaded.module(x), atol=1e-4)


@pytest.mark.parametrize(("weights", "precision", "bound"), [("robust", "int8", 45), ("paper", "bf16", 45)])
def test_shipped_sets_track_fp32_on_a_real_frame(weights, precision, bound):
    import av

    from vidsr.media.source import plane_view

    if precision == "bf16" and not ov_module.native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16/AMX)")
    with av.open(str(data_path("video", "vtest.avi"))) as c:
        frame = next(c.decode(video=0)).reformat(format="yuv420p")
        y, cb, cr = (plane_view(p) for p in frame.planes[:3])
    batch = PlaneBatch.stack([(y[:144, :192].copy(), cb[:72, :96].copy(), cr[:72, :96].copy())])
    g = output_geometry(144, 192, 2, 2, 2)
    outs = [
        Upscaler("espcn", 2, weights=weights, backend=backend, precision=p).upscale_planes(
            batch, BT601_STUDIO, BT601_STUDIO, g
        )
        for backend, p in (("openvino", precision), ("onnxruntime", "fp32"))
    ]
    a, b = (o.y.numpy().astype(float) for o in outs)
    psnr = 10 * np.log10(255**2 / ((a - b) ** 2).mean())
    assert bound < psnr < 100, psnr  # measured 55 dB (int8) and 56 dB (bf16): a lower precision, not fp32 again
    assert np.abs(a - b).mean() < 0.5


def test_cli_runs_openvino_and_says_so(tmp_path):
    from click.testing import CliRunner
    from conftest import make_clip

    from vidsr.cli.main import cli

    clip = make_clip(tmp_path / "c.mp4", frames=3, size=(32, 24))
    out = tmp_path / "up.mp4"
    args = ["upscale", str(clip), "-o", str(out), "-s", "2", "--backend", "openvino", "--threads", "1"]
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(cli, [*args, "--precision", "fp32", "--json", "--preset", "ultrafast"])
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["backend"], summary["precision"], summary["frames_out"]) == ("openvino", "float32", 3)
    assert out.is_file()
