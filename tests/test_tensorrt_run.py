"""The TensorRT build and run code, end to end on the CPU, against the strict stand-in (tests/trt_standin.py).

Every test that takes the ``trt`` fixture runs twice: against the stand-in of TensorRT 10.7
and of TensorRT 11.4 (strongly typed networks only, no FP16 builder flag).  The model is
exported to ONNX for real (and converted to float16 for fp16 engines); the stand-in "engine"
runs that graph in onnxruntime, reading its input from the address vidsr gives and writing
to the output address.  The reference is the PyTorch module run eagerly: wrong shapes,
addresses, dtypes, graph types or batch splitting give wrong pixels.  A FakeCuda
(tests/cuda_standin.py) with two GPUs checks that the work happens on the backend's device
and stream.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import replace

import pytest
import torch
from cuda_standin import FakeCuda
from torch import nn
from trt_standin import ALIGNMENT, TIMING_MAGIC, VERSIONS, StrictError, make_tensorrt

from vidsr.backends.engine_cache import EngineBuildOptions, EngineCache
from vidsr.errors import BackendError
from vidsr.models import LoadedModel, get_spec

pytest.importorskip("onnxruntime", reason="the stand-in engine runs the ONNX export in onnxruntime")

GPU = "NVIDIA Stand-in GPU"
# Batch up to 2 (so a batch of 5 is split 2+2+1), frames 8x8 to 64x64 (model input).
OPTIONS = EngineBuildOptions("fp16", 1, 2, 2, (8, 8), (16, 16), (64, 64), workspace_mib=64)


class TinySR(nn.Module):
    """Conv + PixelShuffle x2 with a bias: enough to tell a right pixel from a wrong one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def tiny_model() -> LoadedModel:
    torch.manual_seed(3)
    return LoadedModel(get_spec("espcn"), 2, TinySR().eval().requires_grad_(False))


@pytest.fixture
def fake() -> FakeCuda:
    return FakeCuda(devices=2, name=GPU)


@pytest.fixture(scope="module", params=VERSIONS)
def version(request) -> str:
    """The TensorRT the stand-in mimics: each test using it runs once per major version."""
    return request.param


@pytest.fixture
def trt(monkeypatch, fake, version):
    """A fresh stand-in TensorRT (a fresh process, as far as its one-logger rule goes)."""
    module = make_tensorrt(gpu=GPU, cuda=fake, version=version)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


