"""Does int8 pay for ESPCN on this CPU?  Speed and quality lost, fp32 against int8, in one run.

The issue's bar for int8: >= 1.5x faster than the fp32 graph and <= 0.05 dB PSNR-Y lost on val.

* The robust ESPCN sets (the defaults; ReLU): vidsr's own int8 graph (``vidsr.backends.int8``:
  uint8 activations from the ranges each weights file ships, 7-bit per-channel weights), through
  the onnxruntime backend as ``vidsr upscale`` runs it.  Quality: val PSNR-Y on the protocol and
  the mean gain over bicubic across the degradation matrix (how the robust sets are judged).
* The paper ESPCN sets (tanh), which have no int8 form in vidsr: onnxruntime's own quantiser
  (per-channel 7-bit weights, uint8 activations, MinMax calibration on 64 luma patches of
  ``shared/data/train``), to show why.

Model-only times on one luma frame (x2: 768x576, x3: 640x360, x4: 480x270)::

    python benchmarks/int8.py [--data $VIDSR_DATA or ../shared/data] [--threads 2]

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


def _row(weights: str, scale: int, how: str, ms32: float, ms8: float, p32: float, p8: float, gains=None) -> dict:
    h, w = SIZES[scale]
    return {
        "weights": weights,
        "scale": scale,
        "input": f"{w}x{h} luma",
        "int8": how,
        "fp32_ms": ms32,
        "int8_ms": ms8,
        "speedup": round(ms32 / ms8, 2),
        "psnr_fp32": round(p32, 2),
        "psnr_int8": round(p8, 2),
        "loss_db": round(p32 - p8, 3),
        "matrix_gain_fp32": None if gains is None else round(gains[0], 3),
        "matrix_gain_int8": None if gains is None else round(gains[1], 3),
        "ships": ms32 / ms8 >= 1.5 and p32 - p8 <= 0.05,
    }


def shipped_int8(data: Path, threads: int, tmp: Path) -> list[dict]:
    """The robust sets: vidsr's int8 graph against its fp32 graph, both through the onnxruntime backend."""
    from vidsr.backends.onnxruntime import OnnxRuntimeBackend
    from vidsr.degrade import MATRIX
    from vidsr.evaluate import evaluate_matrix

    val = [(path.stem, load_rgb(path)) for path in list_images(data / "val")]
    rows = []
    for scale, (h, w) in SIZES.items():
        loaded = build_model("espcn", scale, weights="robust")
        backends = [OnnxRuntimeBackend(loaded, threads=threads, cache_dir=tmp, precision=p) for p in ("fp32", "int8")]
        x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(0))
        ms32, ms8 = (median_ms(lambda b=b, x=x: b(x), 7) for b in backends)
        psnr = [evaluate_images(val, scale, module_upscaler(b, "y")).psnr for b in backends]
        gains = [
            evaluate_matrix(val, scale, module_upscaler(b, "y"), list(MATRIX.values())).mean_gain for b in backends
        ]
        rows.append(_row("robust", scale, "vidsr (shipped)", ms32, ms8, *psnr, gains))
    return rows


def ort_quantiser(data: Path, threads: int, tmp: Path) -> list[dict]:
    """The paper sets: onnxruntime's quantiser on the fp32 export."""
    import onnxruntime as ort

    patches = calibration_patches(data / "train")
    val = [(path.stem, load_rgb(path)) for path in list_images(data / "val")]
    rows = []
    for scale in (2, 4):
        h, w = SIZES[scale]
        fp32_path, _ = cached_onnx(build_model("espcn", scale, weights="paper"), tmp)
        options = session_options(threads)
        fp32 = ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"])
        name = fp32.get_inputs()[0].name
        int8_path = quantised(fp32_path, Path(tmp) / f"espcn_x{scale}.int8.onnx", patches, name)
        int8 = ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])
        x = {name: np.random.default_rng(0).random((1, 1, h, w), dtype=np.float32)}
        ms32 = median_ms(lambda s=fp32, x=x: s.run(None, x), 7)
        ms8 = median_ms(lambda s=int8, x=x: s.run(None, x), 7)
        psnr32 = evaluate_images(val, scale, module_upscaler(SessionModule(fp32), "y")).psnr
        psnr8 = evaluate_images(val, scale, module_upscaler(SessionModule(int8), "y")).psnr
        rows.append(_row("paper", scale, "onnxruntime quantiser", ms32, ms8, psnr32, psnr8))
    return rows


def measure(data: Path, threads: int) -> list[dict]:
    """fp32 against int8: the shipped robust sets, then the paper sets; ms, speed-up, quality, whether it ships."""
    with tempfile.TemporaryDirectory() as tmp:
        return shipped_int8(data, threads, Path(tmp)) + ort_quantiser(data, threads, Path(tmp))


HEAD = [
    "weights",
    "x",
    "input",
    "int8 graph",
    "fp32 ms",
    "int8 ms",
    "speed-up",
    "val PSNR-Y fp32",
    "int8",
    "loss dB",
    "matrix gain fp32",
    "int8",
    "meets the bar",
]
KEYS = [
    "weights",
    "scale",
    "input",
    "int8",
    "fp32_ms",
    "int8_ms",
    "speedup",
    "psnr_fp32",
    "psnr_int8",
    "loss_db",
    "matrix_gain_fp32",
    "matrix_gain_int8",
    "ships",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| " + " | ".join(HEAD) + " |")
    print("|" + " --- |" * len(HEAD))
    for row in measure(args.data, args.threads):
        print("| " + " | ".join("–" if row[k] is None else str(row[k]) for k in KEYS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
