"""Every TensorRT name vidsr uses exists in the real bindings (tests/trt_api/, read from NVIDIA's wheels).

Two checks, which together cover vidsr/backends/tensorrt.py without TensorRT installed:

* every ``trt.X.Y`` chain in the source resolves in the real API of every version we list
  (10.7.0, the newest 10.x on PyPI, 10.16.1.11, and 11.4.0.106).  The backend has one code
  path for 10 and 11, so it may use no name that only one major version has; the names 11
  removed (``BuilderFlag.FP16``, ``platform_has_fast_fp16``, ...) fail this check;
* every method of the stand-in (tests/trt_standin.py), as it mimics 10.7.0 and as it mimics
  11.4.0.106, has a real counterpart in that version with the same parameter names and
  defaults, every property the same access, every enum the same members and values.
  vidsr's calls on TensorRT objects (``builder.create_network(0)``, ``set_timing_cache(...,
  ignore_mismatch=False)``) run against the stand-in in tests/test_tensorrt_run.py, so a
  method or keyword the real bindings lack fails there.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from trt_standin import API_DIR, PINNED, VERSIONS, load_api, make_tensorrt

SOURCE = Path(__file__).resolve().parents[1] / "vidsr" / "backends" / "tensorrt.py"
LISTED = sorted(p.stem.removeprefix("tensorrt-") for p in API_DIR.glob("tensorrt-*.txt"))


def trt_chains(source: str) -> set[str]:
    """'MemoryPoolType.WORKSPACE' for each outermost ``trt.MemoryPoolType.WORKSPACE`` in ``source``."""
    chains: set[str] = set()
    inner: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            parts, cur = [], node
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                inner.add(id(cur.value))
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "trt":
                chains.add(".".join(reversed(parts)))
    return chains


def resolves(chain: str, api: dict) -> bool:
    """Whether ``chain`` names a class, enum member, method, property or attribute in ``api``."""
    known = set(api["methods"]) | set(api["properties"]) | set(api["classes"]) | set(api["enums"]) | api["attrs"]
    if chain in ("__version__",) or chain in known:
        return True
    head, _, member = chain.rpartition(".")
    if head in api["enums"]:
        return member in api["enums"][head]
    # Inherited: Logger.log from ILogger.
    return any(resolves(f"{base}.{member}", api) for base in api["classes"].get(head, []))


def test_source_uses_trt_names():
    chains = trt_chains(SOURCE.read_text())
    # The check is only as good as what it finds: these must be among them.
    assert {"MemoryPoolType.WORKSPACE", "NetworkDefinitionCreationFlag.STRONGLY_TYPED", "DataType.HALF"} <= chains
    assert "TensorIOMode.INPUT" in chains
    assert {"Builder", "OnnxParser", "Runtime", "ILogger", "IProgressMonitor"} <= chains


def test_every_listed_version_is_checked():
    assert LISTED == ["10.16.1.11", "10.7.0", "11.4.0.106"]


@pytest.mark.parametrize("version", LISTED)
def test_every_trt_name_exists_in_the_real_bindings(version):
    api = load_api(version)
    assert api["version"] == version
    missing = sorted(c for c in trt_chains(SOURCE.read_text()) if not resolves(c, api))
    assert missing == [], f"not in TensorRT {version}: {missing}"


def test_the_check_catches_a_removed_name():
    api = load_api(PINNED)
    assert not resolves("BuilderFlag.STRICT_TYPES", api)  # TensorRT 8, removed in 10
    assert not resolves("IBuilderConfig.max_workspace_size", api)
    assert not resolves("NetworkDefinitionCreationFlag.EXPLICIT_PRECISION", api)
    assert resolves("Logger.log", api)  # inherited from ILogger, listed on Logger too
    assert resolves("ILogger.Severity.WARNING", api)


def test_the_11_list_lacks_what_tensorrt_11_removed():
    """The weak typing API of 10 (the migration guide's list) is gone from the 11.4 bindings, what 11 kept is there."""
    ten, eleven = load_api(PINNED), load_api("11.4.0.106")
    removed = [
        "BuilderFlag.FP16",
        "BuilderFlag.BF16",
        "BuilderFlag.INT8",
        "IBuilderConfig.int8_calibrator",
        "Builder.platform_has_fast_fp16",
        "ICudaEngine.device_memory_size",
    ]
    assert all(resolves(name, ten) for name in removed)
    assert not any(resolves(name, eleven) for name in removed)
    kept = [
        "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
        "ICudaEngine.device_memory_size_v2",
        "IExecutionContext.execute_async_v3",
        "IExecutionContext.set_tensor_address",
        "IBuilderConfig.set_timing_cache",
        "IBuilderConfig.add_optimization_profile",
    ]
    assert all(resolves(name, eleven) for name in kept)
    assert eleven["properties"]["ITensor.dtype"] == "r" and ten["properties"]["ITensor.dtype"] == "rw"
    # The flag's bit differs (EXPLICIT_BATCH took 0 in 10): vidsr must shift by int(), not hard-code it.
    assert ten["enums"]["NetworkDefinitionCreationFlag"]["STRONGLY_TYPED"] == 1
    assert eleven["enums"]["NetworkDefinitionCreationFlag"]["STRONGLY_TYPED"] == 0


def _params(fn) -> list[str]:
    sig = inspect.signature(fn)
    names = []
    for p in list(sig.parameters.values())[1:]:  # drop self
        names.append(p.name + ("=" if p.default is not inspect.Parameter.empty else ""))
    return names


@pytest.mark.parametrize("version", VERSIONS)
def test_standin_methods_match_the_real_signatures(version):
    api = load_api(version)
    trt = make_tensorrt(version=version)
    checked = 0
    for cls_name in trt.STANDIN_CLASSES:
        cls = getattr(trt, cls_name)
        assert cls_name in api["classes"], f"no class {cls_name} in TensorRT {version}"
        for attr, value in vars(cls).items():
            if attr.startswith("_") and attr != "__init__":
                continue
            full = f"{cls_name}.{attr}"
            if isinstance(value, property):
                mode = api["properties"].get(full)
                assert mode is not None, f"{full} is not a real property"
                assert value.fset is None or mode == "rw", f"{full} is read-only in TensorRT {version}"
            elif inspect.isfunction(value):
                if attr == "__init__" and not api["methods"].get(full):
                    continue  # no public constructor: vidsr never makes one (only the stand-in does)
                real = api["methods"].get(full)
                assert real is not None, f"{full} is not a real method"
                assert _params(value) in real, f"{full}{_params(value)} differs from TensorRT's {real}"
            elif isinstance(value, type) and hasattr(value, "__members__"):
                assert {m: int(v) for m, v in value.__members__.items()} == api["enums"][full]
            else:
                assert full in api["attrs"], f"{full} is not a real attribute"
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize("version", VERSIONS)
def test_standin_enums_are_the_real_ones(version):
    api = load_api(version)
    trt = make_tensorrt(version=version)
    names = ["MemoryPoolType", "BuilderFlag", "DataType", "TensorIOMode", "ExecutionContextAllocationStrategy"]
    for name in [*names, "NetworkDefinitionCreationFlag"]:
        members = getattr(trt, name).__members__
        assert list(members) == list(api["enums"][name])  # the real order, aliases included
        assert {m: int(v) for m, v in members.items()} == api["enums"][name]


@pytest.mark.parametrize("version", VERSIONS)
def test_vidsr_overrides_keep_the_real_callback_signatures(version):
    """TensorRT calls ILogger.log and the IProgressMonitor methods: vidsr's overrides must match."""
    from vidsr.backends.tensorrt import PROCESS_LOGGER, _make_progress_monitor

    api = load_api(version)
    trt = make_tensorrt(version=version)
    logger = type(PROCESS_LOGGER.get(trt))
    monitor = type(_make_progress_monitor(trt, print))
    pairs = [(logger, "ILogger", "log")] + [
        (monitor, "IProgressMonitor", m) for m in ("phase_start", "step_complete", "phase_finish")
    ]
    for cls, base, method in pairs:
        assert _params(getattr(cls, method)) in api["methods"][f"{base}.{method}"], (cls, method)