@pytest.fixture(scope="module")
def built_dir(tmp_path_factory, version):
    """An engine cache holding the fp16 engine of tiny_model() for ``version``, built once for the module."""
    from vidsr.backends.tensorrt import TensorRTBackend

    directory = tmp_path_factory.mktemp("engines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "tensorrt", make_tensorrt(gpu=GPU, cuda=FakeCuda(2, GPU), version=version))
        backend = TensorRTBackend(
            tiny_model(), torch.device("cuda:1"), options=OPTIONS, engine_dir=directory, cuda=FakeCuda(2, GPU)
        )
    assert backend.built
    return directory


@pytest.fixture(scope="module")
def onnx_file(built_dir):
    """The float32 ONNX export the cached engine was built from (build_engine tests start from it)."""
    (path,) = (p for p in built_dir.glob("*.onnx") if not p.name.endswith(".fp16.onnx"))
    return path


def backend_on(device: str, trt, fake, engine_dir, options=OPTIONS):
    from vidsr.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(tiny_model(), torch.device(device), options=options, engine_dir=engine_dir, cuda=fake)


def reference(x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return tiny_model().module(x.float())


# -- running -----------------------------------------------------------------------------------
def test_cached_engine_runs_split_batches_on_its_device_and_stream(trt, fake, built_dir):
    backend = backend_on("cuda:1", trt, fake, built_dir)
    assert not backend.built  # loaded from the cache
    assert backend.dtype == torch.float16 and backend.output_dtype == torch.float16
    x = torch.rand(5, 1, 12, 20)
    got = backend(x)  # float32 in: converted to the engine's fp16 input
    assert got.dtype == torch.float16 and got.shape == (5, 1, 24, 40)
    # The float16 graph: input, weights, output rounded to 11 significant bits.
    assert (got.float() - reference(x.half())).abs().max().item() < 4e-3
    runs = trt.record["executions"]
    assert [r["shape"] for r in runs] == [(2, 1, 12, 20), (2, 1, 12, 20), (1, 1, 12, 20)]
    assert {r["device"] for r in runs} == {1}
    assert {r["stream"] for r in runs} == {backend.stream.cuda_stream} and backend.stream.device == 1
    assert all(r["input"] % ALIGNMENT == 0 and r["output"] % ALIGNMENT == 0 for r in runs)


def test_split_views_are_unaligned_so_they_are_copied(trt, fake, built_dir, monkeypatch):
    """The second chunk of a split fp16 batch starts 960 bytes in: TensorRT refuses that pointer."""
    from vidsr.backends import tensorrt as trt_backend

    backend = backend_on("cuda:0", trt, fake, built_dir)
    x = torch.rand(4, 1, 12, 20, dtype=torch.float16)
    second = x.split(2)[1]
    assert (second.data_ptr() - x.data_ptr()) % ALIGNMENT != 0  # the premise
    monkeypatch.setattr(trt_backend, "_aligned", lambda t: t)  # without the copy...
    x = trt_backend.aligned_empty(tuple(x.shape), x.dtype, x.device).copy_(x)
    with pytest.raises(BackendError, match=r"refused the address of 'input' .* needs 256-byte alignment"):
        backend(x)  # ...the first chunk runs, the second is refused and the error says why


def test_orders_its_private_stream_against_the_callers(trt, fake, built_dir):
    backend = backend_on("cuda:1", trt, fake, built_dir)
    caller = fake.current_stream(torch.device("cuda:1"))
    assert caller.cuda_stream == 0  # torch's current stream is the legacy default unless set
    x = torch.rand(1, 1, 16, 16)
    out = backend(x)
    assert caller in backend.stream.waited_on and backend.stream in caller.waited_on
    recorded = {ptr for ptr, stream in fake.recorded if stream is backend.stream}
    assert out.data_ptr() in recorded


def test_fp32_engine_has_float_io(trt, fake, tmp_path):
    options = replace(OPTIONS, precision="fp32")
    backend = backend_on("cuda:0", trt, fake, tmp_path, options)
    assert backend.built and backend.dtype == torch.float32
    build = trt.record["builds"][-1]
    assert build["strongly_typed"] and build["flags"] == []
    assert build["input"][1] == "FLOAT" and build["output"][1] == "FLOAT"
    x = torch.rand(3, 1, 9, 33)
    got = backend(x)
    assert got.dtype == torch.float32
    assert (got - reference(x)).abs().max().item() < 1e-5


def test_frame_outside_the_profile_is_refused_before_tensorrt(trt, fake, built_dir):
    backend = backend_on("cuda:0", trt, fake, built_dir)
    with pytest.raises(BackendError, match=r"frame 4x4 is outside the engine profile \(8x8 to 64x64\)"):
        backend(torch.rand(1, 1, 4, 4))
    assert trt.record["executions"] == []


# -- building ----------------------------------------------------------------------------------
def paths_for(tmp_path, trt, options=OPTIONS):
    from vidsr.backends.tensorrt import engine_key

    return EngineCache(tmp_path).paths(engine_key(tiny_model(), options, trt.__version__, GPU))


def test_build_tells_tensorrt_what_the_options_say(trt, tmp_path, onnx_file, monkeypatch):
    from vidsr.backends.tensorrt import build_engine

    replaced: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(os.fspath(b)), real_replace(a, b)))
    paths = paths_for(tmp_path, trt)
    messages: list[str] = []
    data = build_engine(onnx_file, 1, OPTIONS, paths, progress=messages.append)
    (build,) = trt.record["builds"]
    # FP16 from the graph's types, not from a builder flag (TensorRT 11 has none).
    assert build["strongly_typed"] and build["flags"] == []
    assert build["input"] == ["input", "HALF"] and build["output"] == ["output", "HALF"]
    assert f"parsing {paths.engine.stem}.fp16.onnx" in messages  # the float16 graph, kept beside the engine
    assert paths.engine.with_suffix(".fp16.onnx").is_file()
    assert build["pools"] == {"WORKSPACE": 64 * 1024 * 1024}
    assert build["profile"] == [[[1, 1, 8, 8], [2, 1, 16, 16], [2, 1, 64, 64]]]
    assert build["timing_cache"] == [GPU, trt.__version__]
    assert data.startswith(b"VIDSR-STANDIN-ENGINE")
    assert "Building engine (2 steps)" in messages
    # The timing cache was written under a temporary name and renamed (parallel workers share it).
    assert str(paths.timing_cache) in replaced
    assert paths.timing_cache.read_bytes().startswith(TIMING_MAGIC + f"{GPU}|{trt.__version__}|".encode())


