"""Backend selection, the FP16 first-batch fallback, and (on a GPU) torch-cuda against eager."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch

from vidsr.backends import BackendOptions, TorchBackend, create_backend, resolve_dtype
from vidsr.colour import BT601_STUDIO
from vidsr.errors import BackendError
from vidsr.models import LoadedModel, get_spec
from vidsr.models.espcn import espcn
from vidsr.models.srresnet import srresnet
from vidsr.upscaler import PlaneBatch, Upscaler, output_geometry

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (none visible to PyTorch here)")


def random_model(name: str = "espcn", scale: int = 2) -> LoadedModel:
    torch.manual_seed(0)
    module = espcn(scale=scale) if name == "espcn" else srresnet(scale=scale, blocks=2)
    return LoadedModel(get_spec(name), scale, module.eval().requires_grad_(False))


# -- selection ---------------------------------------------------------------------------------
@pytest.mark.skipif(CUDA, reason="checks the CPU-only choice")
def test_auto_without_gpu_picks_onnxruntime_and_says_why(plain_cpu):
    backend = create_backend(random_model(), BackendOptions())
    assert backend.name == "onnxruntime"  # the measured fp32 CPU winner for learned models
    assert backend.dtype == torch.float32
    assert backend.reason.startswith("no CUDA GPU; fp32: ")  # and why not int8 (see tests/test_int8.py)
    # Eager PyTorch stays the choice where no ONNX runtime applies: bf16 without a CPU that computes it.
    assert create_backend(random_model(), BackendOptions(precision="bf16")).name == "torch-cpu"


def test_auto_logs_its_choice(caplog, plain_cpu):
    with caplog.at_level(logging.INFO, logger="vidsr.backends"):
        create_backend(random_model(), BackendOptions(device="cpu"))
    assert "backend auto -> onnxruntime" in caplog.text


def test_describe_mentions_auto_choice(plain_cpu):
    up = Upscaler(loaded=random_model(), scale=2, device="cpu")
    assert up.describe() == (
        "espcn x2 on onnxruntime (float32), chosen by auto: --device cpu; "
        "fp32: no VNNI on this CPU, where int8 was not measured to pay"
    )
    assert "chosen" not in Upscaler(loaded=random_model(), scale=2, backend="torch-cpu").describe()


@pytest.mark.skipif(CUDA, reason="checks the error without a GPU")
@pytest.mark.parametrize("name", ["torch-cuda", "tensorrt"])
def test_gpu_backends_without_gpu_fail_clearly(name):
    # It names what the user asked for (the backend), not an option they never passed.
    with pytest.raises(BackendError, match=rf"^--backend {name} needs a CUDA GPU, but PyTorch finds none here"):
        create_backend(random_model(), BackendOptions(backend=name))


def test_unknown_backend_and_precision():
    with pytest.raises(BackendError, match="unknown backend 'cuda'; choose from auto, tensorrt"):
        create_backend(random_model(), BackendOptions(backend="cuda"))
    with pytest.raises(BackendError, match="unknown precision"):
        create_backend(random_model(), BackendOptions(precision="int4"))


def test_fp16_on_cpu_is_refused():
    with pytest.raises(BackendError, match="fp16 runs on CUDA only"):
        create_backend(random_model(), BackendOptions(backend="torch-cpu", precision="fp16"))


def test_torch_cpu_refuses_cuda_device():
    with pytest.raises(BackendError, match="runs on the CPU"):
        create_backend(random_model(), BackendOptions(backend="torch-cpu", device="cuda"))


def test_resolve_dtype():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_dtype("auto", cpu, True) == torch.float32
    assert resolve_dtype("auto", cuda, True) == torch.float16
    assert resolve_dtype("auto", cuda, False) == torch.float32
    assert resolve_dtype("bf16", cpu, True) == torch.bfloat16


def test_tensorrt_absent_message(monkeypatch):
    import builtins

    from vidsr.backends import tensorrt as trt_backend

    real_import = builtins.__import__

    def no_tensorrt(name, *args, **kwargs):
        if name == "tensorrt":
            raise ImportError("no tensorrt")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorrt)
    with pytest.raises(
        BackendError, match=r"TensorRT is not installed: install it with `pip install 'vidsr\[tensorrt\]'`"
    ):
        trt_backend.import_tensorrt()
    assert not trt_backend.tensorrt_available()


@pytest.mark.parametrize("error", [AttributeError("BuilderFlag has no attribute FP16"), BackendError("no engine")])
def test_auto_falls_back_to_torch_cuda_on_any_tensorrt_error(monkeypatch, caplog, error):
    """An API TensorRT lacks (AttributeError) or a failed build: auto must still give a working backend."""
    import vidsr.backends as backends
    from vidsr.backends import tensorrt as trt_backend

    def broken(*args):
        raise error

    stand_in = TorchBackend(random_model(), torch.device("cpu"), torch.float32)
    monkeypatch.setattr(backends, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(trt_backend, "tensorrt_available", lambda: True)
    monkeypatch.setattr(backends, "_tensorrt", broken)
    monkeypatch.setattr(backends, "_torch_cuda", lambda *args: stand_in)
    with caplog.at_level(logging.WARNING, logger="vidsr.backends"):
        backend = create_backend(random_model(), BackendOptions())
    assert backend is stand_in
    assert backend.reason.startswith("TensorRT failed: ") and str(error) in backend.reason
    assert "TensorRT unavailable for espcn x2" in caplog.text and "using torch-cuda" in caplog.text


def test_keyboard_interrupt_is_not_swallowed_by_auto(monkeypatch):
    import vidsr.backends as backends
    from vidsr.backends import tensorrt as trt_backend

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(backends, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(trt_backend, "tensorrt_available", lambda: True)
    monkeypatch.setattr(backends, "_tensorrt", interrupted)
    with pytest.raises(KeyboardInterrupt):
        create_backend(random_model(), BackendOptions())


# -- FP16 safety -----------------------------------------------------------------------------
class FakeHalf:
    """Pretends to be an fp16 backend whose output overflowed."""

    name = "fake-fp16"
    device = torch.device("cpu")
    dtype = torch.float16

    def __init__(self, result: str) -> None:
        self.result = result
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = torch.zeros(x.shape[0], x.shape[1], x.shape[2] * 2, x.shape[3] * 2)
        return out.fill_(float("nan")) if self.result == "nan" else out


@pytest.mark.parametrize(("result", "reason"), [("nan", "NaN/inf values"), ("black", "an all-black result")])
def test_bad_first_fp16_batch_falls_back_to_fp32(result, reason, caplog):
    up = Upscaler(loaded=random_model(), scale=2, backend="torch-cpu", tile_pixels=0)
    reference = up.backend(torch.full((1, 1, 8, 8), 0.5))
    up._checked = False
    up.backend = fake = FakeHalf(result)
    x = torch.full((1, 1, 8, 8), 0.5)
    with caplog.at_level(logging.WARNING, logger="vidsr.upscaler"):
        out = up.run_model(x)
    assert fake.calls == 1
    assert up.backend.dtype == torch.float32 and isinstance(up.backend, TorchBackend)
    assert up.options.precision == "fp32"
    assert reason in caplog.text and "falling back to fp32" in caplog.text
    assert up.warnings and "falling back to fp32" in up.warnings[0]
    assert torch.allclose(out, reference.clamp(0, 1), atol=1e-6)


def test_fallback_restores_full_precision_weights():
    loaded = random_model()
    original = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    up = Upscaler(loaded=loaded, scale=2, backend="torch-cpu", precision="bf16", tile_pixels=0)
    assert next(loaded.module.parameters()).dtype == torch.bfloat16  # rounded in place
    up.backend = FakeHalf("nan")
    up.run_model(torch.full((1, 1, 8, 8), 0.5))
    assert up.backend.dtype == torch.float32
    for name, value in up.backend.module.state_dict().items():
        assert torch.equal(value, original[name]), name


def test_black_output_from_black_input_is_fine():
    up = Upscaler(loaded=random_model(), scale=2, backend="torch-cpu", tile_pixels=0)
    up.backend = fake = FakeHalf("black")
    up.run_model(torch.zeros(1, 1, 8, 8))
    assert up.backend is fake and not up.warnings


def test_check_runs_on_first_batch_only():
    up = Upscaler(loaded=random_model(), scale=2, backend="torch-cpu", tile_pixels=0)
    up.run_model(torch.rand(1, 1, 8, 8))  # a good first batch
    up.backend = fake = FakeHalf("nan")
    up.run_model(torch.rand(1, 1, 8, 8))
    assert up.backend is fake  # later batches are not re-checked (it costs a sync per batch)


# -- the planes path -------------------------------------------------------------------------
def test_upscale_planes_on_cpu_matches_shapes():
    up = Upscaler(loaded=random_model(), scale=2, backend="torch-cpu")
    rng = np.random.default_rng(0)
    frames = [(rng.integers(0, 256, (16, 20), np.uint8), *(rng.integers(0, 256, (8, 10), np.uint8),) * 2)]
    g = output_geometry(16, 20, 2, 2, 2)
    out = up.upscale_planes(PlaneBatch.stack(frames), BT601_STUDIO, BT601_STUDIO, g)
    ((y, cb, _cr),) = out.frames()
    assert y.shape == (32, 40) and cb.shape == (16, 20) and y.dtype == np.uint8


# -- CUDA (skipped without a GPU) ------------------------------------------------------------
@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("name", ["espcn", "srresnet"])
def test_torch_cuda_matches_eager_fp32(name):
    from vidsr.backends.torch_cuda import TorchCudaBackend

    loaded = random_model(name)
    x = torch.rand(3, loaded.spec.channels, 40, 56)
    with torch.inference_mode():
        expected = loaded.module(x)
    backend = TorchCudaBackend(random_model(name), torch.device("cuda"), torch.float32, compile=False)
    for n in (3, 2):  # the second call is a short batch: padded into the captured graph
        got = backend(x[:n].cuda()).float().cpu()
        assert (got - expected[:n]).abs().max().item() < 1e-3
    assert len(backend.graphs.graphs) == 1


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA or torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_torch_cuda_graphs_on_the_second_gpu_replay_each_batch():
    """Captured on the current device instead of cuda:1, a graph replays nothing: every batch = the first."""
    from vidsr.backends.torch_cuda import TorchCudaBackend

    loaded = random_model("espcn")
    backend = TorchCudaBackend(random_model("espcn"), torch.device("cuda:1"), torch.float32, compile=False)
    for seed in range(3):
        x = torch.rand(2, 1, 32, 48, generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            expected = loaded.module(x)
        got = backend(x.to("cuda:1")).cpu()
        assert (got - expected).abs().max().item() < 1e-3, f"batch {seed}"


@pytest.mark.cuda
@needs_cuda
def test_torch_cuda_fp16_compiled_close_to_fp32():
    loaded = random_model("espcn")
    x = torch.rand(4, 1, 64, 64)
    with torch.inference_mode():
        expected = loaded.module(x)
    up = Upscaler(loaded=random_model("espcn"), scale=2, backend="torch-cuda", precision="fp16")
    got = up.run_model(x.cuda()).cpu()
    assert (got - expected.clamp(0, 1)).abs().max().item() < 2e-2


@pytest.mark.cuda
@needs_cuda
def test_cuda_planes_upload_through_copy_stream():
    up = Upscaler(loaded=random_model(), scale=2, backend="torch-cuda", compile=False)
    cpu = Upscaler(loaded=random_model(), scale=2, backend="torch-cpu")
    rng = np.random.default_rng(1)
    frames = [(rng.integers(16, 236, (32, 48), np.uint8), *(rng.integers(16, 240, (16, 24), np.uint8),) * 2)] * 3
    g = output_geometry(32, 48, 2, 2, 2)
    a = up.upscale_planes(PlaneBatch.stack(frames, pin=True), BT601_STUDIO, BT601_STUDIO, g).frames()
    b = cpu.upscale_planes(PlaneBatch.stack(frames), BT601_STUDIO, BT601_STUDIO, g).frames()
    for fa, fb in zip(a, b, strict=True):
        for pa, pb in zip(fa, fb, strict=True):
            assert np.abs(pa.astype(int) - pb.astype(int)).max() <= 2


@pytest.mark.cuda
@needs_cuda
def test_cuda_pipeline_through_pooled_buffers_matches_the_cpu(tmp_path, monkeypatch):
    """The whole video path on CUDA (uploads from pooled pinned buffers on the copy stream, downloads
    on their own stream, waited for by the encode thread) gives the CPU's frames, and the pools stop
    growing once the pipeline is full.  In true fp32: cuDNN's default TF32 convolutions put a few
    codes 2 off (seen on the H200), which says nothing about the pipeline."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    from conftest import decoded, make_clip

    from vidsr.media.sink import EncodeOptions
    from vidsr.video import upscale_video

    clip = make_clip(tmp_path / "c.mkv", frames=40, size=(96, 64), codec="ffv1", pix_fmt="yuv420p")
    outs = {}
    for backend in ("torch-cuda", "torch-cpu"):
        up = Upscaler(loaded=random_model(), scale=2, backend=backend, precision="fp32")
        out = tmp_path / f"{backend}.mkv"
        lossless = EncodeOptions(lossless=True)
        upscale_video(clip, out, upscaler=up, progress=False, batch_size=4, hwdec="none", encode=lossless)
        outs[backend] = [f.to_ndarray(format="gray").astype(int) for f in decoded(out)]
        if backend == "torch-cuda":
            assert up._buffers.allocated <= 3 * 6  # 3 planes x (uploads + downloads in flight), not x 10 batches
    assert len(outs["torch-cuda"]) == len(outs["torch-cpu"]) == 40
    for a, b in zip(outs["torch-cuda"], outs["torch-cpu"], strict=True):
        assert np.abs(a - b).max() <= 1


