"""TensorRT 10: build an FP16 engine from the ONNX export, cache it, run it on torch CUDA tensors.

TensorRT is imported inside functions only, so ``vidsr --help`` and every non-TensorRT
path work without it.  Written against the TensorRT 10 Python API:

* build: ``Builder`` -> ``create_network(0)`` (explicit batch is the only mode in 10) ->
  ``OnnxParser`` -> builder config (FP16 flag, workspace pool, one optimisation profile,
  timing cache, progress monitor) -> ``build_serialized_network``;
* run: ``Runtime.deserialize_cuda_engine`` -> ``create_execution_context``; per call
  ``set_input_shape``, ``set_tensor_address`` on torch tensors' ``data_ptr()`` and
  ``execute_async_v3`` on the current torch stream, so no host copies and no extra sync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidsr.backends.engine_cache import (
    EngineBuildOptions,
    EngineCache,
    EngineKey,
    EnginePaths,
    default_build_options,
    sha256_file,
    sha256_state_dict,
)
from vidsr.backends.onnx_export import INPUT_NAME, check_exportable, export_onnx
from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
INSTALL_HINT = (
    "TensorRT is not installed: install it with `pip install 'vidsr[tensorrt]'` "
    "(wheels come from NVIDIA's index, pypi.nvidia.com) or use the Docker image in docker/; "
    "or choose --backend torch-cuda"
)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or a BackendError that says how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError(INSTALL_HINT) from None
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise BackendError(
            f"TensorRT {trt.__version__} is too old: vidsr needs TensorRT 10 (pip install 'tensorrt>=10')"
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


# -- building --------------------------------------------------------------------------------
def _make_logger(trt: Any, log_file: Any) -> Any:
    """A TensorRT logger that writes everything to the build log and warnings+ to ours."""

    class FileLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lock = threading.Lock()

        def log(self, severity: Any, msg: str) -> None:
            with self.lock:
                if not log_file.closed:  # TensorRT may still talk after the build returned
                    log_file.write(f"[{severity.name}] {msg}\n")
                    log_file.flush()
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.debug("TensorRT: %s", msg)

    return FileLogger()


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


def build_engine(
    onnx_path: Path,
    channels: int,
    options: EngineBuildOptions,
    paths: EnginePaths,
    *,
    progress: Progress | None = None,
) -> bytes:
    """Build a serialized engine from ``onnx_path``.  Failures name the build log."""
    trt = import_tensorrt()
    # Without a progress callback (``vidsr upscale``), the one line that explains a minutes-long
    # pause is a warning, so the CLI shows it; the phase-by-phase detail stays at info level.
    say = progress or (lambda message: log.info("%s", message))
    announce = progress or (lambda message: log.warning("%s", message))
    paths.build_log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(paths.build_log, "w") as log_file:
        logger = _make_logger(trt, log_file)
        log_file.write(f"vidsr TensorRT build: {onnx_path} -> {paths.engine}\noptions: {options}\n")
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is implied in TensorRT 10
        parser = trt.OnnxParser(network, logger)
        say(f"parsing {onnx_path.name}")
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(_parser_error(parser.get_error(i)) for i in range(parser.num_errors))
            log_file.write(f"ONNX parse failed: {errors}\n")
            raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors} (build log: {paths.build_log})")

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
        if options.precision == "fp16":
            # Deprecated in TensorRT 10 (every supported GPU has FP16); absent in some releases.
            if not getattr(builder, "platform_has_fast_fp16", True):
                log.warning("this GPU has no fast FP16; the engine will be slow")
            config.set_flag(trt.BuilderFlag.FP16)
            # Half-precision I/O halves the bytes moved per frame; the Upscaler feeds the dtype we report.
            network.get_input(0).dtype = trt.DataType.HALF
            network.get_output(0).dtype = trt.DataType.HALF

        profile = builder.create_optimization_profile()
        low, opt, high = options.profile(channels)
        profile.set_shape(INPUT_NAME, low, opt, high)
        config.add_optimization_profile(profile)

        # The timing cache makes rebuilds (new weights, other profile) take seconds, not minutes.
        cache_bytes = paths.timing_cache.read_bytes() if paths.timing_cache.is_file() else b""
        timing_cache = config.create_timing_cache(cache_bytes)
        config.set_timing_cache(timing_cache, ignore_mismatch=False)
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
            paths.timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
        except OSError as exc:
            log.warning("cannot save the timing cache %s: %s", paths.timing_cache, exc)
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
) -> PreparedEngine:
    """Load the cached engine for ``loaded`` or build it (exporting ONNX first)."""
    check_exportable(loaded)
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise BackendError("TensorRT needs a CUDA GPU, and PyTorch sees none")
    device = device or torch.device("cuda")
    options = options or default_build_options(loaded.spec.architecture)
    cache = cache or EngineCache()
    gpu = torch.cuda.get_device_name(device)
    key = engine_key(loaded, options, trt.__version__, gpu)
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)

    def load(data: bytes) -> Any:
        try:
            return runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # some bindings raise, others return None
            log.debug("deserialize failed: %s", exc)
            return None

    def build(paths: EnginePaths) -> bytes:
        export_onnx(loaded, paths.onnx, opset=options.opset, max_hw=(max(options.max_hw), max(options.max_hw)))
        return build_engine(paths.onnx, loaded.spec.channels, options, paths, progress=progress)

    with torch.cuda.device(device):
        engine, built = cache.load_or_build(key, build, load, force=force)
    # The runtime (and its logger) must outlive the engine: TensorRT requires it.
    return PreparedEngine(engine, runtime, logger, key, cache.paths(key), built)


# -- running ---------------------------------------------------------------------------------
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
    ) -> None:
        trt = import_tensorrt()
        self.name = "tensorrt"
        self.device = device
        self.options = options or default_build_options(loaded.spec.architecture, precision)
        self.prepared = prepare_engine(
            loaded, options=self.options, cache=EngineCache(engine_dir), device=device, progress=progress
        )
        self.engine, self.key, self.paths, self.built = (
            self.prepared.engine,
            self.prepared.key,
            self.prepared.paths,
            self.prepared.built,
        )
        self.context = self.engine.create_execution_context()
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
        if x.device != self.device or x.dtype != self.dtype:
            x = x.to(self.device, self.dtype)
        if not self.options.fits(tuple(x.shape)):
            raise BackendError(
                f"frame {x.shape[-1]}x{x.shape[-2]} is outside the engine profile "
                f"({_wxh(self.options.min_hw)} to {_wxh(self.options.max_hw)}); "
                "lower --tile-pixels or rebuild with `vidsr build-engine --max-size WxH`"
            )
        if x.shape[0] > self.max_batch:
            return torch.cat([self(chunk) for chunk in x.split(self.max_batch)])
        x = x.contiguous()
        ctx = self.context
        if not ctx.set_input_shape(self.input_name, tuple(x.shape)):
            raise BackendError(f"TensorRT rejected input shape {tuple(x.shape)} for {self.paths.engine}")
        out_shape = tuple(ctx.get_tensor_shape(self.output_name))
        out = torch.empty(out_shape, dtype=self.output_dtype, device=self.device)
        ctx.set_tensor_address(self.input_name, x.data_ptr())
        ctx.set_tensor_address(self.output_name, out.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise BackendError(f"TensorRT inference failed on a {tuple(x.shape)} batch ({self.paths.engine})")
        # The caller reads ``out`` on the same stream, so ordering is already guaranteed; x must
        # stay alive until the kernels ran, which the stream-ordered caching allocator ensures.
        return out


def _parser_error(error: Any) -> str:
    desc = getattr(error, "desc", None)
    return str(desc() if callable(desc) else error)


def _wxh(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if hasattr(trt.DataType, "BF16"):
        table[trt.DataType.BF16] = torch.bfloat16
    try:
        return table[dtype]
    except KeyError:
        raise BackendError(f"engine tensor type {dtype} is not supported (expected float or half)") from None
