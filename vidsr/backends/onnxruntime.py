"""The ONNX Runtime backend: the ONNX export on the CPU execution provider.

On the 2-core AVX2 development machine ONNX Runtime runs ESPCN's convolutions several
times faster than eager PyTorch (NCHWc blocked layout, fused activations, MLAS kernels;
``benchmarks/RESULTS.md``), so it is the CPU default.  The graph is whatever
:func:`vidsr.backends.onnx_export.export_onnx` makes of the model ``build_model``
returned: this module knows no architecture.

The export takes seconds, so the ``.onnx`` file is cached beside the TensorRT engines
(:mod:`vidsr.backends.engine_cache`), named by a key of everything the graph depends on
(model, scale, the module's structure and tensors, opset, torch version) with a JSON
sidecar, and reused on later runs.  ``onnxruntime`` is imported only when this backend
is built.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from vidsr.backends.engine_cache import atomic_write, default_engine_dir, exclusive_lock, sha256_state_dict
from vidsr.backends.int8 import calibration_of, quantise_graph, supports_int8
from vidsr.backends.onnx_export import DEFAULT_OPSET, check_exportable, export_onnx
from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

NAME = "onnxruntime"
T = TypeVar("T")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """Intra-op threads for the model when none are asked for: every core.

    Measured on 2 cores (``benchmarks/RESULTS.md``, thread table): the model is most of the
    work, and with ONNX Runtime's worker threads sleeping instead of spinning between calls
    (see :func:`session_options`), decode and encode fit in the gaps; one model thread left
    the second core half idle.  ``torch.get_num_threads()`` follows ``torch.set_num_threads``,
    which is how ``vidsr batch --threads`` sizes each worker.
    """
    return max(1, torch.get_num_threads())


@dataclass(frozen=True)
class OnnxKey:
    """Everything the exported graph depends on.  Equal keys mean the cached file can be reused."""

    model: str
    arch: str
    scale: int
    channels: int
    structure_sha256: str  # the module's repr and config: layers, activations, residuals
    weights_sha256: str
    opset: int
    torch_version: str
    precision: str = "fp32"  # or "int8": the QDQ rewrite of vidsr.backends.int8
    int8_sha256: str = ""  # the int8 scheme and calibration the rewrite used

    @classmethod
    def of(cls, loaded: LoadedModel, opset: int = DEFAULT_OPSET, precision: str = "fp32") -> OnnxKey:
        module = loaded.module
        calibration = calibration_of(loaded) if precision == "int8" else None
        if precision == "int8" and calibration is None:
            raise BackendError(f"int8 needs calibrated weights: {no_int8_reason(loaded)}")
        structure = repr(module) + repr(getattr(module, "config", None))
        return cls(
            model=loaded.spec.name,
            arch=loaded.spec.architecture,
            scale=loaded.scale,
            channels=loaded.spec.channels,
            structure_sha256=hashlib.sha256(structure.encode()).hexdigest(),
            # The tensors themselves, not the weights file: what is exported is what is loaded.
            weights_sha256=sha256_state_dict({k: v.float() for k, v in module.state_dict().items()}),
            opset=opset,
            torch_version=torch.__version__,
            precision=precision,
            int8_sha256=calibration.digest if calibration else "",
        )

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @property
    def stem(self) -> str:
        """``espcn_x2_opset18_3f2a9c1d0b4e`` (``..._opset18_int8_...``): what went in, plus a short hash of the rest."""
        precision = "" if self.precision == "fp32" else f"_{self.precision}"
        return f"{self.model}_x{self.scale}_opset{self.opset}{precision}_{self.digest[:12]}"


def no_int8_reason(loaded: LoadedModel) -> str:
    """Why ``loaded`` has no int8 graph, in words (for errors and auto's reason)."""
    if not supports_int8(loaded):
        return f"this {loaded.spec.name} has no int8 form (only the ReLU ESPCN family, the robust sets, has one)"
    where = loaded.weights.name if loaded.weights else "these weights"
    return f"{where} carry no int8 calibration (add one: vidsr calibrate WEIGHTS --data PHOTOS)"


def cached_onnx(loaded: LoadedModel, directory: str | Path | None = None, precision: str = "fp32") -> tuple[Path, bool]:
    """The ONNX file for ``loaded`` in the cache, made now if missing: ``(path, made)``.

    ``precision`` "int8" is the fp32 export (cached too) rewritten by :func:`quantise_graph`.
    """
    check_exportable(loaded)
    key = OnnxKey.of(loaded, precision=precision)
    folder = Path(directory) if directory is not None else default_engine_dir()
    path, sidecar = folder / f"{key.stem}.onnx", folder / f"{key.stem}.onnx.json"
    if path.is_file() and _sidecar_matches(sidecar, key):
        return path, False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendError(
            f"cannot create the model cache {folder}: {exc.strerror}; set VIDSR_ENGINE_DIR to a writable folder"
        ) from None
    # Batch workers starting together want the same file: one exports, the others wait and reuse it.
    with exclusive_lock(folder / f"{key.stem}.onnx.lock"):
        if path.is_file() and _sidecar_matches(sidecar, key):
            return path, False
        log.info("exporting %s x%d to ONNX %s (once; cached as %s)", key.model, key.scale, precision, path)
        if precision == "int8":
            _write_int8(loaded, cached_onnx(loaded, folder)[0], path)
        else:
            export_onnx(loaded, path)  # writes under a temporary name and renames: never half a file
        record = {"digest": key.digest, "key": asdict(key), "onnx": path.name}
        atomic_write(sidecar, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path, True


def load_cached_onnx(
    loaded: LoadedModel, directory: str | Path | None, precision: str, load: Callable[[Path], T], runtime: str
) -> tuple[Path, T]:
    """``load`` (a runtime's session or compiled model) of ``loaded``'s cached graph: ``(path, loaded graph)``.

    A cached file can be damaged (a copy cut short): it is exported afresh once.  A fresh export
    that ``runtime`` cannot load is an error.
    """
    path, exported = cached_onnx(loaded, directory, precision)
    try:
        return path, load(path)
    except Exception as exc:  # each runtime raises its own exception types
        if exported:
            raise BackendError(f"{runtime} cannot load the exported {path.name}: {exc}") from exc
        log.warning("cached %s does not load in %s (%s); exporting it again", path, runtime, exc)
        path.unlink(missing_ok=True)
        path, _ = cached_onnx(loaded, directory, precision)
        return path, load(path)


def _write_int8(loaded: LoadedModel, fp32: Path, path: Path) -> None:
    import onnx

    calibration = calibration_of(loaded)
    assert calibration is not None  # OnnxKey.of checked
    graph = quantise_graph(onnx.load(str(fp32)), calibration)
    atomic_write(path, graph.SerializeToString())


def _sidecar_matches(sidecar: Path, key: OnnxKey) -> bool:
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return record.get("digest") == key.digest and record.get("key") == asdict(key)


def session_options(threads: int) -> Any:
    """Graph optimisation on (all levels: NCHWc layout, fusions); ``threads`` intra-op threads.

    Worker threads do not spin-wait between calls: in the video pipeline the model shares
    the cores with the decode and encode threads, which would otherwise lose the time the
    idle workers burn polling.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about the NCHWc rewrite are not the user's business
    return options


class CpuGraphBackend:
    """What the CPU runtimes share: ``loaded``'s cached ONNX graph at ``precision``, float32 NCHW
    CPU tensors in and out (inside, the graph runs at ``precision``), ``threads`` threads.

    A runtime names itself, says what it needs (:meth:`require`) and loads a graph file (:meth:`load`).
    """

    name = ""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        precision: str = "fp32",
    ) -> None:
        self.require(precision)
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be 1 or more, not {threads}")
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.precision = precision
        self.threads = threads or default_threads()
        self.scale = loaded.scale
        graph = "int8" if precision == "int8" else "fp32"  # bf16 is a runtime setting on the fp32 graph
        self.path, self.graph = load_cached_onnx(loaded, cache_dir, graph, self.load, self.name)

    def require(self, precision: str) -> None:
        """Raise :class:`BackendError` if this runtime or ``precision`` cannot run here."""

    def load(self, path: Path) -> Any:
        raise NotImplementedError

    def checked(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32:
            raise BackendError(f"the {self.name} backend takes float32 CPU tensors, not {x.dtype} on {x.device}")
        return x.detach().contiguous()


class OnnxRuntimeBackend(CpuGraphBackend):
    """ONNX Runtime on the CPU: float32 NCHW in, float32 NCHW out, like the PyTorch module."""

    name = NAME

    def require(self, precision: str) -> None:
        if not onnxruntime_available():
            raise BackendError("the onnxruntime backend needs onnxruntime: pip install onnxruntime")

    def load(self, path: Path) -> Any:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), session_options(self.threads), providers=["CPUExecutionProvider"])
        self.input_name = session.get_inputs()[0].name
        return session

    @property
    def session(self) -> Any:
        return self.graph

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # numpy views share memory with the tensors both ways: no copies in or out.
        (out,) = self.session.run(None, {self.input_name: self.checked(x).numpy()})
        return torch.from_numpy(out)


__all__ = [
    "NAME",
    "CpuGraphBackend",
    "OnnxKey",
    "OnnxRuntimeBackend",
    "cached_onnx",
    "default_threads",
    "load_cached_onnx",
    "no_int8_reason",
    "onnxruntime_available",
]
