"""The OpenVINO backend: vidsr's cached ONNX graphs on OpenVINO's CPU plugin.

Why a second CPU runtime: where the CPU has low-precision dot products, OpenVINO's kernels run
the graphs vidsr already makes faster than ONNX Runtime.  Measured on the 2-core development
machine (AMD EPYC, AVX-512 with VNNI and AVX512-BF16; ``benchmarks/RESULTS.md``): the robust
ESPCN's int8 graph x2 on a 768x576 luma frame in 117 ms on onnxruntime, 78 ms here; the paper
ESPCN 78 ms in fp32 on onnxruntime, 40 ms here in bf16.
In fp32 it is no faster (and onnxruntime was 1.65x faster on the earlier AVX2 machine, issue 9),
so ``auto`` takes OpenVINO for int8 and bf16 only (:func:`vidsr.backends.cpu_precision`).

Precisions, each on a graph :func:`vidsr.backends.onnxruntime.cached_onnx` already caches:

* ``fp32``: the fp32 export at f32 inference precision.
* ``bf16``: the fp32 export at OpenVINO's bf16 inference precision (convolutions in bf16,
  activations kept to 8 significant bits).  Only on CPUs that compute bf16 natively
  (AVX512-BF16, AMX), where OpenVINO reports ``BF16``; elsewhere it would quietly run f32.
* ``int8``: the QDQ graph of :mod:`vidsr.backends.int8` at f32 inference precision, so what is
  not quantised (the bicubic residual, the add) stays fp32: at bf16 around the int8 convolutions
  the robust ESPCN x2 lost 0.096 dB PSNR-Y on val instead of 0.028 (a probe, not in the repo).

Threads: ``INFERENCE_NUM_THREADS`` as for onnxruntime, one stream (one frame batch at a time,
as the pipeline feeds it), and no pinning of threads to cores, which the decode and encode
threads share.  ``openvino`` is imported only when this backend is built or asked about.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsr.backends.onnxruntime import CpuGraphBackend
from vidsr.errors import BackendError

NAME = "openvino"


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


@cache
def cpu_capabilities() -> frozenset[str]:
    """What OpenVINO's CPU plugin says this CPU computes well (``FP32``, ``INT8``, ``BF16``, ...); empty without it."""
    if not openvino_available():
        return frozenset()
    try:
        return frozenset(str(c) for c in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # a plugin that cannot start is a CPU we know nothing about
        return frozenset()


def native_bf16() -> bool:
    """Whether this CPU computes bf16 itself (AVX512-BF16 or AMX), as OpenVINO reports it."""
    return "BF16" in cpu_capabilities()


def compile_config(threads: int, precision: str) -> dict[str, Any]:
    """The CPU plugin's settings for ``precision`` on ``threads`` threads (see the module docstring)."""
    return {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "ENABLE_CPU_PINNING": False,
    }


class OpenVINOBackend(CpuGraphBackend):
    """OpenVINO on the CPU: float32 NCHW in, float32 NCHW out, like the PyTorch module."""

    name = NAME

    def require(self, precision: str) -> None:
        if not openvino_available():
            raise BackendError("the openvino backend needs OpenVINO: pip install openvino")
        from vidsr.backends import CPU_RUNTIMES

        if precision not in CPU_RUNTIMES[NAME]:
            raise BackendError(f"the openvino backend runs {', '.join(CPU_RUNTIMES[NAME])}, not {precision}")
        if precision == "bf16" and not native_bf16():
            raise BackendError("bf16 on openvino needs a CPU with AVX512-BF16 or AMX; this one has neither")

    def load(self, path: Path) -> Any:
        config = compile_config(self.threads, self.precision)
        compiled = _core().compile_model(_core().read_model(str(path)), "CPU", config)
        self.request = compiled.create_infer_request()
        return compiled

    @property
    def compiled(self) -> Any:
        return self.graph

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import openvino as ov

        x = self.checked(x)
        n, c, h, w = x.shape
        # A new output array each call, written in place by OpenVINO: the caller may keep the last.
        out = np.empty((n, c, h * self.scale, w * self.scale), np.float32)
        self.request.set_input_tensor(0, ov.Tensor(x.numpy(), shared_memory=True))
        self.request.set_output_tensor(0, ov.Tensor(out, shared_memory=True))
        self.request.infer()
        return torch.from_numpy(out)


__all__ = ["NAME", "OpenVINOBackend", "cpu_capabilities", "native_bf16", "openvino_available"]
