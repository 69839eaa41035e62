"""CPU speed tables: model only, per frame against OpenCV's dnn_superres, pre/post-processing, threads.

Each function measures one table of ``benchmarks/RESULTS.md`` and returns plain dicts (JSON
rows).  Every figure is a median over repeats, after a warm-up call, taken in one run so the
rows of a table compare under the same machine load.

OpenCV's ``dnn_superres`` ESPCN (``../shared/peers``, the TF-ESPCN export: the paper's layer
sizes) is the peer: it takes BGR, converts to YCrCb, runs the net on Y and resizes chroma with
bicubic, the same work ``Upscaler.upscale_image`` does.  Its rows are skipped, with the reason,
when ``opencv-contrib-python`` or the model files are absent.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from torch import nn

from vidsr.backends import precision_of
from vidsr.colour import BT601_STUDIO
from vidsr.media.sink import EncodeOptions
from vidsr.models import LoadedModel
from vidsr.upscaler import PlaneBatch, Upscaler, output_geometry
from vidsr.video import upscale_video

PEERS_ENV = "VIDSR_PEERS"


def median_ms(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median wall time of ``fn`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 2)


def conv_gflop(module: nn.Module, channels: int, height: int, width: int) -> float:
    """Multiply-adds x 2 of every convolution for one ``height`` x ``width`` input, in GFLOP."""
    total = 0
    hooks = []

    def count(m: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += 2 * kh * kw * (m.in_channels // m.groups) * out.shape[1] * out.shape[2] * out.shape[3]

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(count))
    try:
        with torch.inference_mode():
            module(torch.zeros(1, channels, height, width))
    finally:
        for h in hooks:
            h.remove()
    return total / 1e9


def peers_dir() -> Path:
    env = os.environ.get(PEERS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "peers"


def opencv_espcn(scale: int, threads: int | None = None) -> tuple[Any | None, str]:
    """OpenCV's dnn_superres ESPCN at ``scale``, or None and why it cannot run here."""
    try:
        import cv2
    except ImportError:
        return None, "opencv-contrib-python(-headless) is not installed"
    if not hasattr(cv2, "dnn_superres"):
        return None, "OpenCV without the contrib dnn_superres module"
    path = peers_dir() / f"ESPCN_x{scale}.pb"
    if not path.is_file():
        return None, f"{path} not found (set {PEERS_ENV})"
    if threads:
        cv2.setNumThreads(threads)
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    try:
        sr.readModel(str(path))
    except cv2.error as exc:  # OpenCV 5.1 reads the TensorFlow .pb through its ONNX importer and fails
        return None, f"OpenCV {cv2.__version__} cannot read {path.name}: {str(exc).strip().splitlines()[-1]}"
    sr.setModel("espcn", scale)
    return sr, ""


def frame_rgb(src: Path, size: tuple[int, int] | None = None, index: int = 0) -> np.ndarray:
    """Frame ``index`` of ``src`` as (H, W, 3) uint8 RGB, resized (swscale bicubic) to ``size`` = (w, h)."""
    with av.open(str(src)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == index:
                if size:
                    frame = frame.reformat(width=size[0], height=size[1], interpolation="BICUBIC")
                return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{src} has no frame {index}")


# -- model only --------------------------------------------------------------------------------
def cpu_engines(loaded: LoadedModel) -> list[tuple[str, str]]:
    """(backend, precision) pairs a CPU table measures: fp32 on each runtime here, bf16 where the CPU
    computes it (OpenVINO), int8 where the weights carry a calibration."""
    from vidsr.backends.int8 import calibration_of
    from vidsr.backends.openvino import native_bf16, openvino_available

    int8 = calibration_of(loaded) is not None
    engines = [("torch-cpu", "fp32"), ("onnxruntime", "fp32")] + ([("onnxruntime", "int8")] if int8 else [])
    if openvino_available():
        engines += [("openvino", "fp32")] + ([("openvino", "bf16")] if native_bf16() else [])
        engines += [("openvino", "int8")] if int8 else []
    return engines


SHORT_PRECISION = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}  # precision_of's words -> options'


def engine_label(backend: str, precision: str) -> str:
    """``onnxruntime``, ``openvino bf16``: the backend, and its precision where not fp32."""
    precision = SHORT_PRECISION.get(precision, precision)
    return backend if precision == "fp32" else f"{backend} {precision}"


