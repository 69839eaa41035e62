"""The onnxruntime backend: same output as torch-cpu, the ONNX cache, auto's choice and fallback."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from conftest import data_path

from vidsr.backends import BackendOptions, create_backend
from vidsr.backends.onnxruntime import OnnxKey, OnnxRuntimeBackend, cached_onnx
from vidsr.colour import BT601_STUDIO
from vidsr.errors import BackendError
from vidsr.models import LoadedModel, build_model, get_spec
from vidsr.models.espcn import ESPCNConfig, espcn
from vidsr.upscaler import PlaneBatch, Upscaler, output_geometry

# A network of the deeper ESPCN family's shape: ReLU convolutions, PixelShuffle, plus an in-graph
# F.interpolate(bicubic) global residual (an ONNX Resize node); small, so the test stays quick.
RESIDUAL = ESPCNConfig(features=(16, 16, 16), head_kernel=3, activation="relu", residual=True)


def random_espcn(scale: int, config: ESPCNConfig | None = None, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    module = espcn(scale=scale) if config is None else espcn(scale=scale, config=config)
    for p in module.parameters():  # trained-looking magnitudes: the output is not flat grey
        p.data.mul_(1.5)
    return LoadedModel(get_spec("espcn"), scale, module.eval().requires_grad_(False))


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch):
    """Exports go to a folder of this test module, never into the checkout's engines/."""
    folder = tmp_path_factory.getbasetemp() / "onnx-cache"
    monkeypatch.setenv("VIDSR_ENGINE_DIR", str(folder))
    return folder