def test_build_log_gets_tensorrts_messages_though_a_runtime_came_first(trt, tmp_path, onnx_file):
    from vidsr.backends.tensorrt import PROCESS_LOGGER, build_engine

    trt.Runtime(PROCESS_LOGGER.get(trt))  # what prepare_engine does before it builds
    paths = paths_for(tmp_path, trt)
    build_engine(onnx_file, 1, OPTIONS, paths)
    assert f"[INFO] building for {GPU}" in paths.build_log.read_text()


def test_standin_keeps_the_first_logger_like_tensorrt(trt, tmp_path, onnx_file):
    """Why one logger per process: a logger made for a Runtime first takes every later message."""
    from vidsr.backends.tensorrt import build_engine

    class First(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.seen = []

        def log(self, severity, msg):
            self.seen.append(msg)

    first = First()
    trt.Runtime(first)
    paths = paths_for(tmp_path, trt)
    build_engine(onnx_file, 1, OPTIONS, paths)
    assert any(m.startswith("building for") for m in first.seen)
    assert "[INFO]" not in paths.build_log.read_text()


@pytest.mark.parametrize("foreign", ["gpu", "tensorrt"])
def test_mismatched_timing_cache_is_rebuilt_not_used(trt, tmp_path, onnx_file, caplog, foreign):
    """A cache from another GPU or TensorRT holds timings that do not apply: a new one replaces it."""
    from vidsr.backends.tensorrt import build_engine

    other_version = next(v for v in VERSIONS if v != trt.__version__)
    origin = ("NVIDIA Other GPU", trt.__version__) if foreign == "gpu" else (GPU, other_version)
    paths = paths_for(tmp_path, trt)
    paths.timing_cache.write_bytes(TIMING_MAGIC + "|".join((*origin, "tactic-old")).encode())
    with caplog.at_level(logging.WARNING, logger="vidsr.backends.tensorrt"):
        build_engine(onnx_file, 1, OPTIONS, paths)
    assert trt.record["timing_caches_set"][0] == (origin, False)  # offered strictly: TensorRT refused it
    assert trt.record["builds"][0]["timing_cache"] == [GPU, trt.__version__]
    assert "from another GPU or TensorRT; starting a new one" in caplog.text
    saved = paths.timing_cache.read_bytes()
    assert saved.startswith(TIMING_MAGIC + f"{GPU}|{trt.__version__}|".encode()) and b"tactic-old" not in saved


def test_matching_timing_cache_is_reused_and_extended(trt, tmp_path, onnx_file):
    from vidsr.backends.tensorrt import build_engine

    paths = paths_for(tmp_path, trt)
    head = TIMING_MAGIC + f"{GPU}|{trt.__version__}|".encode()
    paths.timing_cache.write_bytes(head + b"tactic-old")
    build_engine(onnx_file, 1, OPTIONS, paths)
    assert paths.timing_cache.read_bytes() == head + b"tactic-old\ntactic-1"


def test_unparseable_onnx_names_the_build_log(trt, tmp_path):
    from vidsr.backends.tensorrt import build_engine

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    paths = paths_for(tmp_path, trt)
    with pytest.raises(BackendError, match=r"TensorRT cannot parse .*bad\.onnx: cannot read") as info:
        build_engine(bad, 1, replace(OPTIONS, precision="fp32"), paths)  # fp32: handed to the parser as it is
    assert str(paths.build_log) in str(info.value)


# -- the stand-in is strict --------------------------------------------------------------------
def test_standin_fails_a_dynamic_network_without_a_profile(trt, tmp_path, onnx_file):
    logger_cls = type("L", (trt.ILogger,), {"log": lambda self, severity, msg: None})
    builder = trt.Builder(logger_cls())
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger_cls()).parse_from_file(str(onnx_file))
    assert builder.build_serialized_network(network, builder.create_builder_config()) is None
    assert ("ERROR", "Network has dynamic or shape inputs, but no optimization profile has been defined.") in (
        trt.messages
    )


