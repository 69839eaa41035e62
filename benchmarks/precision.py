"""Does a lower precision pay on this CPU?  int8 and bf16 against fp32: speed and quality lost, in one run.

The bar, issue 9's for int8 and kept for every precision ``--precision auto`` may choose: >= 1.5x
faster than the fp32 graph on onnxruntime (the fp32 default) and <= 0.05 dB PSNR-Y lost on val.

* The robust ESPCN sets (the defaults; ReLU, calibrated): vidsr's int8 graph
  (``vidsr.backends.int8``: uint8 activations from the ranges each weights file ships, 7-bit
  per-channel weights) on openvino and on onnxruntime, and bf16 on openvino.  Quality: val PSNR-Y
  on the protocol and the mean gain over bicubic across the degradation matrix (how the robust
  sets are judged).
* The paper ESPCN sets (tanh): bf16 on openvino, and onnxruntime's own int8 quantiser
  (per-channel 7-bit weights, uint8 activations, MinMax calibration on 64 luma patches of
  ``shared/data/train``) to show why vidsr offers no int8 for them.
* The SRResNet sets (srresnet x2 and x4, robust and large; large x3; cascade x4; srgan x4): bf16 on openvino.

Every row runs through the backends ``vidsr upscale`` uses; ``auto here`` says whether
``--precision auto`` picks that engine on this CPU.  bf16 rows need a CPU that computes bf16
natively (AVX512-BF16 or AMX) and are left out elsewhere; openvino rows need OpenVINO.

Model-only times on one frame (ESPCN x2: 768x576, x3: 640x360, x4: 480x270 luma; SRResNet a
quarter of those pixels)::

    python benchmarks/precision.py [--data $VIDSR_DATA or ../shared/data] [--threads 2] [--only srresnet:large,...]

Needs ``onnx``; nothing is written to the repository (the graphs go to a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidsr.backends.onnxruntime import cached_onnx, session_options  # noqa: E402
from vidsr.bench_cpu import median_ms  # noqa: E402
from vidsr.colour import BT601_STUDIO, rgb_to_luma  # noqa: E402
from vidsr.evaluate import evaluate_images, list_images, load_rgb, module_upscaler  # noqa: E402
from vidsr.models import build_model  # noqa: E402

SIZES = {2: (576, 768), 3: (360, 640), 4: (270, 480)}


def calibration_patches(train: Path, count: int = 64, side: int = 96, seed: int = 0) -> list[np.ndarray]:
    """Random luma crops of the training photographs, (1, 1, side, side) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    photos = [rgb_to_luma(load_rgb(p), BT601_STUDIO) for p in list_images(train)]
    patches = []
    for i in range(count):
        y = photos[i % len(photos)]
        top = int(rng.integers(0, y.shape[-2] - side))
        left = int(rng.integers(0, y.shape[-1] - side))
        patches.append(y[None, :, top : top + side, left : left + side].float().numpy().copy())
    return patches


def quantised(fp32: Path, out: Path, patches: list[np.ndarray], input_name: str) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({input_name: p} for p in patches)

        def get_next(self):
            return next(self.items, None)

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        # 7-bit weights: AVX2's u8 x s8 multiply-add saturates its 16-bit pairs with full-range ones.
        reduce_range=True,
    )
    return out


class SessionModule:
    """An onnxruntime session called like the torch module (what ``module_upscaler`` wraps)."""

    def __init__(self, session) -> None:
        self.session = session
        self.name = session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(None, {self.name: x.contiguous().numpy()})
        return torch.from_numpy(out)


SETS = [  # (model, weights, scale, input (h, w)); SRResNet on a quarter of the pixels: it is 10x the work
    *[("espcn", "robust", scale, size) for scale, size in SIZES.items()],
    ("espcn", "paper", 2, SIZES[2]),
    ("espcn", "paper", 4, SIZES[4]),
    ("srresnet", "robust", 2, (288, 384)),
    ("srresnet", "large", 2, (288, 384)),
    ("srresnet", "large", 3, (180, 320)),
    ("srresnet", "robust", 4, (135, 240)),
    ("srresnet", "large", 4, (135, 240)),
    ("srresnet", "cascade", 4, (135, 240)),
    ("srresnet", "large+cascade", 4, (135, 240)),  # vidsr.models.mean: both networks, their answers averaged
    ("srgan", "paper", 4, (135, 240)),
]


def row_name(row: tuple) -> str:
    """A SETS row as ``--only`` names it: ``model:weights``."""
    return f"{row[0]}:{row[1]}"


def low_precision_engines(loaded) -> list[tuple[str, str]]:
    """(backend, precision) pairs below fp32 that vidsr runs for ``loaded`` on this machine."""
    from vidsr.bench_cpu import cpu_engines

    return [(b, p) for b, p in cpu_engines(loaded) if p != "fp32"]


def _quality(loaded, backend, val, scale: int, matrix: bool) -> tuple[float, float | None]:
    """Val PSNR-Y through ``backend``, and the mean matrix gain over bicubic when ``matrix``."""
    from vidsr.degrade import MATRIX
    from vidsr.evaluate import evaluate_matrix

    colour = "rgb" if loaded.spec.colour == "rgb" else "y"
    upscale = module_upscaler(backend, colour)
    psnr = evaluate_images(val, scale, upscale).psnr
    gain = evaluate_matrix(val, scale, upscale, list(MATRIX.values())).mean_gain if matrix else None
    return psnr, gain


