"""A strict CPU stand-in for the TensorRT 10 and 11 Python bindings, enough to build and run vidsr's engines.

``make_tensorrt(version=...)`` mimics one of :data:`VERSIONS`.  Strict means it accepts only
what the real bindings of that version accept and returns what they return:

* every class, method, property and enum here carries a real name, and every method the
  real parameter names (tests/test_tensorrt_api.py checks this against the names read
  from NVIDIA's bindings wheels, tests/trt_api/);  enums have exactly the version's members
  and values (``trt.BuilderFlag.FP16`` is an AttributeError under 11, as in the real module),
  properties its access (``ITensor.dtype`` is read-only in 11); anything else is an
  AttributeError or TypeError, as in pybind11, including setting unknown attributes;
* enum arguments must be enum members, integers must be integers (``int(member)`` gives the
  real value);
* networks are strongly typed as in the real library: always under 11, under 10 when
  ``create_network`` gets the ``STRONGLY_TYPED`` bit.  A strongly typed network takes its
  tensor types from the ONNX graph, and a build with a precision flag (FP16, INT8, ...)
  fails, as TensorRT 10 refuses it;
* TensorRT's documented return values: ``set_tensor_address`` False for a pointer that is
  not 256-byte aligned, ``set_input_shape`` False outside the profile,
  ``add_optimization_profile`` -1 for a bad profile, ``set_timing_cache`` False for a cache
  from another GPU/TensorRT unless ``ignore_mismatch``, ``build_serialized_network`` None when
  a dynamic network has no profile, ``deserialize_cuda_engine`` None for foreign bytes;
* one logger per process: the first logger given to a Builder/Runtime/OnnxParser gets
  every message, later ones nothing (as TensorRT does);
* things the real API tolerates but vidsr must not do raise :class:`StrictError`: enqueueing
  on stream 0 (the legacy default stream), running on a stream or with a current device
  other than the engine's (with a :class:`cuda_standin.FakeCuda`), setting a tensor's type
  in a strongly typed network (the graph's types are the precision).

The "engine" is the ONNX file itself plus a JSON header of what the build was told; the
execution context reads its input from the address it was given (as the engine's I/O
dtype), runs the ONNX graph in onnxruntime (an fp16 graph in fp16) and writes the output to
the output address.  So wrong shapes, addresses, dtypes, graph types or batch splitting give
wrong pixels, not a pass.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import json
import re
import types
from pathlib import Path
from typing import Any

import numpy as np

API_DIR = Path(__file__).parent / "trt_api"
# The oldest 10.x vidsr is checked against and the 11.x whose bindings we read: one stand-in of each major.
VERSIONS = ("10.7.0", "11.4.0.106")
PINNED = VERSIONS[0]  # the default, and the version the stand-in's signatures are checked against first
PRECISION_FLAGS = {"FP16", "BF16", "INT8", "FP8", "INT4", "FP4"}  # weak typing: refused with strong typing
ONNX_TYPES = {1: "FLOAT", 10: "HALF", 16: "BF16"}  # onnx.TensorProto element type -> DataType member
ALIGNMENT = 256
MAGIC = b"VIDSR-STANDIN-ENGINE\n"
TIMING_MAGIC = b"STANDIN-TIMING|"


class StrictError(AssertionError):
    """vidsr did something the real TensorRT would accept but that is wrong (stream 0, wrong device)."""


# -- the real API, as read from the wheel ------------------------------------------------------
def load_api(version: str = PINNED) -> dict[str, Any]:
    """``{"methods": {Class.name: [[params]...]}, "properties": {Class.name: "r"|"rw"}, "enums": {...}, ...}``.

    ``enums`` maps each enum to ``{member: int value}`` in the bindings' order.
    """
    methods: dict[str, list[list[str]]] = {}
    properties: dict[str, str] = {}
    enums: dict[str, dict[str, int]] = {}
    classes: dict[str, list[str]] = {}
    attrs: set[str] = set()
    text = (API_DIR / f"tensorrt-{version}.txt").read_text()
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("method", "function"):
            m = re.match(r"([\w.]+)\((.*?)\) -> ", rest)
            if m is None:  # "(...)": no signature (no constructor)
                methods.setdefault(rest.split("(")[0], [])
                continue
            params = [p for p in m.group(2).split(", ") if p]
            methods.setdefault(m.group(1), []).append(params)
        elif kind == "property":
            name, mode = rest.split()
            properties[name] = mode
        elif kind == "enum":
            name, _, members = rest.partition(": ")
            enums[name] = {member: int(value) for member, _, value in (m.partition("=") for m in members.split())}
        elif kind == "class":
            name, _, bases = rest.partition("(")
            classes[name] = [b for b in bases.rstrip(")").split(", ") if b]
        elif kind == "attr":
            attrs.add(rest.split()[0])
        elif kind == "version":
            version_read = rest
    return {
        "version": version_read,
        "methods": methods,
        "properties": properties,
        "enums": enums,
        "classes": classes,
        "attrs": attrs,
    }


def make_tensorrt(*, gpu: str = "NVIDIA Stand-in GPU", cuda: Any = None, version: str = PINNED) -> types.ModuleType:
    """A fresh stand-in ``tensorrt`` module ("a fresh process"): put it in ``sys.modules["tensorrt"]``.

    ``cuda``: a :class:`cuda_standin.FakeCuda` whose current device and streams the engine checks.
    The module records what it was told in ``trt.record`` (a dict) and logs in ``trt.messages``.
    """
    api = load_api(version)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # torch.export probes find_spec("tensorrt")
    state: dict[str, Any] = {"logger": None, "gpu": gpu, "cuda": cuda}
    record: dict[str, Any] = {"builds": [], "executions": [], "timing_caches_set": []}
    trt.record = record
    trt.messages = []

    major = int(version.split(".")[0])

    def make_enum(name: str) -> type[enum.Enum]:
        # Not an int subclass (pybind11 enums are not), but int() gives the real value.
        members = enum.Enum(name.split(".")[-1], list(api["enums"][name].items()), module="tensorrt")
        members.__int__ = lambda self: self.value
        return members

    Severity = make_enum("ILogger.Severity")
    for name in (
        "MemoryPoolType",
        "BuilderFlag",
        "DataType",
        "TensorIOMode",
        "ExecutionContextAllocationStrategy",
        "NetworkDefinitionCreationFlag",
    ):
        setattr(trt, name, make_enum(name))
    numpy_of = {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16}

    def expect(value: Any, kind: Any, what: str) -> None:
        # pybind11 converts nothing implicitly: an int for an enum, a str for an int is a TypeError.
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise TypeError(f"incompatible function arguments: {what} must be {kind}, got {type(value).__name__}")

    def emit(severity: Any, msg: str) -> None:
        trt.messages.append((severity.name, msg))
        logger = state["logger"]
        if logger is not None:
            logger.log(severity, msg)

    def adopt(logger: Any) -> None:
        if not isinstance(logger, ILogger):
            raise TypeError("incompatible function arguments: logger must be an ILogger")
        if not getattr(logger, "_initialised", False):
            raise TypeError(f"{type(logger).__name__}.__init__() must be called when overriding __init__")
        if state["logger"] is None:  # TensorRT keeps the first logger of the process
            state["logger"] = logger

    def current_device() -> int:
        return state["cuda"].current if state["cuda"] is not None else 0

    class _Strict:
        """No attributes beyond the real ones on the stand-in's own objects (subclasses are the user's)."""

        def __setattr__(self, name: str, value: Any) -> None:
            cls = type(self)
            if cls.__module__ == __name__ and not name.startswith("_"):
                prop = getattr(cls, name, None)
                if not isinstance(prop, property) or prop.fset is None:
                    raise AttributeError(f"'tensorrt.{cls.__name__}' object has no writable attribute '{name}'")
            object.__setattr__(self, name, value)

    class ILogger:
        def __init__(self) -> None:
            self._initialised = True

        def log(self, severity: Any, msg: str) -> None:
            raise RuntimeError("ILogger.log must be overridden")

    ILogger.Severity = Severity
    for member in Severity:
        setattr(ILogger, member.name, member)

    class IProgressMonitor:
        def __init__(self) -> None:
            self._initialised = True

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            raise RuntimeError("must be overridden")

        def step_complete(self, phase_name: str, step: int) -> bool:
            raise RuntimeError("must be overridden")

        def phase_finish(self, phase_name: str) -> None:
            raise RuntimeError("must be overridden")

    class Dims(tuple):
        pass

    class IHostMemory(bytes):  # the real one has the buffer protocol; bytes gives it here
        @property
        def nbytes(self) -> int:
            return len(self)

    class ITensor(_Strict):
        def __init__(self, network: INetworkDefinition, name: str, shape: tuple[int, ...], dtype: Any) -> None:
            self._network, self._name, self._shape, self._dtype = network, name, Dims(shape), dtype

        @property
        def name(self) -> str:
            return self._name

        @property
        def shape(self) -> Dims:
            return self._shape

        @property
        def dtype(self) -> Any:
            return self._dtype

        @dtype.setter
        def dtype(self, value: Any) -> None:  # removed below where the version's ITensor.dtype is read-only
            expect(value, trt.DataType, "dtype")
            if self._network._strongly_typed:
                raise StrictError(
                    f"ITensor.dtype set on {self._name!r} of a strongly typed network: the graph's types rule"
                )
            self._dtype = value

    class INetworkDefinition(_Strict):
        def __init__(self, strongly_typed: bool) -> None:
            self._strongly_typed = strongly_typed
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []
            self._onnx: bytes | None = None

        @property
        def num_inputs(self) -> int:
            return len(self._inputs)

        @property
        def num_outputs(self) -> int:
            return len(self._outputs)

        def get_input(self, index: int) -> ITensor:
            expect(index, int, "index")
            return self._inputs[index]

        def get_output(self, index: int) -> ITensor:
            expect(index, int, "index")
            return self._outputs[index]

    class ParserError(_Strict):
        def __init__(self, text: str) -> None:
            self._text = text

        def desc(self) -> str:
            return self._text

    class OnnxParser(_Strict):
        def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
            expect(network, INetworkDefinition, "network")
            adopt(logger)
            self._network, self._errors = network, []

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> ParserError:
            expect(index, int, "index")
            return self._errors[index]

        def parse_from_file(self, model: str) -> bool:
            expect(model, str, "model")
            import onnx

            try:
                data = Path(model).read_bytes()
                graph = onnx.load_from_string(data).graph
            except Exception as exc:
                self._errors.append(ParserError(f"cannot read {model}: {exc}"))
                emit(Severity.ERROR, self._errors[-1].desc())
                return False

            def tensor(value: Any) -> ITensor:
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)
                dtype = trt.DataType[ONNX_TYPES[value.type.tensor_type.elem_type]]
                return ITensor(self._network, value.name, shape, dtype)

            self._network._inputs = [tensor(i) for i in graph.input]
            self._network._outputs = [tensor(o) for o in graph.output]
            self._network._onnx = data
            return True

    class IOptimizationProfile(_Strict):
        def __init__(self) -> None:
            self._shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # the real parameter names
            expect(input, str, "input")
            for shape in (min, opt, max):
                if not all(isinstance(d, int) for d in shape):
                    raise TypeError("incompatible function arguments: shapes must be Dims of ints")
            self._shapes[input] = (tuple(min), tuple(opt), tuple(max))

    class ITimingCache(_Strict):
        def __init__(self, origin: tuple[str, str], entries: list[str]) -> None:
            self._origin, self._entries = origin, entries

        def serialize(self) -> IHostMemory:
            head = TIMING_MAGIC + f"{self._origin[0]}|{self._origin[1]}|".encode()
            return IHostMemory(head + "\n".join(self._entries).encode())

    class IBuilderConfig(_Strict):
        def __init__(self) -> None:
            self._pools: dict[str, int] = {}
            self._flags: list[str] = []
            self._profiles: list[IOptimizationProfile] = []
            self._timing: ITimingCache | None = None
            self._monitor: Any = None

        @property
        def progress_monitor(self) -> Any:
            return self._monitor

        @progress_monitor.setter
        def progress_monitor(self, value: Any) -> None:
            expect(value, IProgressMonitor, "progress_monitor")
            if not getattr(value, "_initialised", False):
                raise TypeError("IProgressMonitor.__init__() must be called when overriding __init__")
            self._monitor = value

        def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
            expect(pool, trt.MemoryPoolType, "pool")
            expect(pool_size, int, "pool_size")
            self._pools[pool.name] = pool_size

        def set_flag(self, flag: Any) -> None:
            expect(flag, trt.BuilderFlag, "flag")
            self._flags.append(flag.name)

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            expect(profile, IOptimizationProfile, "profile")
            for name, (low, opt, high) in profile._shapes.items():
                ranks = {len(low), len(opt), len(high)}
                ordered = all(a <= b <= c for a, b, c in zip(low, opt, high, strict=False))
                if len(ranks) != 1 or not ordered or min(low) < 1:
                    emit(Severity.ERROR, f"invalid profile for {name}: {low} {opt} {high}")
                    return -1
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, serialized_timing_cache: Any) -> ITimingCache:
            data = bytes(serialized_timing_cache)
            if not data:
                return ITimingCache((state["gpu"], trt.__version__), [])
            if not data.startswith(TIMING_MAGIC):
                emit(Severity.ERROR, "timing cache is corrupt")
                return None  # type: ignore[return-value]
            gpu_name, tversion, body = data[len(TIMING_MAGIC) :].decode().split("|", 2)
            return ITimingCache((gpu_name, tversion), [e for e in body.split("\n") if e])

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            expect(cache, ITimingCache, "cache")
            expect(ignore_mismatch, bool, "ignore_mismatch")
            record["timing_caches_set"].append((cache._origin, ignore_mismatch))
            if cache._origin != (state["gpu"], trt.__version__) and not ignore_mismatch:
                emit(Severity.ERROR, f"timing cache from {cache._origin} does not match this device")
                return False
            self._timing = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self._timing

    class Builder(_Strict):
        def __init__(self, logger: ILogger) -> None:
            adopt(logger)

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            expect(flags, int, "flags")
            strongly_typed = major >= 11 or bool(flags >> int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) & 1)
            return INetworkDefinition(strongly_typed)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
            expect(network, INetworkDefinition, "network")
            expect(config, IBuilderConfig, "config")
            emit(Severity.INFO, f"building for {state['gpu']} (device {current_device()})")
            if network._onnx is None:
                emit(Severity.ERROR, "network has no layers")
                return None
            weak_flags = sorted(PRECISION_FLAGS.intersection(config._flags))
            if network._strongly_typed and weak_flags:
                emit(Severity.ERROR, f"builder flags {weak_flags} are not allowed for a strongly typed network")
                return None
            (tensor,) = network._inputs
            if -1 in tensor.shape:
                shaped = [p for p in config._profiles if tensor.name in p._shapes]
                if not shaped:
                    emit(
                        Severity.ERROR,
                        "Network has dynamic or shape inputs, but no optimization profile has been defined.",
                    )
                    return None
                low, opt, high = shaped[0]._shapes[tensor.name]
                fixed_ok = all(
                    d == -1 or (a == b == c == d) for d, a, b, c in zip(tensor.shape, low, opt, high, strict=True)
                )
                if not fixed_ok:
                    emit(Severity.ERROR, f"profile {low}/{opt}/{high} does not fit input {tuple(tensor.shape)}")
                    return None
            monitor = config._monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                for step in range(2):
                    if not monitor.step_complete("Building engine", step):
                        return None
                monitor.phase_finish("Building engine")
            if config._timing is not None:
                config._timing._entries.append(f"tactic-{len(config._timing._entries)}")
            header = {
                "version": trt.__version__,
                "gpu": state["gpu"],
                "device": current_device(),
                "flags": config._flags,
                "strongly_typed": network._strongly_typed,
                "pools": config._pools,
                "profile": [list(map(list, p._shapes[tensor.name])) for p in config._profiles],
                "input": [tensor.name, network._inputs[0].dtype.name],
                "output": [network._outputs[0].name, network._outputs[0].dtype.name],
                "timing_cache": list(config._timing._origin) if config._timing is not None else None,
            }
            record["builds"].append(header)
            return IHostMemory(MAGIC + json.dumps(header).encode() + b"\n" + network._onnx)

    class IExecutionContext(_Strict):
        def __init__(self, engine: ICudaEngine) -> None:
            self._engine = engine
            self._shape: tuple[int, ...] | None = None
            self._addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: Any) -> bool:
            expect(name, str, "name")
            shape = tuple(shape)
            engine = self._engine
            if name != engine._input or not all(isinstance(d, int) for d in shape):
                emit(Severity.ERROR, f"set_input_shape: bad tensor {name!r} or shape {shape}")
                return False
            low, _, high = engine._profile
            if len(shape) != len(low) or not all(a <= d <= b for a, d, b in zip(low, shape, high, strict=True)):
                emit(Severity.ERROR, f"shape {shape} is outside the profile {low}..{high}")
                return False
            self._shape = shape
            return True

        def get_tensor_shape(self, name: str) -> Dims:
            expect(name, str, "name")
            engine = self._engine
            if name == engine._input:
                return Dims(self._shape or (-1,) * 4)
            if self._shape is None:
                return Dims((-1,) * 4)
            n, _, h, w = self._shape
            return Dims((n, engine._out_channels, h * engine._scale, w * engine._scale))

        def set_tensor_address(self, name: str, memory: int) -> bool:
            expect(name, str, "name")
            expect(memory, int, "memory")
            if name not in (self._engine._input, self._engine._output):
                emit(Severity.ERROR, f"set_tensor_address: no tensor {name!r}")
                return False
            if memory % ALIGNMENT:
                emit(Severity.ERROR, f"set_tensor_address: {memory:#x} for {name!r} is not {ALIGNMENT}-byte aligned")
                return False
            self._addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            expect(stream_handle, int, "stream_handle")
            engine = self._engine
            if stream_handle == 0:
                raise StrictError("execute_async_v3 on stream 0 (the legacy default stream): use a private stream")
            fake = state["cuda"]
            if fake is not None:
                if fake.current != engine._device:
                    raise StrictError(
                        f"enqueue with cuda:{fake.current} current; the engine lives on cuda:{engine._device}"
                    )
                known = {s.cuda_stream: s for s in fake.known_streams()}
                if stream_handle not in known or known[stream_handle].device != engine._device:
                    raise StrictError(f"stream {stream_handle:#x} is not a stream of cuda:{engine._device}")
            if self._shape is None or set(self._addresses) != {engine._input, engine._output}:
                emit(Severity.ERROR, "execute_async_v3: input shape or tensor addresses not set")
                return False
            in_dtype, out_dtype = numpy_of[engine._in_dtype], numpy_of[engine._out_dtype]
            x = _read(self._addresses[engine._input], self._shape, in_dtype).astype(engine._graph_dtype)
            (y,) = engine._session.run(None, {engine._input: x})
            y = np.ascontiguousarray(y.astype(out_dtype))
            if y.shape != tuple(self.get_tensor_shape(engine._output)):
                raise StrictError(f"stand-in: ONNX output {y.shape} differs from the reported shape")
            ctypes.memmove(self._addresses[engine._output], y.ctypes.data, y.nbytes)
            record["executions"].append(
                {"shape": self._shape, "stream": stream_handle, "device": current_device(), **self._addresses}
            )
            return True

    class ICudaEngine(_Strict):
        def __init__(self, header: dict[str, Any], onnx_bytes: bytes) -> None:
            import onnxruntime as ort

            self._header = header
            self._device = current_device()
            self._input, in_dtype = header["input"]
            self._output, out_dtype = header["output"]
            self._in_dtype, self._out_dtype = trt.DataType[in_dtype], trt.DataType[out_dtype]
            self._profile = tuple(tuple(s) for s in header["profile"][0])
            self._session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
            # The graph's own input type: a weakly typed TensorRT 10 network may have been given other I/O types.
            self._graph_dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16}[
                self._session.get_inputs()[0].type
            ]
            probe = np.zeros((1, self._profile[0][1], 16, 16), self._graph_dtype)
            (out,) = self._session.run(None, {self._input: probe})
            self._out_channels, self._scale = out.shape[1], out.shape[2] // 16

        @property
        def num_io_tensors(self) -> int:
            return 2

        def get_tensor_name(self, index: int) -> str:
            expect(index, int, "index")
            return (self._input, self._output)[index]

        def get_tensor_mode(self, name: str) -> Any:
            expect(name, str, "name")
            return {self._input: trt.TensorIOMode.INPUT, self._output: trt.TensorIOMode.OUTPUT}.get(
                name, trt.TensorIOMode.NONE
            )

        def get_tensor_dtype(self, name: str) -> Any:
            expect(name, str, "name")
            return {self._input: self._in_dtype, self._output: self._out_dtype}[name]

        def create_execution_context(self, strategy: Any = trt.ExecutionContextAllocationStrategy.STATIC) -> Any:
            expect(strategy, trt.ExecutionContextAllocationStrategy, "strategy")
            if current_device() != self._device:
                raise StrictError(
                    f"context made with cuda:{current_device()} current; engine is on cuda:{self._device}"
                )
            return IExecutionContext(self)

    class Runtime(_Strict):
        def __init__(self, logger: ILogger) -> None:
            adopt(logger)

        def deserialize_cuda_engine(self, serialized_engine: Any) -> ICudaEngine | None:
            data = bytes(serialized_engine)
            if not data.startswith(MAGIC):
                emit(Severity.ERROR, "deserialize_cuda_engine: not an engine (magic tag)")
                return None
            head, _, onnx_bytes = data[len(MAGIC) :].partition(b"\n")
            header = json.loads(head)
            if header["version"] != trt.__version__ or header["gpu"] != state["gpu"]:
                emit(Severity.ERROR, "deserialize_cuda_engine: built for another TensorRT or GPU")
                return None
            return ICudaEngine(header, onnx_bytes)

    for cls in (
        ILogger,
        IProgressMonitor,
        Dims,
        IHostMemory,
        ITensor,
        INetworkDefinition,
        ParserError,
        OnnxParser,
        IOptimizationProfile,
        ITimingCache,
        IBuilderConfig,
        Builder,
        IExecutionContext,
        ICudaEngine,
        Runtime,
    ):
        cls.__module__ = __name__
        _match_property_access(cls, api)
        setattr(trt, cls.__name__, cls)
    trt.STANDIN_CLASSES = [
        "ILogger",
        "IProgressMonitor",
        "IHostMemory",
        "ITensor",
        "INetworkDefinition",
        "ParserError",
        "OnnxParser",
        "IOptimizationProfile",
        "ITimingCache",
        "IBuilderConfig",
        "Builder",
        "IExecutionContext",
        "ICudaEngine",
        "Runtime",
    ]
    return trt


def _match_property_access(cls: type, api: dict[str, Any]) -> None:
    """Drop the setter of each property that the version's bindings have read-only (ITensor.dtype in 11)."""
    for name, value in list(vars(cls).items()):
        if isinstance(value, property) and api["properties"].get(f"{cls.__name__}.{name}") == "r":
            setattr(cls, name, property(value.fget))


def _read(address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    count = int(np.prod(shape))
    nbytes = count * np.dtype(dtype).itemsize
    buffer = (ctypes.c_char * nbytes).from_address(address)
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape)