def test_standin_refuses_what_pybind11_refuses(trt):
    config = trt.Builder(type("L", (trt.ILogger,), {"log": lambda *a: None})()).create_builder_config()
    with pytest.raises(TypeError, match="pool must be"):
        config.set_memory_pool_limit(0, 1 << 20)  # an int, not a MemoryPoolType
    with pytest.raises(TypeError, match="ignore_mismatch must be"):
        config.set_timing_cache(config.create_timing_cache(b""), 0)
    with pytest.raises(TypeError):
        config.set_timing_cache(config.create_timing_cache(b""), ignore=False)  # not the real keyword
    with pytest.raises(AttributeError, match="no writable attribute 'max_workspace_size'"):
        config.max_workspace_size = 1 << 20  # TensorRT 8's API, gone in 10
    with pytest.raises(AttributeError):
        trt.BuilderFlag.STRICT_TYPES  # noqa: B018 - removed before 10
    with pytest.raises(TypeError, match="must be called when overriding"):
        trt.Builder(type("NoInit", (trt.ILogger,), {"__init__": lambda self: None, "log": lambda *a: None})())


def test_standin_rejects_stream_zero_and_the_wrong_device(trt, fake, built_dir):
    backend = backend_on("cuda:1", trt, fake, built_dir)
    ctx = backend.context
    x = torch.rand(1, 1, 16, 16, dtype=torch.float16)
    from vidsr.backends.tensorrt import aligned_empty

    x = aligned_empty(tuple(x.shape), x.dtype, x.device).copy_(x)
    out = aligned_empty((1, 1, 32, 32), torch.float16, x.device)
    with fake.device(torch.device("cuda:1")):
        assert ctx.set_input_shape("input", (1, 1, 16, 16))
        assert ctx.set_tensor_address("input", x.data_ptr()) and ctx.set_tensor_address("output", out.data_ptr())
        assert not ctx.set_tensor_address("input", x.data_ptr() + 2)  # unaligned: False, as TensorRT returns
        assert ctx.set_tensor_address("input", x.data_ptr())
        with pytest.raises(StrictError, match="stream 0"):
            ctx.execute_async_v3(0)
        assert ctx.execute_async_v3(backend.stream.cuda_stream)
        assert not ctx.set_input_shape("input", (3, 1, 16, 16))  # batch 3 > profile max 2
    with pytest.raises(StrictError, match="cuda:0 current; the engine lives on cuda:1"):
        ctx.execute_async_v3(backend.stream.cuda_stream)


# -- versions ----------------------------------------------------------------------------------
def test_standin_types_networks_as_its_version_does(trt, onnx_file):
    """10: strongly typed on request, and then no precision flags or type setting; 11: always, and no FP16 flag."""
    logger = type("L", (trt.ILogger,), {"log": lambda self, severity, msg: None})()
    builder = trt.Builder(logger)
    plain = builder.create_network(0)
    assert trt.OnnxParser(plain, logger).parse_from_file(str(onnx_file))
    if trt.__version__.startswith("11."):
        with pytest.raises(AttributeError):
            trt.BuilderFlag.FP16  # noqa: B018 - removed in 11
        with pytest.raises(AttributeError, match="no writable attribute 'dtype'"):
            plain.get_input(0).dtype = trt.DataType.HALF  # read-only in 11: every network is strongly typed
        return
    plain.get_input(0).dtype = trt.DataType.HALF  # a weakly typed TensorRT 10 network takes it
    strong = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    assert trt.OnnxParser(strong, logger).parse_from_file(str(onnx_file))
    with pytest.raises(StrictError, match="strongly typed network"):
        strong.get_input(0).dtype = trt.DataType.HALF
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    assert builder.build_serialized_network(strong, config) is None
    assert ("ERROR", "builder flags ['FP16'] are not allowed for a strongly typed network") in trt.messages


@pytest.mark.parametrize("accepted", VERSIONS)
def test_tensorrt_10_and_11_are_accepted(monkeypatch, accepted):
    from vidsr.backends.tensorrt import import_tensorrt

    module = make_tensorrt(version=accepted)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    assert import_tensorrt() is module


@pytest.mark.parametrize("refused", ["8.6.1", "9.3.0.1", "12.0.0.7"])
def test_other_tensorrt_versions_are_refused_with_what_is_supported(monkeypatch, refused):
    from vidsr.backends.tensorrt import import_tensorrt

    module = make_tensorrt()
    module.__version__ = refused
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    supported = r"vidsr runs on TensorRT 10 and 11 \(pip install 'tensorrt>=10,<12'"
    with pytest.raises(BackendError, match=rf"TensorRT {re.escape(refused)} is not supported: {supported}"):
        import_tensorrt()
