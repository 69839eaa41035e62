"""Inference backends: one protocol, chosen by name or by ``auto``.

A backend runs the model only: float NCHW in, float NCHW out, on its device.
Colour conversion, resampling of chroma and quantisation happen around it
(see :mod:`vidsr.upscaler`), on the same device.

=============  =====================================================================
``tensorrt``   FP16 TensorRT engine from the ONNX export, cached under ``engines/``
``torch-cuda`` FP16, channels-last, ``torch.compile``, CUDA graphs per batch shape
``openvino``   the same ONNX graphs on OpenVINO's CPU plugin: the CPU default where the CPU has
               low-precision dot products: int8 (``vidsr.backends.int8``) with VNNI and
               calibrated weights, else bf16 with AVX512-BF16/AMX (``cpu_precision``)
``onnxruntime`` the ONNX export on ONNX Runtime's CPU execution provider: the CPU default in
               fp32 (several times eager PyTorch's speed), ``.onnx`` cached; int8 without OpenVINO
``torch-cpu``  eager PyTorch, FP32 (bf16 measured over 10x slower on AVX2 CPUs: see
               ``benchmarks/RESULTS.md``), for machines without a GPU and CI
``auto``       the fastest that works here, and it says which (``Backend.reason``)
=============  =====================================================================

TensorRT, OpenVINO and ``torch.compile`` are imported only when chosen.  Modules: ``torch_cuda``,
``tensorrt`` (build + run), ``onnx_export``, ``onnxruntime``, ``openvino``, ``int8``,
``engine_cache`` (keys, names, sidecars; no TensorRT needed), ``hwvideo`` (NVDEC decode and
NVENC checks for the media layer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "torch-cuda", "openvino", "onnxruntime", "torch-cpu")
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
    compile: bool = False  # measured not to pay on the first H200 run (vidsr.backends.torch_cuda)
    cuda_graphs: bool = True
    engine_dir: str | Path | None = None
    threads: int | None = None  # openvino and onnxruntime threads (None: torch.get_num_threads())


def precision_of(backend: Backend) -> str:
    """What the backend computes in, for people: ``float16``, ``bfloat16``, ``float32``, ``int8``.

    The ONNX runtimes take and give float32 whatever they compute in: their ``precision`` says.
    """
    label = getattr(backend, "precision", None)
    named = {"int8": "int8", "bf16": "bfloat16"}
    return named.get(label, str(backend.dtype).removeprefix("torch."))


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
# still slower than onnxruntime's fp32, and OpenVINO's bf16 is 2x that (cpu_precision).  So torch-cpu
# stays fp32, the reference; --precision bf16 asks for bf16.
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
    if options.precision == "int8" and options.backend not in ("auto", *CPU_RUNTIMES):
        raise BackendError(f"int8 runs on the openvino or onnxruntime backend (CPU), not {options.backend}")
    if options.precision == "int8" and options.device not in ("auto", "cpu"):
        raise BackendError(f"int8 runs on the CPU (openvino, onnxruntime), not --device {options.device}")


def _cuda_device(options: BackendOptions) -> torch.device:
    asked = f"--backend {options.backend}" if options.device == "auto" else None
    device = resolve_device("cuda" if options.device == "auto" else options.device, asked)
    if device.type != "cuda":
        raise BackendError(f"backend {options.backend} needs a CUDA device, not {device}")
    return device


def _torch_cuda(loaded: LoadedModel, device: torch.device, options: BackendOptions) -> Backend:
    from vidsr.backends.torch_cuda import TorchCudaBackend

    dtype = resolve_dtype(options.precision, device, loaded.spec.fp16_safe)
    return TorchCudaBackend(
        loaded, device, dtype, compile=options.compile, cuda_graphs=options.cuda_graphs, engine_dir=options.engine_dir
    )


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


def cpu_precision(loaded: LoadedModel, asked: str, *, bf16: bool = True) -> tuple[str, str]:
    """The precision a learned model runs in on the CPU, and why.

    ``auto``: int8 where the CPU has VNNI and the weights carry a calibration; else bf16 where the
    CPU computes it natively and OpenVINO is installed (``bf16``: the runtime can take it); else
    fp32.  Each was measured on val to lose at most 0.05 dB PSNR-Y against fp32 and to run at least
    1.5x faster on the CPU it is chosen for (benchmarks/RESULTS.md).
    """
    from vidsr.backends.int8 import calibration_of, cpu_has_vnni
    from vidsr.backends.onnxruntime import no_int8_reason
    from vidsr.backends.openvino import native_bf16

    if asked != "auto":
        return asked, "asked for"
    vnni = cpu_has_vnni()
    if vnni and calibration_of(loaded) is not None:
        return "int8", "int8: a VNNI CPU and calibrated weights"
    no_int8 = no_int8_reason(loaded) if vnni else "no VNNI on this CPU, where int8 was not measured to pay"
    if bf16 and native_bf16():
        return "bf16", f"bf16: the CPU computes bf16 natively (not int8: {no_int8})"
    return "fp32", f"fp32: {no_int8}"


# The CPU runtimes of the ONNX graphs: what each runs, and for each precision the faster first
# (measured: benchmarks/RESULTS.md; openvino's fp32 was slower than onnxruntime's on AVX2).
CPU_RUNTIMES = {"openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32", "int8")}
FASTEST_FIRST = {"int8": ("openvino", "onnxruntime"), "bf16": ("openvino",), "fp32": ("onnxruntime", "openvino")}


def _runtimes(precision: str) -> list[str]:
    """The installed ONNX runtimes that run ``precision`` on the CPU, fastest first."""
    from vidsr.backends.onnxruntime import onnxruntime_available
    from vidsr.backends.openvino import native_bf16, openvino_available

    have = {"openvino": openvino_available(), "onnxruntime": onnxruntime_available()}
    if precision == "bf16" and not native_bf16():
        return []  # OpenVINO would quietly run f32 and call it bf16
    return [name for name in FASTEST_FIRST.get(precision, ()) if have[name]]


def _graph_backend(runtime: str, loaded: LoadedModel, options: BackendOptions, precision: str) -> Backend:
    if runtime == "openvino":
        from vidsr.backends.openvino import OpenVINOBackend as make
    else:
        from vidsr.backends.onnxruntime import OnnxRuntimeBackend as make
    return make(loaded, threads=options.threads, cache_dir=options.engine_dir, precision=precision)


def _failure(exc: Exception) -> str:
    return str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"


Plan = list[tuple[str, str]]  # (runtime, precision) to try in order


def _plan(loaded: LoadedModel, options: BackendOptions, runtime: str | None) -> tuple[Plan, str, str]:
    """What to try for a learned model on the CPU, the precision chosen and why.

    ``runtime`` None: every installed runtime that runs the precision, fastest first; a low
    precision that auto chose is followed by fp32, so that its failure costs speed, not the run.
    """
    from vidsr.backends.onnxruntime import OnnxKey

    precision, why = cpu_precision(loaded, options.precision, bf16=runtime is None or "bf16" in CPU_RUNTIMES[runtime])
    if precision == "int8":  # what is wrong with the weights, before any runtime tries
        OnnxKey.of(loaded, precision="int8")

    def runtimes(p: str) -> list[str]:
        return [runtime] if runtime else _runtimes(p)

    plan = [(r, precision) for r in runtimes(precision)]
    if options.precision == "auto" and precision != "fp32":
        plan += [(r, "fp32") for r in runtimes("fp32")]
    return plan, precision, why


def _first_that_loads(
    loaded: LoadedModel, options: BackendOptions, plan: Plan, *, strict: bool
) -> tuple[Backend | None, list[str]]:
    """The first of ``plan`` that builds, and what failed before it.  ``strict``: the last failure raises."""
    failed: list[str] = []
    for i, (runtime, precision) in enumerate(plan):
        try:
            return _graph_backend(runtime, loaded, options, precision), failed
        except Exception as exc:  # an export, a rewrite or a load; each runtime raises its own types
            if strict and i == len(plan) - 1:
                raise
            reason = _failure(exc)
            failed.append(f"{runtime} {precision} failed: {reason}")
            log.warning("%s %s unavailable for %s x%d (%s)", runtime, precision, loaded.spec.name, loaded.scale, reason)
    return None, failed


def _explain(backend: Backend, precision: str, why: str, failed: list[str]) -> str:
    if getattr(backend, "precision", precision) != precision:
        return f"fp32: {'; '.join(failed)}"
    return f"{why} ({'; '.join(failed)})" if failed else why


def _graph(runtime: str, loaded: LoadedModel, options: BackendOptions) -> tuple[Backend, str]:
    """``--backend openvino`` or ``onnxruntime``: the precision asked for, or the one auto picks for it."""
    if options.device not in ("auto", "cpu"):
        raise BackendError(f"backend {runtime} runs on the CPU, not --device {options.device}")
    runs = CPU_RUNTIMES[runtime]
    if options.precision not in ("auto", *runs):
        raise BackendError(f"the {runtime} backend runs {' or '.join(runs)}; use --precision {', '.join(runs)} or auto")
    plan, precision, why = _plan(loaded, options, runtime)
    backend, failed = _first_that_loads(loaded, options, plan, strict=True)
    assert backend is not None  # strict: the last failure raised
    return backend, _explain(backend, precision, why, failed)


def _auto_cpu(loaded: LoadedModel, device: torch.device, options: BackendOptions, why: str) -> tuple[Backend, str]:
    """A learned model on an ONNX runtime at :func:`cpu_precision`'s choice, else eager PyTorch.

    A runtime or precision auto chose that fails (an export, a rewrite, a load) costs speed, not
    the run: the next is tried, down to torch-cpu.  int8 asked for by name fails with the reason.
    """
    if not loaded.spec.learned:
        if options.precision == "int8":
            raise BackendError(f"{loaded.spec.name} is an interpolation baseline; it has no int8 form")
        return _cpu(loaded, device, options), f"{why}; interpolation baselines run on torch"
    if options.precision == "fp16":
        return _cpu(loaded, device, options), why  # which says fp16 is CUDA's
    plan, precision, precision_why = _plan(loaded, options, None)
    backend, failed = _first_that_loads(loaded, options, plan, strict=options.precision == "int8")
    if backend is not None:
        explained = _explain(backend, precision, precision_why, failed)
        return backend, f"{why}; {explained}" if options.precision == "auto" else why
    if options.precision == "int8":
        raise BackendError("int8 runs on openvino or onnxruntime, neither of which is installed: pip install openvino")
    if failed:
        return _cpu(loaded, device, options), f"{why}; {'; '.join(failed)}"
    if precision == "bf16":
        return _cpu(loaded, device, options), f"{why}; bf16 asked for (openvino with native bf16 is not here)"
    return _cpu(loaded, device, options), f"{why}; onnxruntime not installed"


def _auto(loaded: LoadedModel, options: BackendOptions) -> tuple[Backend, str]:
    """Fastest first: TensorRT, then torch-cuda, then the CPU.  Returns the backend and why."""
    device = resolve_device(options.device)
    if options.precision == "int8":  # the CPU's, even beside a GPU
        return _auto_cpu(loaded, torch.device("cpu"), options, "int8 asked for (a CPU runtime)")
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
    elif options.backend in CPU_RUNTIMES:
        backend, reason = _graph(options.backend, loaded, options)
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
    "cpu_precision",
    "create_backend",
    "precision_of",
    "resolve_device",
    "resolve_dtype",
]