# -- hardware video --------------------------------------------------------------------------
def test_hwdec_choices():
    from vidsr.backends.hwvideo import decode_hwaccel

    assert decode_hwaccel("none") is None
    with pytest.raises(BackendError, match="unknown --hwdec 'nvdec'"):
        decode_hwaccel("nvdec")


@pytest.mark.skipif(CUDA, reason="checks the behaviour without a GPU")
def test_hwdec_without_gpu():
    from vidsr.backends.hwvideo import decode_hwaccel

    assert decode_hwaccel("auto") is None  # auto quietly decodes in software
    with pytest.raises(BackendError, match="--hwdec cuda: no CUDA GPU is visible"):
        decode_hwaccel("cuda")


@pytest.mark.parametrize("version", ["17.0.1", "14.4.0"])
def test_hwdec_refuses_pyav_that_drops_colour_tags(monkeypatch, caplog, version):
    import av

    from vidsr.backends.hwvideo import decode_hwaccel

    monkeypatch.setattr(av, "__version__", version)
    with pytest.raises(BackendError, match=rf"PyAV {version} drops the colour tags .*pip install 'av>=18'"):
        decode_hwaccel("cuda")
    with caplog.at_level(logging.WARNING, logger="vidsr.backends.hwvideo"):
        assert decode_hwaccel("auto") is None
    assert "decoding in software" in caplog.text


