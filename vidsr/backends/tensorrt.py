"""TensorRT 10 and 11: build an FP16 engine from the ONNX export, cache it, run it on torch CUDA tensors.

TensorRT is imported inside functions only, so ``vidsr --help`` and every non-TensorRT
path work without it.  One code path for both major versions: every ``trt.`` name used here
exists in TensorRT 10 and 11 alike (checked against the real bindings' signatures of 10.7,
10.16 and 11.4 in tests/trt_api/):

* build: for FP16, the float32 ONNX export converted to a float16 graph
  (:mod:`vidsr.backends.onnx_fp16`) -> ``Builder`` -> a strongly typed network -> ``OnnxParser``
  -> builder config (workspace pool, one optimisation profile, timing cache, progress
  monitor) -> ``build_serialized_network``.  Strongly typed, each layer runs in its graph
  type: TensorRT 11 knows no other mode (its FP16/BF16/INT8 builder flags are gone) and
  TensorRT 10 takes the same graph with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``,
  a flag 11 keeps and ignores;
* run: ``Runtime.deserialize_cuda_engine`` -> ``create_execution_context``; per call
  ``set_input_shape``, ``set_tensor_address`` on torch tensors' ``data_ptr()`` (256-byte
  aligned, checked) and ``execute_async_v3`` on a private stream of the backend's device,
  ordered against the caller's stream with events, so no host copies and no extra sync.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidsr.backends.engine_cache import (
    EngineBuildOptions,
    EngineCache,
    EngineKey,
    EnginePaths,
    atomic_write,
    default_build_options,
    sha256_file,
    sha256_state_dict,
)
from vidsr.backends.onnx_export import INPUT_NAME, check_exportable, export_onnx
from vidsr.backends.onnx_fp16 import convert_file
from vidsr.backends.torch_cuda import TORCH_CUDA, TorchCuda
from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
SUPPORTED_MAJORS = (10, 11)
ALIGNMENT = 256  # bytes: TensorRT refuses (set_tensor_address returns False) less aligned I/O pointers
INSTALL_HINT = (
    "TensorRT is not installed: install it with `pip install 'vidsr[tensorrt]'` "
    "(wheels come from NVIDIA's index, pypi.nvidia.com) or use the Docker image in docker/; "
    "or choose --backend torch-cuda"
)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module (10.x or 11.x), or a BackendError that says how to get one."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError(INSTALL_HINT) from None
    version = str(getattr(trt, "__version__", "unknown"))
    if version.split(".")[0] not in {str(major) for major in SUPPORTED_MAJORS}:
        raise BackendError(
            f"TensorRT {version} is not supported: vidsr runs on TensorRT 10 and 11 "
            "(pip install 'tensorrt>=10,<12', or 'vidsr[tensorrt]'), or choose --backend torch-cuda"
        )
    return trt


def tensorrt_available() -> bool:
    try:
        import_tensorrt()
    except BackendError:
        return False
    return True


def weights_checksum(loaded: LoadedModel) -> str:
    """sha256 of the weights file; of the tensors themselves when the model has no file (benchmarks)."""
    if loaded.weights is not None and Path(loaded.weights).is_file():
        return sha256_file(loaded.weights)
    return sha256_state_dict(loaded.module.state_dict())


def engine_key(loaded: LoadedModel, options: EngineBuildOptions, trt_version: str, gpu_name: str) -> EngineKey:
    return EngineKey(
        model=loaded.spec.name,
        arch=loaded.spec.architecture,
        scale=loaded.scale,
        channels=loaded.spec.channels,
        weights_sha256=weights_checksum(loaded),
        options=options,
        tensorrt_version=str(trt_version),
        gpu_name=gpu_name,
    )


# -- the process's logger --------------------------------------------------------------------
class _ProcessLogger:
    """Holds the one TensorRT logger of this process.

    TensorRT keeps the logger it was first given (by a Builder, Runtime or parser) for the
    whole process and ignores later ones, so a build log cannot be a second logger: the one
    logger writes to whichever build log is attached while a build runs.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.build_lock = threading.Lock()  # one build log at a time: builds in threads take turns
        self.module: Any = None
        self.logger: Any = None
        self.sink: Any = None

    def get(self, trt: Any) -> Any:
        with self.lock:
            if self.module is not trt:  # a new module object: tests swap in stand-ins
                self.module, self.logger = trt, _make_logger(trt, self)
            return self.logger

    @contextlib.contextmanager
    def writing_to(self, log_file: Any) -> Iterator[None]:
        with self.build_lock:
            with self.lock:
                self.sink = log_file
            try:
                yield
            finally:
                with self.lock:
                    self.sink = None

    def write(self, line: str) -> None:
        with self.lock:
            if self.sink is not None and not self.sink.closed:
                self.sink.write(line)
                self.sink.flush()