def frames(n: int, h: int, w: int, seed: int = 0) -> PlaneBatch:
    """Smooth structure plus noise: edges for the convolutions, overshoot for the clamps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        base = 128 + 100 * np.sin(xx / (3 + i) + yy / 5.0)
        y = np.clip(base + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)
        cb = rng.integers(16, 240, (h // 2, w // 2), dtype=np.uint8)
        cr = rng.integers(16, 240, (h // 2, w // 2), dtype=np.uint8)
        out.append((y, cb, cr))
    return PlaneBatch.stack(out)


def max_abs(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize(
    ("scale", "config"), [(2, None), (4, None), (3, RESIDUAL)], ids=["paper-x2", "paper-x4", "residual-x3"]
)
def test_same_output_as_torch_cpu(scale, config):
    loaded = random_espcn(scale, config)
    ort_up = Upscaler(loaded=loaded, scale=scale, backend="onnxruntime", tile_pixels=0)
    ref_up = Upscaler(loaded=random_espcn(scale, config), scale=scale, backend="torch-cpu", tile_pixels=0)
    assert ort_up.backend.name == "onnxruntime"
    batch = frames(2, 30, 42)
    g = output_geometry(30, 42, scale, 2, 2)
    got = ort_up.upscale_planes(batch, BT601_STUDIO, BT601_STUDIO, g).frames()
    ref = ref_up.upscale_planes(batch, BT601_STUDIO, BT601_STUDIO, g).frames()
    for a, b in zip(got, ref, strict=True):
        assert a[0].shape == (g.height, g.width)
        assert max_abs(a[0], b[0]) <= 1  # luma: the model's float differences, rounded
        assert max_abs(a[1], b[1]) == 0 and max_abs(a[2], b[2]) == 0  # chroma does not touch the model
    # And the model output itself, in float, to the exporter's precision.
    x = torch.rand(3, 1, 17, 23)
    assert torch.allclose(ort_up.run_model(x), ref_up.run_model(x), atol=1e-4)
    rgb = np.random.default_rng(1).integers(0, 256, (26, 34, 3), dtype=np.uint8)
    assert max_abs(ort_up.upscale_image(rgb), ref_up.upscale_image(rgb)) <= 1


def test_shipped_weights_on_a_real_frame():
    import av

    from vidsr.media.source import plane_view

    with av.open(str(data_path("video", "vtest.avi"))) as c:
        frame = next(c.decode(video=0)).reformat(format="yuv420p")
        y, cb, cr = (plane_view(p) for p in frame.planes[:3])
    batch = PlaneBatch.stack([(y[:144, :192].copy(), cb[:72, :96].copy(), cr[:72, :96].copy())])
    g = output_geometry(144, 192, 2, 2, 2)
    # fp32: on a VNNI CPU auto would pick the int8 graph (tests/test_int8.py holds it to its own bar).
    got = Upscaler("espcn", 2, backend="onnxruntime", precision="fp32").upscale_planes(
        batch, BT601_STUDIO, BT601_STUDIO, g
    )
    ref = Upscaler("espcn", 2, backend="torch-cpu").upscale_planes(batch, BT601_STUDIO, BT601_STUDIO, g)
    assert max_abs(got.y.numpy(), ref.y.numpy()) <= 1
    assert float(got.y.float().std()) > 10  # a real picture, not a flat one


def test_onnx_is_exported_once_and_keyed_by_weights(onnx_cache):
    loaded = random_espcn(2, seed=5)
    path, exported = cached_onnx(loaded)
    assert exported and path.parent == onnx_cache and path.name.startswith("espcn_x2_opset")
    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    assert sidecar["key"]["weights_sha256"] == OnnxKey.of(loaded).weights_sha256
    again, exported = cached_onnx(random_espcn(2, seed=5))  # same weights, a fresh module
    assert (again, exported) == (path, False)
    other, exported = cached_onnx(random_espcn(2, seed=6))
    assert exported and other != path
    # The structure is part of the key even where the tensors' shapes would not tell.
    assert OnnxKey.of(random_espcn(2, RESIDUAL)).structure_sha256 != OnnxKey.of(random_espcn(2)).structure_sha256
    assert not [p for p in onnx_cache.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_damaged_cached_file_is_exported_again(onnx_cache, caplog):
    loaded = random_espcn(2, seed=7)
    path, _ = cached_onnx(loaded)
    path.write_bytes(path.read_bytes()[:100])  # a copy cut short
    with caplog.at_level(logging.WARNING, logger="vidsr.backends.onnxruntime"):
        backend = OnnxRuntimeBackend(loaded)
    assert "does not load" in caplog.text
    x = torch.rand(1, 1, 12, 12)
    with torch.inference_mode():
        assert torch.allclose(backend(x), loaded.module(x), atol=1e-4)


def test_threads_are_set_on_the_session():
    backend = OnnxRuntimeBackend(random_espcn(2), threads=1)
    assert backend.threads == 1
    assert backend.session.get_session_options().intra_op_num_threads == 1
    default = OnnxRuntimeBackend(random_espcn(2))
    assert default.threads == torch.get_num_threads()
    with pytest.raises(BackendError, match="threads must be 1 or more"):
        OnnxRuntimeBackend(random_espcn(2), threads=0)


def test_errors_a_user_can_act_on():
    with pytest.raises(BackendError, match="interpolation baseline"):
        create_backend(build_model("bicubic", 2), BackendOptions(backend="onnxruntime"))
    with pytest.raises(BackendError, match="onnxruntime runs on the CPU"):
        create_backend(random_espcn(2), BackendOptions(backend="onnxruntime", device="cuda"))
    with pytest.raises(BackendError, match="runs fp32"):
        create_backend(random_espcn(2), BackendOptions(backend="onnxruntime", precision="bf16"))
    backend = OnnxRuntimeBackend(random_espcn(2))
    with pytest.raises(BackendError, match="float32 CPU tensors"):
        backend(torch.rand(1, 1, 8, 8, dtype=torch.float64))


def test_auto_falls_back_to_torch_cpu_when_onnxruntime_fails(monkeypatch, caplog, plain_cpu):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU choice")
    import vidsr.backends.onnxruntime as ort_backend

    def broken(*args, **kwargs):
        raise RuntimeError("simulated onnxruntime failure")

    import vidsr.backends.openvino as ov_backend

    monkeypatch.setattr(ort_backend, "OnnxRuntimeBackend", broken)
    monkeypatch.setattr(ov_backend, "OpenVINOBackend", broken)
    with caplog.at_level(logging.WARNING, logger="vidsr.backends"):
        backend = create_backend(random_espcn(2), BackendOptions())
    assert backend.name == "torch-cpu"
    assert "onnxruntime fp32 failed: RuntimeError: simulated onnxruntime failure" in backend.reason
    assert "onnxruntime fp32 unavailable for espcn x2" in caplog.text
    # Baselines never go to onnxruntime.
    assert create_backend(build_model("bicubic", 2), BackendOptions()).name == "torch-cpu"


def test_cli_threads_reach_the_model(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from conftest import make_clip

    from vidsr.cli.main import cli

    seen = []
    original = OnnxRuntimeBackend.__init__

    def spy(self, loaded, *, threads=None, **kwargs):
        original(self, loaded, threads=threads, **kwargs)
        seen.append((threads, self.session.get_session_options().intra_op_num_threads))

    monkeypatch.setattr(OnnxRuntimeBackend, "__init__", spy)
    before = torch.get_num_threads()
    clip = make_clip(tmp_path / "c.mp4", frames=3, size=(32, 24))
    try:
        args = [
            "upscale",
            str(clip),
            "-s",
            "2",
            "--backend",
            "onnxruntime",
            "--threads",
            "1",
            "--json",
            "--preset",
            "ultrafast",
        ]
        result = CliRunner().invoke(cli, args)
        assert torch.get_num_threads() == 1  # torch-cpu and the pre/post-processing follow --threads too
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["backend"] == "onnxruntime"
    assert seen == [(1, 1)]
