"""Inference backends: one protocol, chosen by name or by ``auto``.

A backend runs the model only: float NCHW in, float NCHW out, on its device.
Colour conversion, resampling of chroma and quantisation happen around it
(see :mod:`vidsr.upscaler`), on the same device.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import torch

from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "torch-cuda", "torch-cpu")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")


class Backend(Protocol):
    name: str
    device: torch.device
    dtype: torch.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``(N, C, h, w)`` in ``dtype`` on ``device`` -> ``(N, C, s*h, s*w)``."""
        ...


@dataclass(frozen=True)
class BackendOptions:
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError("--device cuda asked for, but no CUDA GPU is available to PyTorch")
    return dev


def resolve_dtype(precision: str, device: torch.device, fp16_safe: bool) -> torch.dtype:
    if precision == "auto":
        # FP16 on GPUs (tensor cores); FP32 on the CPU, where FP16 convolution is slow.
        return torch.float16 if device.type == "cuda" and fp16_safe else torch.float32
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


def create_backend(loaded: LoadedModel, options: BackendOptions) -> Backend:
    """The backend ``options`` name, or for ``auto`` the fastest that works here."""
    if options.backend not in BACKENDS:
        raise BackendError(f"unknown backend {options.backend!r}; choose from {', '.join(BACKENDS)}")
    if options.precision not in PRECISIONS:
        raise BackendError(f"unknown precision {options.precision!r}; choose from {', '.join(PRECISIONS)}")
    if options.backend == "torch-cpu":
        device = torch.device("cpu")
    elif options.backend in ("torch-cuda", "tensorrt"):
        device = resolve_device("cuda" if options.device == "auto" else options.device)
        if device.type != "cuda":
            raise BackendError(f"backend {options.backend} needs a CUDA device, not {device}")
    else:
        device = resolve_device(options.device)
    dtype = resolve_dtype(options.precision, device, loaded.spec.fp16_safe)
    if dtype == torch.float16 and device.type == "cpu":
        raise BackendError("fp16 runs on CUDA only; use --precision fp32 or bf16 on the CPU")
    return TorchBackend(loaded, device, dtype)