def model_only_rows(
    loaded_for: Callable[[], LoadedModel], label: str, height: int, width: int, repeats: int = 3
) -> list[dict[str, Any]]:
    """One luma frame through each CPU engine: ms, GFLOP/s, and the max difference to eager PyTorch."""
    loaded = loaded_for()
    gflop = conv_gflop(loaded.module, loaded.spec.channels, height, width)
    x = torch.rand(1, loaded.spec.channels, height, width, generator=torch.Generator().manual_seed(0))
    rows = []
    reference = None
    for backend, precision in cpu_engines(loaded):
        up = Upscaler(loaded=loaded_for(), scale=loaded.scale, backend=backend, precision=precision, tile_pixels=0)
        ms = median_ms(lambda up=up: up.run_model(x), repeats)
        out = up.run_model(x)
        reference = out if reference is None else reference
        rows.append(
            {
                "network": label,
                "scale": loaded.scale,
                "input": f"{width}x{height} luma",
                "engine": engine_label(backend, precision),
                "ms": ms,
                "gflop": round(gflop, 2),
                "gflops": round(gflop / ms * 1000, 1),
                "max_abs_vs_torch": float((out - reference).abs().max()),
            }
        )
    return rows


# -- per frame: RGB in, RGB out --------------------------------------------------------------------
def per_frame_rows(
    loaded_for: Callable[[], LoadedModel], label: str, rgb: np.ndarray, repeats: int = 3
) -> list[dict[str, Any]]:
    """``Upscaler.upscale_image`` per backend beside OpenCV's ``upsample``, same RGB frame."""
    loaded = loaded_for()
    scale = loaded.scale
    h, w = rgb.shape[:2]
    rows = []
    for backend, precision in sorted(cpu_engines(loaded), key=lambda e: e[0] != "onnxruntime"):
        up = Upscaler(loaded=loaded_for(), scale=scale, backend=backend, precision=precision, tile_pixels=0)
        luma = torch.rand(1, 1, h, w)
        model_ms = median_ms(lambda up=up, luma=luma: up.run_model(luma), repeats)
        frame_ms = median_ms(lambda up=up: up.upscale_image(rgb), repeats)
        rows.append(
            {
                "network": label,
                "scale": scale,
                "input": f"{w}x{h} RGB",
                "engine": f"vidsr {engine_label(backend, precision)}",
                "frame_ms": frame_ms,
                "model_ms": model_ms,
                "note": "",
            }
        )
    sr, why = opencv_espcn(scale, threads=torch.get_num_threads())
    if sr is None:
        rows.append(
            {
                "network": "OpenCV dnn_superres ESPCN",
                "scale": scale,
                "input": f"{w}x{h} RGB",
                "engine": "opencv",
                "frame_ms": None,
                "model_ms": None,
                "note": f"skipped: {why}",
            }
        )
    else:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        rows.append(
            {
                "network": "OpenCV dnn_superres ESPCN (TF-ESPCN, paper sizes)",
                "scale": scale,
                "input": f"{w}x{h} RGB",
                "engine": "opencv",
                "frame_ms": median_ms(lambda: sr.upsample(bgr), repeats),
                "model_ms": None,
                "note": f"cv2 {__import__('cv2').__version__}, {torch.get_num_threads()} threads",
            }
        )
    peer = rows[-1]["frame_ms"]
    for r in rows:
        r["opencv_over_this"] = round(peer / r["frame_ms"], 2) if peer and r["frame_ms"] else None
    return rows