def _row(loaded, weights: str, size, engine: str, ms32: float, ms: float, q32, q, auto: bool) -> dict:
    (h, w), (p32, g32), (p, g) = size, q32, q
    return {
        "weights": f"{loaded.spec.name} {weights}",
        "scale": loaded.scale,
        "input": f"{w}x{h} {'RGB' if loaded.spec.colour == 'rgb' else 'luma'}",
        "engine": engine,
        "fp32_ms": ms32,
        "ms": ms,
        "speedup": round(ms32 / ms, 2),
        "psnr_fp32": round(p32, 2),
        "psnr": round(p, 2),
        "loss_db": round(p32 - p, 3),
        "matrix_gain_fp32": None if g32 is None else round(g32, 3),
        "matrix_gain": None if g is None else round(g, 3),
        "meets_bar": ms32 / ms >= 1.5 and p32 - p <= 0.05,
        "auto_here": auto,
    }


def vidsr_rows(data: Path, threads: int, tmp: Path, sets: list[tuple]) -> list[dict]:
    """Each of ``sets``: every lower precision vidsr runs here against onnxruntime fp32, through its backends."""
    from vidsr.backends import BackendOptions, create_backend
    from vidsr.bench_cpu import engine_label

    val = [(path.stem, load_rgb(path)) for path in list_images(data / "val")]
    rows = []
    for model, weights, scale, (h, w) in sets:
        loaded = build_model(model, scale, weights=weights)

        def backend(name: str, precision: str, loaded=loaded):
            options = BackendOptions(backend=name, precision=precision, threads=threads, engine_dir=tmp)
            return create_backend(loaded, options)

        auto = create_backend(loaded, BackendOptions(device="cpu", threads=threads, engine_dir=tmp))
        x = torch.rand(1, loaded.spec.channels, h, w, generator=torch.Generator().manual_seed(0))
        matrix = weights == "robust" and model == "espcn"  # how the robust ESPCN sets are judged
        fp32 = backend("onnxruntime", "fp32")
        ms32 = median_ms(lambda b=fp32, x=x: b(x), 7)
        q32 = _quality(loaded, fp32, val, scale, matrix)
        for name, precision in low_precision_engines(loaded):
            low = backend(name, precision)
            ms = median_ms(lambda b=low, x=x: b(x), 7)
            chosen = (auto.name, getattr(auto, "precision", "")) == (name, precision)
            q = _quality(loaded, low, val, scale, matrix)
            rows.append(_row(loaded, weights, (h, w), engine_label(name, precision), ms32, ms, q32, q, chosen))
    return rows


def ort_quantiser(data: Path, threads: int, tmp: Path) -> list[dict]:
    """The paper ESPCN sets: onnxruntime's quantiser on the fp32 export (vidsr offers no int8 for tanh)."""
    import onnxruntime as ort

    patches = calibration_patches(data / "train")
    val = [(path.stem, load_rgb(path)) for path in list_images(data / "val")]
    rows = []
    for scale in (2, 4):
        h, w = SIZES[scale]
        loaded = build_model("espcn", scale, weights="paper")
        fp32_path, _ = cached_onnx(loaded, tmp)
        options = session_options(threads)
        fp32 = ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"])
        name = fp32.get_inputs()[0].name
        int8_path = quantised(fp32_path, Path(tmp) / f"espcn_x{scale}.int8.onnx", patches, name)
        int8 = ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])
        x = {name: np.random.default_rng(0).random((1, 1, h, w), dtype=np.float32)}
        ms32 = median_ms(lambda s=fp32, x=x: s.run(None, x), 7)
        ms8 = median_ms(lambda s=int8, x=x: s.run(None, x), 7)
        q32 = evaluate_images(val, scale, module_upscaler(SessionModule(fp32), "y")).psnr, None
        q8 = evaluate_images(val, scale, module_upscaler(SessionModule(int8), "y")).psnr, None
        rows.append(_row(loaded, "paper", (h, w), "onnxruntime quantiser int8", ms32, ms8, q32, q8, False))
    return rows


def measure(data: Path, threads: int, only: set[str] | None = None) -> list[dict]:
    """Lower precisions against fp32: ms, speed-up, quality, whether each meets the bar and is auto's choice.

    ``only``: the ``model:weights`` rows of SETS to measure (the quantiser rows are left out), or None for all.
    """
    sets = [s for s in SETS if only is None or row_name(s) in only]
    with tempfile.TemporaryDirectory() as tmp:
        rows = vidsr_rows(data, threads, Path(tmp), sets)
        return rows if only is not None else rows + ort_quantiser(data, threads, Path(tmp))


HEAD = [
    "weights",
    "x",
    "input",
    "engine",
    "fp32 ms (onnxruntime)",
    "ms",
    "speed-up",
    "val PSNR-Y fp32",
    "this",
    "loss dB",
    "matrix gain fp32",
    "this",
    "meets the bar",
    "auto here",
]
KEYS = [
    "weights",
    "scale",
    "input",
    "engine",
    "fp32_ms",
    "ms",
    "speedup",
    "psnr_fp32",
    "psnr",
    "loss_db",
    "matrix_gain_fp32",
    "matrix_gain",
    "meets_bar",
    "auto_here",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", help="Comma-separated model:weights rows of SETS, e.g. srresnet:large [all]")
    args = p.parse_args(argv)
    only = None if args.only is None else set(args.only.split(","))
    if only is not None and (unknown := only - {row_name(s) for s in SETS}):
        p.error(f"--only: no such rows: {', '.join(sorted(unknown))}")
    torch.set_num_threads(args.threads)
    print("| " + " | ".join(HEAD) + " |")
    print("|" + " --- |" * len(HEAD))
    for row in measure(args.data, args.threads, only):
        print("| " + " | ".join("–" if row[k] is None else str(row[k]) for k in KEYS) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