PROCESS_LOGGER = _ProcessLogger()


def _make_logger(trt: Any, process: _ProcessLogger) -> Any:
    """A TensorRT logger: everything to the attached build log, errors and warnings to ours."""

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            process.write(f"[{severity.name}] {msg}\n")
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.debug("TensorRT: %s", msg)

    return Logger()


# -- building --------------------------------------------------------------------------------
def _make_progress_monitor(trt: Any, progress: Progress) -> Any:
    """Reports the builder's top-level phases ("Building engine: Graph optimization 3/7")."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.lock = threading.Lock()
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self.lock:
                self.steps[phase_name] = num_steps
                if parent_phase is None:
                    progress(f"{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # True = keep building; returning False would cancel

        def phase_finish(self, phase_name: str) -> None:
            with self.lock:
                self.steps.pop(phase_name, None)

    return Monitor()


def _attach_timing_cache(config: Any, paths: EnginePaths) -> None:
    """The saved timing cache when it matches this GPU and TensorRT, else a fresh one.

    ``ignore_mismatch=False``: a cache from another GPU or TensorRT holds timings that do not
    apply here; TensorRT then refuses it (returns False) and the build starts a new one.
    """
    data = paths.timing_cache.read_bytes() if paths.timing_cache.is_file() else b""
    if data and config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False):
        return
    if data:
        log.warning("timing cache %s is from another GPU or TensorRT; starting a new one", paths.timing_cache)
    if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
        raise BackendError(f"TensorRT refused a new timing cache (build log: {paths.build_log})")


def build_engine(
    onnx_path: Path,
    channels: int,
    options: EngineBuildOptions,
    paths: EnginePaths,
    *,
    progress: Progress | None = None,
) -> bytes:
    """Build a serialized engine from ``onnx_path`` (vidsr's float32 export).  Failures name the build log."""
    trt = import_tensorrt()
    # Without a progress callback (``vidsr upscale``), the one line that explains a minutes-long
    # pause is a warning, so the CLI shows it; the phase-by-phase detail stays at info level.
    say = progress or (lambda message: log.info("%s", message))
    announce = progress or (lambda message: log.warning("%s", message))
    paths.build_log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    logger = PROCESS_LOGGER.get(trt)
    with open(paths.build_log, "w") as log_file, PROCESS_LOGGER.writing_to(log_file):
        log_file.write(f"vidsr TensorRT build: {onnx_path} -> {paths.engine}\noptions: {options}\n")
        graph = _graph_in_precision(onnx_path, options.precision, paths, log_file)
        builder = trt.Builder(logger)
        network = builder.create_network(_strongly_typed(trt))
        parser = trt.OnnxParser(network, logger)
        say(f"parsing {graph.name}")
        if not parser.parse_from_file(str(graph)):
            errors = "; ".join(_parser_error(parser.get_error(i)) for i in range(parser.num_errors))
            log_file.write(f"ONNX parse failed: {errors}\n")
            raise BackendError(f"TensorRT cannot parse {graph}: {errors} (build log: {paths.build_log})")

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)

        # Dynamic batch/height/width need a profile, or the build fails.
        profile = builder.create_optimization_profile()
        low, opt, high = options.profile(channels)
        profile.set_shape(INPUT_NAME, low, opt, high)
        if config.add_optimization_profile(profile) < 0:  # -1: TensorRT found the profile invalid
            raise BackendError(
                f"TensorRT rejected the profile min {low} opt {opt} max {high}; see the build log {paths.build_log}"
            )

        # The timing cache makes rebuilds (new weights, other profile) take seconds, not minutes.
        _attach_timing_cache(config, paths)
        monitor = _make_progress_monitor(trt, say)
        config.progress_monitor = monitor

        announce(
            f"building a TensorRT {options.precision} engine for {paths.engine.name} "
            f"(profile min {low} opt {opt} max {high}); the first build on a GPU takes minutes"
        )
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"TensorRT engine build failed; see the build log {paths.build_log}")
        try:
            # Atomic: parallel workers building for one GPU share this file.
            atomic_write(paths.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
        except BackendError as exc:
            log.warning("cannot save the timing cache: %s", exc)
        seconds = time.perf_counter() - started
        log_file.write(f"built in {seconds:.1f} s\n")
    say(f"engine built in {seconds:.0f} s: {paths.engine}")
    return bytes(serialized)


@dataclass
class PreparedEngine:
    """A deserialized engine with the runtime and logger it needs alive, and where it came from."""

    engine: Any
    runtime: Any
    logger: Any
    key: EngineKey
    paths: EnginePaths
    built: bool


def prepare_engine(
    loaded: LoadedModel,
    *,
    options: EngineBuildOptions | None = None,
    cache: EngineCache | None = None,
    device: torch.device | None = None,
    progress: Progress | None = None,
    force: bool = False,
    cuda: TorchCuda = TORCH_CUDA,
) -> PreparedEngine:
    """Load the cached engine for ``loaded`` or build it (exporting ONNX first), on ``device``."""
    check_exportable(loaded)
    trt = import_tensorrt()
    if not cuda.is_available():
        raise BackendError("TensorRT needs a CUDA GPU, and PyTorch sees none")
    device = device or torch.device("cuda")
    options = options or default_build_options(loaded.spec.architecture)
    cache = cache or EngineCache()
    gpu = cuda.get_device_name(device)
    key = engine_key(loaded, options, trt.__version__, gpu)
    logger = PROCESS_LOGGER.get(trt)

    def build(paths: EnginePaths) -> bytes:
        export_onnx(loaded, paths.onnx, opset=options.opset, max_hw=(max(options.max_hw), max(options.max_hw)))
        return build_engine(paths.onnx, loaded.spec.channels, options, paths, progress=progress)

    # Builder, runtime and engine belong to the device current when they are made.
    with cuda.device(device):
        runtime = trt.Runtime(logger)

        def load(data: bytes) -> Any:
            try:
                return runtime.deserialize_cuda_engine(data)
            except Exception as exc:  # some bindings raise, others return None
                log.debug("deserialize failed: %s", exc)
                return None

        engine, built = cache.load_or_build(key, build, load, force=force)
    # The runtime (and its logger) must outlive the engine: TensorRT requires it.
    return PreparedEngine(engine, runtime, logger, key, cache.paths(key), built)


# -- running ---------------------------------------------------------------------------------
def aligned_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised contiguous tensor whose data starts on an ``ALIGNMENT``-byte boundary.

    The CUDA caching allocator already aligns to 512 bytes; the CPU allocator (the stand-in
    tests) only to 64, so this over-allocates by one alignment and offsets into it.
    """
    numel = 1
    for d in shape:
        numel *= d
    item = torch.empty((), dtype=dtype).element_size()
    spare = ALIGNMENT // item
    buffer = torch.empty(numel + spare, dtype=dtype, device=device)
    offset = (-buffer.data_ptr() % ALIGNMENT) // item
    return buffer[offset : offset + numel].view(shape)


def _aligned(x: torch.Tensor) -> torch.Tensor:
    """``x`` if contiguous and aligned, else a copy that is (split batches are unaligned views)."""
    if x.is_contiguous() and x.data_ptr() % ALIGNMENT == 0:
        return x
    return aligned_empty(tuple(x.shape), x.dtype, x.device).copy_(x)


class TensorRTBackend:
    """A TensorRT engine as a Backend: torch CUDA tensors in and out, no host round trip."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        *,
        precision: str = "fp16",
        options: EngineBuildOptions | None = None,
        engine_dir: str | Path | None = None,
        progress: Progress | None = None,
        cuda: TorchCuda = TORCH_CUDA,
    ) -> None:
        trt = import_tensorrt()
        self.name = "tensorrt"
        self.device = device
        self.cuda = cuda
        self._where = cuda.tensor_device(device)
        self.options = options or default_build_options(loaded.spec.architecture, precision)
        self.prepared = prepare_engine(
            loaded, options=self.options, cache=EngineCache(engine_dir), device=device, progress=progress, cuda=cuda
        )
        self.engine, self.key, self.paths, self.built = (
            self.prepared.engine,
            self.prepared.key,
            self.prepared.paths,
            self.prepared.built,
        )
        with cuda.device(device):
            self.context = self.engine.create_execution_context()
            # Private: TensorRT on the legacy default stream (what current_stream() is unless the
            # caller set one) costs extra synchronisation, as its bindings warn.
            self.stream = cuda.new_stream(device)
        if self.context is None:
            raise BackendError(
                f"cannot create a TensorRT execution context (out of GPU memory?) for {self.paths.engine}"
            )
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(
                f"engine {self.paths.engine} has inputs {inputs} and outputs {outputs}; expected one each"
            )
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        self.output_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.output_name))
        # The Upscaler tiles frames to this size and splits batches to this count.
        self.max_batch = self.options.max_batch
        self.max_input_hw = self.options.max_hw
        self.min_input_hw = self.options.min_hw
        self.scale = loaded.scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device != self._where or x.dtype != self.dtype:
            x = x.to(self._where, self.dtype)
        if not self.options.fits(tuple(x.shape)):
            raise BackendError(
                f"frame {x.shape[-1]}x{x.shape[-2]} is outside the engine profile "
                f"({_wxh(self.options.min_hw)} to {_wxh(self.options.max_hw)}); "
                "lower --tile-pixels or rebuild with `vidsr build-engine --max-size WxH`"
            )
        if x.shape[0] > self.max_batch:
            return torch.cat([self(chunk) for chunk in x.split(self.max_batch)])
        with self.cuda.device(self.device):
            return self._run(_aligned(x))

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        ctx, cuda = self.context, self.cuda
        if not ctx.set_input_shape(self.input_name, tuple(x.shape)):
            raise BackendError(f"TensorRT rejected input shape {tuple(x.shape)} for {self.paths.engine}")
        out_shape = tuple(ctx.get_tensor_shape(self.output_name))
        out = aligned_empty(out_shape, self.output_dtype, self._where)
        for name, tensor in ((self.input_name, x), (self.output_name, out)):
            if not ctx.set_tensor_address(name, tensor.data_ptr()):
                raise BackendError(
                    f"TensorRT refused the address of {name!r} ({tensor.data_ptr():#x}, needs {ALIGNMENT}-byte "
                    f"alignment) for {self.paths.engine}"
                )
        caller = cuda.current_stream(self.device)
        self.stream.wait_stream(caller)  # x was written, and out allocated, on the caller's stream
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise BackendError(f"TensorRT inference failed on a {tuple(x.shape)} batch ({self.paths.engine})")
        caller.wait_stream(self.stream)  # the caller reads out after the engine wrote it
        # Both belong to the caller's stream in the allocator's eyes: keep them until our stream is done.
        cuda.record_stream(x, self.stream)
        cuda.record_stream(out, self.stream)
        return out


def _graph_in_precision(onnx_path: Path, precision: str, paths: EnginePaths, log_file: Any) -> Path:
    """The graph TensorRT parses: ``onnx_path`` for fp32; for fp16 its float16 conversion, beside the engine.

    A strongly typed network computes in the graph's types, so the graph carries the precision;
    float16 I/O also halves the bytes moved per frame (the Upscaler feeds the engine's dtype).
    """
    if precision == "fp32":
        return onnx_path
    graph = convert_file(onnx_path, paths.engine.with_suffix(".fp16.onnx"))
    log_file.write(f"float16 graph: {graph}\n")
    return graph


def _strongly_typed(trt: Any) -> int:
    """``create_network`` flags for a strongly typed network: required on TensorRT 10, ignored (always on) by 11."""
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _parser_error(error: Any) -> str:
    desc = getattr(error, "desc", None)
    return str(desc() if callable(desc) else error)


def _wxh(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.BF16: torch.bfloat16}
    try:
        return table[dtype]
    except KeyError:
        raise BackendError(f"engine tensor type {dtype} is not supported (expected float or half)") from None
