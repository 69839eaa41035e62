"""Does int8 pay for ESPCN on this CPU?  Static QDQ quantisation, calibrated on training patches.

The issue's bar for shipping it: >= 1.5x faster than the fp32 graph and <= 0.05 dB PSNR-Y lost
on val.  This script measures both for the paper ESPCN at x2 (768x576 luma) and x4 (480x270 luma)
with onnxruntime's own quantiser (per-channel int8 weights, uint8 activations, MinMax calibration
on 64 luma patches of ``shared/data/train``), in one run, and prints a table (``benchmarks/run.py``
renders the same into RESULTS.md)::

    python benchmarks/int8.py [--data $VIDSR_DATA or ../shared/data] [--threads 2]

Needs ``onnx`` (a dependency of onnxruntime's quantiser); nothing is written to the repository.
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

SIZES = {2: (576, 768), 4: (270, 480)}


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


def measure(data: Path, threads: int) -> list[dict]:
    """fp32 against int8 for the paper ESPCN at x2 and x4: ms, speed-up, val PSNR-Y, and whether it ships."""
    import onnxruntime as ort

    patches = calibration_patches(data / "train")
    val = [(path.stem, load_rgb(path)) for path in list_images(data / "val")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale, (h, w) in SIZES.items():
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
            rows.append(
                {
                    "scale": scale,
                    "input": f"{w}x{h} luma",
                    "fp32_ms": ms32,
                    "int8_ms": ms8,
                    "speedup": round(ms32 / ms8, 2),
                    "psnr_fp32": round(psnr32, 2),
                    "psnr_int8": round(psnr8, 2),
                    "loss_db": round(psnr32 - psnr8, 2),
                    "ships": ms32 / ms8 >= 1.5 and psnr32 - psnr8 <= 0.05,
                }
            )
    return rows


HEAD = ["x", "input", "fp32 ms", "int8 ms", "speed-up", "val PSNR-Y fp32", "int8", "loss dB", "ships"]
KEYS = ["scale", "input", "fp32_ms", "int8_ms", "speedup", "psnr_fp32", "psnr_int8", "loss_db", "ships"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| " + " | ".join(HEAD) + " |")
    print("|" + " --- |" * len(HEAD))
    for row in measure(args.data, args.threads):
        print("| " + " | ".join(str(row[k]) for k in KEYS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
