"""The TensorRT engine cache: keys, names, sidecars, stale and corrupt files, locking between workers.

The build and run code is tested against the strict stand-in in tests/test_tensorrt_run.py.
"""

from __future__ import annotations

import json
import sys
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
    assert paths.lock.name == name.replace(".engine", ".lock")


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


def test_default_engine_dir_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(ENGINE_DIR_ENV, str(tmp_path / "mine"))
    assert default_engine_dir() == tmp_path / "mine"


def test_default_engine_dir_in_this_checkout(monkeypatch):
    monkeypatch.delenv(ENGINE_DIR_ENV, raising=False)
    here = default_engine_dir()
    # The checkout's engines/ folder is the one holding the cache's README (tracked in git).
    assert (here / "README.md").read_text().startswith("# engines/ — the TensorRT engine cache")
    assert here.name == "engines" and (here.parent / "pyproject.toml").is_file()


def _installed_copy(tmp_path, monkeypatch):
    """cachedir.py as an installed package would hold it: site-packages/vidsr/, no checkout."""
    import importlib.util

    target = tmp_path / "site-packages" / "vidsr" / "cachedir.py"
    target.parent.mkdir(parents=True)
    target.write_text((Path(__file__).resolve().parents[1] / "vidsr" / "cachedir.py").read_text())
    spec = importlib.util.spec_from_file_location("installed_cachedir", target)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_default_engine_dir_when_installed(monkeypatch, tmp_path):
    installed = _installed_copy(tmp_path, monkeypatch)
    monkeypatch.delenv(ENGINE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert installed.default_engine_dir() == tmp_path / "xdg" / "vidsr" / "engines"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert installed.default_engine_dir() == tmp_path / "home" / ".cache" / "vidsr" / "engines"


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


def test_parallel_workers_build_an_engine_once(tmp_path):
    """Two workers wanting one engine: the second waits on the lock and loads what the first built."""
    import threading

    cache = EngineCache(tmp_path)
    first_building, second_in_build = threading.Event(), threading.Event()
    builds: list[str] = []
    results: dict[str, tuple] = {}

    def build(paths, who):
        builds.append(who)
        if who == "first":
            first_building.set()
            # Without the lock the second worker enters build() while we wait here; with it, it cannot.
            second_in_build.wait(timeout=2)
        else:
            second_in_build.set()
        return b"ENGINE-" + who.encode()

    def worker(who):
        results[who] = cache.load_or_build(KEY, lambda p: build(p, who), Recorder.load)

    first = threading.Thread(target=worker, args=("first",))
    first.start()
    assert first_building.wait(timeout=60)
    second = threading.Thread(target=worker, args=("second",))
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)
    assert builds == ["first"]
    assert results == {"first": ("ENGINE-first", True), "second": ("ENGINE-first", False)}


def test_temporary_names_are_unique_per_process_and_thread(tmp_path, monkeypatch):
    import os
    import threading

    from vidsr.backends.engine_cache import unique_temp

    target = tmp_path / "m.onnx"
    names = {unique_temp(target)}
    seen: list = []
    thread = threading.Thread(target=lambda: seen.append(unique_temp(target)))
    thread.start()
    thread.join()
    names.add(seen[0])
    monkeypatch.setattr(os, "getpid", lambda: 999_999)
    names.add(unique_temp(target))
    assert len(names) == 3
    assert all(n.parent == tmp_path and n.name.startswith(".m.onnx.") for n in names)


def test_onnx_export_writes_through_a_unique_temporary(tmp_path, monkeypatch):
    """Parallel workers export one model to one path: each writes its own temporary, then renames."""
    import os

    from vidsr.backends import onnx_export
    from vidsr.models import LoadedModel, get_spec

    saved: list[str] = []

    class Program:
        def save(self, path):
            saved.append(path)
            Path(path).write_bytes(b"onnx")

    monkeypatch.setattr(torch.onnx, "export", lambda *a, **kw: Program())
    loaded = LoadedModel(get_spec("espcn"), 2, torch.nn.Conv2d(1, 4, 3))
    onnx_export.export_onnx(loaded, tmp_path / "m.onnx")
    (temp,) = saved
    assert str(os.getpid()) in Path(temp).name and Path(temp).parent == tmp_path
    assert (tmp_path / "m.onnx").read_bytes() == b"onnx" and not Path(temp).exists()


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
