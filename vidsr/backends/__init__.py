"""Inference backends: one protocol, chosen by name or by ``auto``.

A backend runs the model only: float NCHW in, float NCHW out, on its device.
Colour conversion, resampling of chroma and quantisation happen around it
(see :mod:`vidsr.upscaler`), on the same device.

=============  =====================================================================
``tensorrt``   FP16 TensorRT engine from the ONNX export, cached under ``engines/``
``torch-cuda`` FP16, channels-last, ``torch.compile``, CUDA graphs per batch shape
``onnxruntime`` the ONNX export on ONNX Runtime's CPU execution provider: the CPU default
               for learned models (several times eager PyTorch's speed), ``.onnx`` cached;
               int8 (``vidsr.backends.int8``) by default where the CPU has VNNI and the
               weights carry a calibration, else fp32
``torch-cpu``  eager PyTorch, FP32 (bf16 measured over 10x slower on AVX2 CPUs: see
               ``benchmarks/RESULTS.md``), for machines without a GPU and CI
``auto``       the fastest that works here, and it says which (``Backend.reason``)
=============  =====================================================================

TensorRT and ``torch.compile`` are imported only when chosen.  Modules: ``torch_cuda``,
``tensorrt`` (build + run), ``onnx_export``, ``engine_cache`` (keys, names, sidecars; no
TensorRT needed), ``hwvideo`` (NVDEC decode and NVENC checks for the media layer).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "torch-cuda", "onnxruntime", "torch-cpu")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp16", "bf16", "fp32", "int8")


class Backend(Protocol):
    name: str
    device: torch.device
    dtype: torch.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``(N, C, h, w)`` in ``dtype`` on ``device`` -> ``(N, C, s*h, s*w)``."""
        ...


@dataclass(frozen=True)
class BackendOptions:
    """How to run the model.  ``engine_dir`` is the TensorRT engine cache (None: the default).

    ``compile`` and ``cuda_graphs`` apply to ``torch-cuda`` (and ``auto`` when it picks it).
    """

    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    compile: bool = True
    cuda_graphs: bool = True
    engine_dir: str | Path | None = None
    threads: int | None = None  # onnxruntime intra-op threads (None: torch.get_num_threads())


def precision_of(backend: Backend) -> str:
    """What the backend computes in, for people: ``float16``, ``float32``, ``int8``."""
    label = getattr(backend, "precision", None)
    return "int8" if label == "int8" else str(backend.dtype).removeprefix("torch.")


