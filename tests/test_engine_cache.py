"""The TensorRT engine cache: keys, names, sidecars, stale and corrupt files; the build code on a fake TensorRT."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vidsr.backends.engine_cache import (
    ENGINE_DIR_ENV,
    EngineBuildOptions,
    EngineCache,
    EngineKey,
    default_build_options,
    default_engine_dir,
    sha256_state_dict,
)
from vidsr.errors import BackendError

KEY = EngineKey(
    model="espcn",
    arch="espcn",
    scale=4,
    channels=1,
    weights_sha256="a" * 64,
    options=default_build_options("espcn"),
    tensorrt_version="10.3.0",
    gpu_name="NVIDIA H100 80GB HBM3",
)


# -- keys and names --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"weights_sha256": "b" * 64},
        {"options": replace(KEY.options, precision="fp32")},
        {"options": replace(KEY.options, max_batch=32)},
        {"options": replace(KEY.options, opt_hw=(270, 480))},
        {"tensorrt_version": "10.4.0"},
        {"gpu_name": "NVIDIA A100-SXM4-80GB"},
        {"scale": 2},
    ],
)
def test_any_change_gives_a_new_key_and_file(change, tmp_path):
    other = replace(KEY, **change)
    assert other.digest != KEY.digest
    cache = EngineCache(tmp_path)
    assert cache.paths(other).engine != cache.paths(KEY).engine


def test_same_inputs_same_key():
    assert replace(KEY).digest == KEY.digest
    assert replace(KEY, options=default_build_options("espcn")).stem == KEY.stem


def test_file_name_is_readable(tmp_path):
    paths = EngineCache(tmp_path).paths(KEY)
    name = paths.engine.name
    assert name.startswith("espcn_x4_fp16_b1-8-16_1088x1920_trt10.3.0_nvidia-h100-80gb-hbm3_")
    assert name.endswith(".engine") and KEY.digest[:12] in name
    assert paths.sidecar.name == name.replace(".engine", ".json")
    assert paths.build_log.name.endswith(".build.log")
    assert paths.timing_cache.name == "timing_trt10.3.0_nvidia-h100-80gb-hbm3.cache"


def test_options_are_validated():
    with pytest.raises(BackendError, match="min <= opt <= max batch"):
        EngineBuildOptions(opt_batch=9, max_batch=8)
    with pytest.raises(BackendError, match="width"):
        EngineBuildOptions(opt_hw=(270, 4000))
    with pytest.raises(BackendError, match="fp16 or fp32"):
        EngineBuildOptions(precision="int8")


def test_profile_shapes():
    low, opt, high = default_build_options("srresnet").profile(3)
    assert low == (1, 3, 16, 16) and opt == (8, 3, 270, 480) and high == (8, 3, 576, 1024)


def test_state_dict_checksum_follows_weights():
    a = {"w": torch.zeros(3), "b": torch.ones(2)}
    b = {"w": torch.zeros(3), "b": torch.tensor([1.0, 2.0])}
    assert sha256_state_dict(a) == sha256_state_dict(dict(reversed(list(a.items()))))
    assert sha256_state_dict(a) != sha256_state_dict(b)


def test_default_engine_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(ENGINE_DIR_ENV, str(tmp_path / "mine"))
    assert default_engine_dir() == tmp_path / "mine"
    monkeypatch.delenv(ENGINE_DIR_ENV)
    root = Path(__file__).resolve().parents[1]
    expected = root / "engines" if (root / "engines").is_dir() else Path.home() / ".cache" / "vidsr" / "engines"
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_engine_dir() == expected


# -- load or build ---------------------------------------------------------------------------
class Recorder:
    def __init__(self, payload: bytes = b"ENGINE-1") -> None:
        self.payload = payload
        self.builds = 0

    def build(self, paths) -> bytes:
        self.builds += 1
        paths.build_log.write_text("built\n")
        return self.payload

    @staticmethod
    def load(data: bytes):
        return data.decode() if data.startswith(b"ENGINE") else None  # anything else "does not deserialize"


def test_build_once_then_reuse(tmp_path):
    cache, rec = EngineCache(tmp_path / "engines"), Recorder()
    engine, built = cache.load_or_build(KEY, rec.build, rec.load)
    assert (engine, built, rec.builds) == ("ENGINE-1", True, 1)
    sidecar = json.loads(cache.paths(KEY).sidecar.read_text())
    assert sidecar["digest"] == KEY.digest
    assert sidecar["key"]["weights_sha256"] == "a" * 64
    assert sidecar["key"]["tensorrt_version"] == "10.3.0" and sidecar["key"]["gpu_name"] == KEY.gpu_name
    assert sidecar["key"]["options"]["precision"] == "fp16"
    engine, built = cache.load_or_build(KEY, rec.build, rec.load)
    assert (engine, built, rec.builds) == ("ENGINE-1", False, 1)
    assert cache.is_current(KEY)
    assert not list((tmp_path / "engines").glob(".*tmp"))


def test_changed_key_builds_a_new_engine(tmp_path):
    cache, rec = EngineCache(tmp_path), Recorder()
    cache.load_or_build(KEY, rec.build, rec.load)
    cache.load_or_build(replace(KEY, gpu_name="NVIDIA L4"), rec.build, rec.load)
    assert rec.builds == 2
    assert len(list(tmp_path.glob("*.engine"))) == 2


def test_corrupt_engine_is_rebuilt(tmp_path, caplog):
    cache, rec = EngineCache(tmp_path), Recorder()
    cache.load_or_build(KEY, rec.build, rec.load)
    cache.paths(KEY).engine.write_bytes(b"\x00garbage")
    engine, built = cache.load_or_build(KEY, rec.build, rec.load)
    assert built and engine == "ENGINE-1" and rec.builds == 2
    assert "does not deserialize; rebuilding" in caplog.text
    assert cache.paths(KEY).engine.read_bytes() == b"ENGINE-1"


def test_engine_without_matching_sidecar_is_rebuilt(tmp_path):
    cache, rec = EngineCache(tmp_path), Recorder()
    cache.load_or_build(KEY, rec.build, rec.load)
    sidecar = cache.paths(KEY).sidecar
    data = json.loads(sidecar.read_text())
    data["key"]["weights_sha256"] = "c" * 64
    sidecar.write_text(json.dumps(data))
    assert not cache.is_current(KEY)
    cache.load_or_build(KEY, rec.build, rec.load)
    assert rec.builds == 2


def test_force_rebuilds(tmp_path):
    cache, rec = EngineCache(tmp_path), Recorder()
    cache.load_or_build(KEY, rec.build, rec.load)
    cache.load_or_build(KEY, rec.build, rec.load, force=True)
    assert rec.builds == 2


def test_unloadable_fresh_build_names_the_log(tmp_path):
    cache = EngineCache(tmp_path)
    with pytest.raises(BackendError, match=r"cannot load; see the build log .*\.build\.log"):
        cache.load_or_build(KEY, Recorder(b"junk").build, Recorder.load)


def test_unwritable_cache_dir_says_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BackendError, match=f"set {ENGINE_DIR_ENV} to a writable folder"):
        EngineCache(blocker / "engines").load_or_build(KEY, Recorder().build, Recorder.load)


# -- the build code against a fake TensorRT 10 -------------------------------------------------
def fake_tensorrt(*, parse_ok: bool = True, build_ok: bool = True) -> types.ModuleType:
    """Just enough of the TensorRT 10 Python API for build_engine, recording what it was told."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    calls: dict = {"flags": [], "profiles": []}
    trt.calls = calls

    class Severity:
        def __init__(self, name):
            self.name = name

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO = (Severity(n) for n in ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO"))

        def __init__(self):
            pass

    class IProgressMonitor:
        def __init__(self):
            pass

    class Tensor:
        dtype = "FLOAT"

    class Network:
        def __init__(self):
            self.io = [Tensor(), Tensor()]

        def get_input(self, i):
            return self.io[0]

        def get_output(self, i):
            return self.io[1]

    class Profile:
        def set_shape(self, name, low, opt, high):
            calls["profiles"].append((name, low, opt, high))

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b"TIMING:" + self.data

    class Config:
        progress_monitor = None

        def set_memory_pool_limit(self, pool, size):
            calls["workspace"] = size

        def set_flag(self, flag):
            calls["flags"].append(flag)

        def add_optimization_profile(self, profile):
            calls["profile_added"] = True

        def create_timing_cache(self, data):
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            calls["network_flags"] = flags
            self.network = Network()
            return self.network

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            self.logger.log(ILogger.Severity.INFO, "building")
            config.progress_monitor.phase_start("Building engine", None, 3)
            config.progress_monitor.phase_finish("Building engine")
            calls["io_dtypes"] = (network.io[0].dtype, network.io[1].dtype)
            return b"SERIALIZED" if build_ok else None

    class OnnxParser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            calls["onnx"] = path
            return parse_ok

        def get_error(self, i):
            return "unsupported op Foo"

    trt.ILogger, trt.IProgressMonitor, trt.Builder, trt.OnnxParser = ILogger, IProgressMonitor, Builder, OnnxParser
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16")
    trt.DataType = types.SimpleNamespace(HALF="HALF", FLOAT="FLOAT")
    return trt


def test_build_engine_drives_the_tensorrt10_api(tmp_path, monkeypatch):
    from vidsr.backends.tensorrt import build_engine

    trt = fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    paths = EngineCache(tmp_path).paths(KEY)
    paths.timing_cache.write_bytes(b"old")
    messages: list[str] = []
    data = build_engine(tmp_path / "m.onnx", 1, KEY.options, paths, progress=messages.append)
    assert data == b"SERIALIZED"
    calls = trt.calls
    assert calls["network_flags"] == 0
    assert calls["flags"] == ["FP16"] and calls["io_dtypes"] == ("HALF", "HALF")
    assert calls["profiles"] == [("input", (1, 1, 16, 16), (8, 1, 540, 960), (16, 1, 1088, 1920))]
    assert calls["workspace"] == 4096 << 20
    assert paths.timing_cache.read_bytes() == b"TIMING:old"  # loaded, then saved back
    assert "[INFO] building" in paths.build_log.read_text()
    assert any("Building engine (3 steps)" in m for m in messages)
    assert any(m.startswith("engine built in") for m in messages)


def test_build_engine_fp32_sets_no_fp16_flag(tmp_path, monkeypatch):
    from vidsr.backends.tensorrt import build_engine

    trt = fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    options = replace(KEY.options, precision="fp32")
    build_engine(tmp_path / "m.onnx", 1, options, EngineCache(tmp_path).paths(replace(KEY, options=options)))
    assert trt.calls["flags"] == [] and trt.calls["io_dtypes"] == ("FLOAT", "FLOAT")


@pytest.mark.parametrize(
    ("parse_ok", "message"), [(False, "cannot parse .*unsupported op Foo"), (True, "build failed")]
)
def test_build_failures_name_the_build_log(tmp_path, monkeypatch, parse_ok, message):
    from vidsr.backends.tensorrt import build_engine

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(parse_ok=parse_ok, build_ok=False))
    paths = EngineCache(tmp_path).paths(KEY)
    with pytest.raises(BackendError, match=message) as info:
        build_engine(tmp_path / "m.onnx", 1, KEY.options, paths)
    assert str(paths.build_log) in str(info.value)
    assert paths.build_log.is_file()