def prepost_rows(
    loaded_for: Callable[[], LoadedModel], label: str, height: int, width: int, repeats: int = 3
) -> list[dict[str, Any]]:
    """Video frames (yuv420p planes in and out) on the engine and precision ``auto`` picks on this
    CPU (as ``vidsr upscale`` runs): time beside the model's own.

    ``prepost / model`` is what the colour handling, chroma resampling and quantisation add.
    """
    loaded = loaded_for()
    up = Upscaler(loaded=loaded, scale=loaded.scale, device="cpu", tile_pixels=0)
    rng = np.random.default_rng(0)
    batch = PlaneBatch.stack(
        [
            (
                rng.integers(0, 256, (height, width), dtype=np.uint8),
                rng.integers(0, 256, (height // 2, width // 2), dtype=np.uint8),
                rng.integers(0, 256, (height // 2, width // 2), dtype=np.uint8),
            )
        ]
    )
    g = output_geometry(height, width, loaded.scale, 2, 2)
    y = torch.rand(1, 1, height, width)
    # Interleaved, so a change in the machine's load hits both alike.
    model, planes = [], []
    up.upscale_planes(batch, BT601_STUDIO, BT601_STUDIO, g)
    for _ in range(repeats):
        model.append(median_ms(lambda: up.run_model(y), 1))
        planes.append(median_ms(lambda: up.upscale_planes(batch, BT601_STUDIO, BT601_STUDIO, g), 1))
    m, p = statistics.median(model), statistics.median(planes)
    return [
        {
            "network": label,
            "scale": loaded.scale,
            "input": f"{width}x{height} yuv420p",
            "engine": engine_label(up.backend.name, precision_of(up.backend)),
            "model_ms": round(m, 2),
            "frame_ms": round(p, 2),
            "prepost_ms": round(p - m, 2),
            "prepost_over_model": round((p - m) / m, 3),
        }
    ]


# -- threads -----------------------------------------------------------------------------------------
def thread_rows(
    loaded_for: Callable[[], LoadedModel],
    label: str,
    src: Path,
    out_dir: Path,
    model_threads: tuple[int, ...],
    encoder_threads: tuple[int | None, ...],
    encode: EncodeOptions | None = None,
    suffixes: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """End-to-end fps of ``src`` for each output container (``suffixes``, each with its default
    encoder; none: ``src``'s) and each (model intra-op threads, encoder threads) pair."""
    from vidsr.media.encoders import codec_for, muxer_for

    encode = encode or EncodeOptions()
    rows = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in suffixes or (src.suffix,):
        for mt in model_threads:
            up = Upscaler(loaded=loaded_for(), scale=loaded_for().scale, device="cpu", threads=mt)
            for et in encoder_threads:
                enc = encode if et is None else replace(encode, extra=(*encode.extra, ("threads", str(et))))
                dst = out_dir / f"threads{mt}-{et}{suffix}"
                summary = upscale_video(src, dst, upscaler=up, encode=enc, overwrite=True, progress=False)
                dst.unlink(missing_ok=True)
                rows.append(
                    {
                        "network": label,
                        "scale": up.scale,
                        "input": src.name,
                        "engine": engine_label(up.backend.name, precision_of(up.backend)),
                        "output": f"{suffix} ({codec_for(muxer_for(dst), enc)})",
                        "model_threads": mt,
                        "encoder_threads": "auto" if et is None else et,
                        "frames": summary.frames_out,
                        "fps": summary.fps,
                    }
                )
    return rows


# -- the CLI, end to end -----------------------------------------------------------------------------
def cli_rows(commands: list[tuple[str, list[str], Path | None]], out_dir: Path) -> list[dict[str, Any]]:
    """Each ``vidsr upscale ARGS --json -q`` in a fresh process, as a user runs it: fps from its summary.

    A command's third item, when given, is a source tree to import vidsr from instead (an older
    checkout, for "before" rows measured in the same run).
    """
    import json

    rows = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for label, args, root in commands:
        out = (out_dir / f"cli{len(rows)}{Path(args[0]).suffix}").resolve()
        code = "import vidsr, sys; from vidsr.cli import main; print(vidsr.__file__, file=sys.stderr); main()"
        cmd = [sys.executable, "-c", code, "upscale", *args, "-o", str(out), "--overwrite", "--json", "-q"]
        env = dict(os.environ)
        if root is not None:
            env["PYTHONPATH"] = str(root)
        started = time.perf_counter()
        # cwd too: ``python -c`` puts the working directory first on sys.path.
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=root)
        wall = time.perf_counter() - started
        out.unlink(missing_ok=True)
        if done.returncode:
            raise RuntimeError(f"{label} failed: {done.stderr.strip()[-2000:]}")
        imported = done.stderr.splitlines()[0] if done.stderr else ""
        if root is not None and not imported.startswith(str(root)):
            raise RuntimeError(f"{label}: imported {imported}, not the tree at {root}")
        summary = json.loads(done.stdout)
        rows.append(
            {
                "command": label,
                "frames": summary["frames_out"],
                "backend": summary["backend"],
                "precision": summary["precision"],
                "seconds": summary["seconds"],
                "wall_s": round(wall, 1),
                "fps": summary["fps"],
            }
        )
    return rows