def resolve_device(device: str, asked: str | None = None) -> torch.device:
    """``asked`` names what wanted the device in errors (``--backend tensorrt``) [``--device DEVICE``]."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"{asked or f'--device {device}'} needs a CUDA GPU, but PyTorch finds none here")
    return dev


# Measured on an AVX2 development CPU (AMD EPYC, no AVX512-BF16/AMX): ESPCN x4 on 2x240x135 ran
# 11.1 fps in fp32 and 0.9 fps in bf16 (PyTorch emulates bf16 convolution without native dot
# products).  On an AVX512-BF16 EPYC bf16 was 2.3x fp32 on torch (benchmarks/RESULTS.md, probe) but
# still slower than onnxruntime's fp32, which is what "auto" runs there.  So torch-cpu stays fp32,
# the reference; --precision bf16 asks for bf16.
CPU_AUTO_DTYPE = torch.float32


def resolve_dtype(precision: str, device: torch.device, fp16_safe: bool) -> torch.dtype:
    if precision == "auto":
        # FP16 on GPUs (tensor cores); on the CPU the measured winner.
        return (
            torch.float16
            if device.type == "cuda" and fp16_safe
            else (CPU_AUTO_DTYPE if device.type == "cpu" else torch.float32)
        )
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


class TorchBackend:
    """Eager PyTorch on any device: the reference path and the CPU path."""

    def __init__(self, loaded: LoadedModel, device: torch.device, dtype: torch.dtype) -> None:
        self.name = f"torch-{device.type}"
        self.device = device
        self.dtype = dtype
        self.module = loaded.module.to(device=device, dtype=dtype)
        if device.type == "cuda":
            self.module = self.module.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def _check(options: BackendOptions) -> None:
    if options.backend not in BACKENDS:
        raise BackendError(f"unknown backend {options.backend!r}; choose from {', '.join(BACKENDS)}")
    if options.precision not in PRECISIONS:
        raise BackendError(f"unknown precision {options.precision!r}; choose from {', '.join(PRECISIONS)}")
    if options.precision == "int8" and options.backend not in ("auto", "onnxruntime"):
        raise BackendError(f"int8 runs on the onnxruntime backend (CPU), not {options.backend}")
    if options.precision == "int8" and options.device not in ("auto", "cpu"):
        raise BackendError(f"int8 runs on the CPU (onnxruntime), not --device {options.device}")


def _cuda_device(options: BackendOptions) -> torch.device:
    asked = f"--backend {options.backend}" if options.device == "auto" else None
    device = resolve_device("cuda" if options.device == "auto" else options.device, asked)
    if device.type != "cuda":
        raise BackendError(f"backend {options.backend} needs a CUDA device, not {device}")
    return device


def _torch_cuda(loaded: LoadedModel, device: torch.device, options: BackendOptions) -> Backend:
    from vidsr.backends.torch_cuda import TorchCudaBackend

    dtype = resolve_dtype(options.precision, device, loaded.spec.fp16_safe)
    return TorchCudaBackend(loaded, device, dtype, compile=options.compile, cuda_graphs=options.cuda_graphs)


def _tensorrt(loaded: LoadedModel, device: torch.device, options: BackendOptions) -> Backend:
    from vidsr.backends.tensorrt import TensorRTBackend

    if options.precision == "bf16":
        raise BackendError("the tensorrt backend builds fp16 or fp32 engines; use --precision fp16 or fp32")
    precision = "fp16" if options.precision == "auto" and loaded.spec.fp16_safe else options.precision
    precision = "fp32" if precision == "auto" else precision
    return TensorRTBackend(loaded, device, precision=precision, engine_dir=options.engine_dir)


def _cpu(loaded: LoadedModel, device: torch.device, options: BackendOptions) -> Backend:
    dtype = resolve_dtype(options.precision, device, loaded.spec.fp16_safe)
    if dtype == torch.float16:
        raise BackendError("fp16 runs on CUDA only; use --precision fp32 or bf16 on the CPU")
    return TorchBackend(loaded, device, dtype)


def onnxruntime_precision(loaded: LoadedModel, asked: str) -> tuple[str, str]:
    """fp32 or int8 for the onnxruntime backend, and why.  ``auto`` takes int8 where it was measured
    to pay (a CPU with VNNI: benchmarks/RESULTS.md) and the weights carry a calibration."""
    from vidsr.backends.int8 import calibration_of, cpu_has_vnni
    from vidsr.backends.onnxruntime import no_int8_reason

    if asked != "auto":
        return asked, "asked for"
    if not cpu_has_vnni():
        return "fp32", "fp32: no VNNI on this CPU, where int8 was not measured to pay"
    if calibration_of(loaded) is None:
        return "fp32", f"fp32: {no_int8_reason(loaded)}"
    return "int8", "int8: a VNNI CPU and calibrated weights"


def _onnxruntime(loaded: LoadedModel, options: BackendOptions) -> tuple[Backend, str]:
    from vidsr.backends.onnxruntime import OnnxRuntimeBackend

    if options.device not in ("auto", "cpu"):
        raise BackendError(f"backend onnxruntime runs on the CPU, not --device {options.device}")
    if options.precision not in ("auto", "fp32", "int8"):
        raise BackendError("the onnxruntime backend runs fp32 or int8; use --precision fp32, int8 or auto")
    precision, why = onnxruntime_precision(loaded, options.precision)
    make = functools.partial(OnnxRuntimeBackend, loaded, threads=options.threads, cache_dir=options.engine_dir)
    if precision == "int8" and options.precision == "auto":
        try:
            return make(precision="int8"), why
        except Exception as exc:  # chosen, not asked for: a failed rewrite costs speed, not the run
            reason = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
            log.warning("int8 unavailable for %s x%d (%s); using fp32", loaded.spec.name, loaded.scale, reason)
            precision, why = "fp32", f"fp32: int8 failed: {reason}"
    return make(precision=precision), why


def _auto_cpu(loaded: LoadedModel, device: torch.device, options: BackendOptions, why: str) -> tuple[Backend, str]:
    """onnxruntime for learned models in fp32 or int8 when installed, else eager PyTorch."""
    from vidsr.backends.onnxruntime import onnxruntime_available

    if not loaded.spec.learned:
        if options.precision == "int8":
            raise BackendError(f"{loaded.spec.name} is an interpolation baseline; it has no int8 form")
        return _cpu(loaded, device, options), f"{why}; interpolation baselines run on torch"
    if options.precision not in ("auto", "fp32", "int8"):
        return _cpu(loaded, device, options), f"{why}; {options.precision} asked for (onnxruntime runs fp32/int8)"
    if not onnxruntime_available():
        if options.precision == "int8":
            raise BackendError("int8 runs on onnxruntime, which is not installed: pip install onnxruntime")
        return _cpu(loaded, device, options), f"{why}; onnxruntime not installed"
    try:
        backend, precision_why = _onnxruntime(loaded, options)
        return backend, f"{why}; {precision_why}" if options.precision == "auto" else why
    except Exception as exc:  # as for TensorRT: a failed export or load costs speed, not the run
        if options.precision == "int8":
            raise  # asked for by name: say why it cannot be had
        reason = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
        log.warning("onnxruntime unavailable for %s x%d (%s); using torch-cpu", loaded.spec.name, loaded.scale, reason)
        return _cpu(loaded, device, options), f"{why}; onnxruntime failed: {reason}"


def _auto(loaded: LoadedModel, options: BackendOptions) -> tuple[Backend, str]:
    """Fastest first: TensorRT, then torch-cuda, then the CPU.  Returns the backend and why."""
    device = resolve_device(options.device)
    if options.precision == "int8":  # the CPU's, even beside a GPU
        return _auto_cpu(loaded, torch.device("cpu"), options, "int8 asked for (onnxruntime on the CPU)")
    if device.type != "cuda":
        why = "no CUDA GPU" if options.device == "auto" else f"--device {options.device}"
        return _auto_cpu(loaded, device, options, why)
    from vidsr.backends.tensorrt import tensorrt_available

    if not loaded.spec.learned:
        return _torch_cuda(loaded, device, options), "interpolation baselines run on torch"
    if options.precision == "bf16":
        return _torch_cuda(loaded, device, options), "bf16 asked for (TensorRT engines are fp16/fp32)"
    if not tensorrt_available():
        return _torch_cuda(loaded, device, options), "TensorRT not installed"
    try:
        return _tensorrt(loaded, device, options), "TensorRT installed and the engine built/loaded"
    except Exception as exc:
        # auto means "what works": a failed engine build costs speed, not the run.  Any exception:
        # an API change in an untested TensorRT release raises AttributeError/TypeError, not ours.
        why = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
        log.warning("TensorRT unavailable for %s x%d (%s); using torch-cuda", loaded.spec.name, loaded.scale, why)
        return _torch_cuda(loaded, device, options), f"TensorRT failed: {why}"


def create_backend(loaded: LoadedModel, options: BackendOptions) -> Backend:
    """The backend ``options`` names, or for ``auto`` the fastest that works here.

    The returned backend carries ``reason``: why it was chosen (for logs and ``describe``).
    """
    _check(options)
    if options.backend == "auto":
        backend, reason = _auto(loaded, options)
        log.info("backend auto -> %s (%s)", backend.name, reason)
    elif options.backend == "torch-cpu":
        if options.device not in ("auto", "cpu"):
            raise BackendError(f"backend torch-cpu runs on the CPU, not --device {options.device}")
        backend, reason = _cpu(loaded, torch.device("cpu"), options), "asked for"
    elif options.backend == "onnxruntime":
        backend, reason = _onnxruntime(loaded, options)
        reason = "asked for" if options.precision != "auto" else f"asked for; {reason}"
    elif options.backend == "torch-cuda":
        backend, reason = _torch_cuda(loaded, _cuda_device(options), options), "asked for"
    else:
        backend, reason = _tensorrt(loaded, _cuda_device(options), options), "asked for"
    backend.reason = reason  # type: ignore[attr-defined]
    return backend


__all__ = [
    "BACKENDS",
    "DEVICES",
    "PRECISIONS",
    "Backend",
    "BackendOptions",
    "TorchBackend",
    "create_backend",
    "onnxruntime_precision",
    "precision_of",
    "resolve_device",
    "resolve_dtype",
]