def test_old_tensorrt_is_refused(monkeypatch):
    from vidsr.backends.tensorrt import import_tensorrt

    trt = fake_tensorrt()
    trt.__version__ = "8.6.1"
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(BackendError, match="needs TensorRT 10"):
        import_tensorrt()


# -- the real thing, where it exists ---------------------------------------------------------
@pytest.mark.tensorrt
@pytest.mark.cuda
def test_real_engine_build_and_run(tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA's index only); runs in docker/")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    from vidsr.backends.tensorrt import TensorRTBackend
    from vidsr.models import LoadedModel, get_spec
    from vidsr.models.espcn import espcn

    torch.manual_seed(0)
    loaded = LoadedModel(get_spec("espcn"), 2, espcn(scale=2).eval().requires_grad_(False))
    options = EngineBuildOptions("fp16", 1, 2, 4, (16, 16), (64, 64), (128, 128))
    backend = TensorRTBackend(loaded, torch.device("cuda"), options=options, engine_dir=tmp_path)
    x = torch.rand(3, 1, 40, 72)
    with torch.inference_mode():
        expected = loaded.module.float().cpu()(x)
    got = backend(x.cuda()).float().cpu()
    assert (got - expected).abs().max().item() < 2e-2
    again = TensorRTBackend(loaded, torch.device("cuda"), options=options, engine_dir=tmp_path)
    assert backend.built and not again.built


def test_cli_build_engine_without_tensorrt_says_how_to_get_it(monkeypatch):
    from click.testing import CliRunner

    from vidsr.cli.main import cli

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    result = CliRunner().invoke(cli, ["build-engine", "-m", "espcn", "-s", "2", "--random-weights"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: TensorRT is not installed: install it with `pip install 'vidsr[tensorrt]'`")


def test_cli_build_engine_rejects_bad_size():
    from click.testing import CliRunner

    from vidsr.cli.main import cli

    result = CliRunner().invoke(cli, ["build-engine", "--max-size", "big"])
    assert result.exit_code == 2 and "expected WIDTHxHEIGHT such as 960x540" in result.output