def test_software_encoder_checks_clean():
    from vidsr.backends.hwvideo import check_encoder

    check_encoder("libx264")
    with pytest.raises(BackendError, match="encoder nosuch_enc is not in this FFmpeg build"):
        check_encoder("nosuch_enc")


@pytest.mark.skipif(CUDA, reason="a GPU host may well have NVENC")
def test_nvenc_without_gpu_is_a_clear_error():
    from vidsr.backends.hwvideo import check_encoder

    with pytest.raises(BackendError, match=r"h264_nvenc .*use libx264 or libx265"):
        check_encoder("h264_nvenc")


def test_cli_help_never_imports_tensorrt():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from vidsr.cli.main import cli\n"
        "try:\n"
        "    cli(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'tensorrt' not in sys.modules, 'vidsr --help imported tensorrt'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "build-engine" in result.stdout and "export-onnx" in result.stdout


# -- packaging -------------------------------------------------------------------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_tensorrt_extra_has_what_the_onnx_export_imports():
    """torch.onnx.export(dynamo=True) imports onnxscript and onnx: `pip install vidsr[tensorrt]` must bring them."""
    project = _pyproject()["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["tensorrt"]
    names = {re.split(r"[<>=!~\[ ]", req)[0] for req in wanted}
    assert {"onnx", "onnxscript", "tensorrt"} <= names


def test_tensorrt_extra_allows_10_and_11_only():
    """The backend builds and runs on TensorRT 10 and 11 (tests/test_tensorrt_run.py, both stand-ins); 12 is unknown."""
    (spec,) = [r for r in _pyproject()["project"]["optional-dependencies"]["tensorrt"] if r.startswith("tensorrt")]
    assert spec.replace(" ", "") == "tensorrt>=10,<12"


def test_pyav_18_1_is_required():
    """18: NVDEC frames keep their colour tags; 18.1: the codec context's field_order (interlace)."""
    (spec,) = [r for r in _pyproject()["project"]["dependencies"] if re.match(r"av\b", r)]
    assert spec.replace(" ", "") == "av>=18.1"


def test_export_without_onnxscript_says_what_to_install(monkeypatch, tmp_path):
    import sys

    from vidsr.backends.onnx_export import export_onnx

    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(BackendError, match=r"ONNX export needs onnxscript: pip install 'vidsr\[tensorrt\]'"):
        export_onnx(random_model(), tmp_path / "m.onnx")


def test_docker_image_exposes_nvdec_and_nvenc():
    """Without the video capability the container lacks libnvcuvid: --hwdec cuda would decode in software."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    (caps,) = re.findall(r"NVIDIA_DRIVER_CAPABILITIES=(\S+)", text)
    assert set(caps.split(",")) >= {"compute", "utility", "video"}
