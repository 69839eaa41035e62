"""CUDA's set-up started early: the GPU's context and cuDNN, beside the rest of the start-up.

On the H200 the CLI's warm start-up waited for these one after the other: ``import torch`` (1.2-1.6 s
with bytecode kept), the rest of the imports and the weights, CUDA's context (0.35 s, when the model
first moves to the GPU), then, once the input's size is known, the first model call (0.75-0.80 s at
1080p batch 8: loading cuDNN, its kernel choice, the CUDA graph).  A probe there ran the context's
set-up in a thread beside the imports that follow PyTorch's: its 0.36 s left the start-up and the
imports took 0.15 s longer.  :func:`start_cuda_setup` does that, and then runs one tiny fp16
convolution, which loads cuDNN's libraries and makes its handle (PyTorch hands a finished thread's
handle to the next thread that asks), so the first model call is left only the kernel choice and
the graph.  What that saves at the first frame is unmeasured until a GPU session runs ``make
gpu-check`` or ``benchmarks/startup_probe.py``: both time warm starts with and without it
(``VIDSR_CUDA_SETUP=0``).

The caller joins the thread before any model call, so nothing here overlaps a CUDA graph's capture.
A set-up that fails is only logged: the model's own first CUDA call meets the same problem and
reports it.
"""

from __future__ import annotations

import logging
import os
import threading

import torch

from vidsr.backends import CPU_RUNTIMES

log = logging.getLogger(__name__)

SWITCH_ENV = "VIDSR_CUDA_SETUP"  # "0": no early set-up (the benchmarks' A/B)
CPU_BACKENDS = (*CPU_RUNTIMES, "torch-cpu")


def cuda_index(device: str, backend: str = "auto", precision: str = "auto") -> int | None:
    """The CUDA device that ``--device``, ``--backend`` and ``--precision`` would run on, or None where
    it cannot be a GPU (a CPU runtime, int8, ``--device cpu``, a PyTorch built without CUDA).

    Nothing here asks the driver: whether a GPU is there, or which device is current, would set CUDA
    up in the caller's thread, the wait this module takes out of the way.  ``auto`` and ``cuda`` mean
    cuda:0, the current device of a process that has not chosen one (the CLI's); whether there is a
    GPU at all is the set-up's first question, in its thread."""
    if backend in CPU_BACKENDS or precision == "int8" or not torch.backends.cuda.is_built():
        return None
    if device == "auto":
        return 0
    try:
        named = torch.device(device)
    except RuntimeError:
        return None  # not a device name: resolve_device says so when the model is made
    return (named.index or 0) if named.type == "cuda" else None


def start_cuda_setup(device: str, backend: str = "auto", precision: str = "auto") -> threading.Thread | None:
    """Start CUDA's context and cuDNN on the device the options name, in a thread; join it before the
    first model call.  None (nothing started) off the GPU or with ``VIDSR_CUDA_SETUP=0``."""
    if os.environ.get(SWITCH_ENV) == "0":
        return None
    index = cuda_index(device, backend, precision)
    if index is None:
        return None
    # Not a daemon: a run that fails or is interrupted meanwhile still waits for it (under a second)
    # before Python tears down, instead of unloading CUDA under a thread inside it.
    thread = threading.Thread(target=_set_up_quietly, args=(index,), name="vidsr-cuda-setup")
    thread.start()
    return thread


def _set_up_quietly(index: int) -> None:
    try:
        set_up(index)
    except Exception as exc:  # the model's first CUDA call meets it too, and reports it
        log.debug("early CUDA set-up on cuda:%d failed: %s", index, exc)


def set_up(index: int) -> None:
    """The context on ``cuda:index`` and cuDNN loaded, by one 3x3 fp16 convolution on 8x8 pixels;
    nothing where PyTorch sees no GPU (``auto`` then runs on the CPU)."""
    if not torch.cuda.is_available():
        return
    device = torch.device("cuda", index)
    with torch.inference_mode(), torch.cuda.device(device):
        x = torch.zeros(1, 1, 8, 8, device=device, dtype=torch.float16)
        torch.nn.functional.conv2d(x, torch.zeros(1, 1, 3, 3, device=device, dtype=torch.float16), padding=1)
        torch.cuda.synchronize(device)
