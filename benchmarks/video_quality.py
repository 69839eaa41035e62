"""Video quality: a real clip downscaled, upscaled back by vidsr, compared frame by frame with the original.

    python benchmarks/video_quality.py --clip ../shared/data/video/vtest.avi --frames 30 --scales 2,4

For each scale: the clip's first N frames (Y'CbCr planes, cropped to a multiple of
2 x scale) are downscaled plane by plane with antialiased bicubic (Pillow's kernel, the
literature's LR) and written losslessly; ``vidsr.upscale_video`` upscales that file with
bicubic and with each learned model that has weights, writing losslessly too; every output
frame's Y is compared with the original's Y (``scale`` pixels shaved), PSNR and SSIM as in
``vidsr.metrics``.  So the figures include the whole video path (decode, conversion,
batching, quantisation, encode), not just the network.

Learned models without trained weights are skipped (random weights would measure noise);
pass ``--weights espcn=path.safetensors`` to use your own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidsr.errors import ModelError  # noqa: E402 - the checkout's vidsr, even when not installed
from vidsr.media.sink import EncodeOptions  # noqa: E402
from vidsr.media.source import plane_view  # noqa: E402
from vidsr.metrics import psnr, shave, ssim  # noqa: E402
from vidsr.models import build_model  # noqa: E402
from vidsr.resample import resize, to_uint8  # noqa: E402
from vidsr.video import upscale_video  # noqa: E402

DEFAULT_CLIP = ROOT.parent / "shared" / "data" / "video" / "vtest.avi"
LOSSLESS = EncodeOptions(codec="libx264", crf=0, preset="ultrafast", pix_fmt="yuv420p")


def read_planes(path: Path, frames: int, multiple: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first ``frames`` frames as yuv420p planes, cropped to a multiple of ``multiple``."""
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            if len(out) == frames:
                break
            f = frame.reformat(format="yuv420p")
            h, w = f.height - f.height % multiple, f.width - f.width % multiple
            y, cb, cr = (plane_view(p) for p in f.planes[:3])
            out.append((y[:h, :w].copy(), cb[: h // 2, : w // 2].copy(), cr[: h // 2, : w // 2].copy()))
    return out


def downscale(planes: tuple[np.ndarray, ...], scale: int) -> tuple[np.ndarray, ...]:
    """Each plane by 1/scale, antialiased bicubic with 8-bit rounding between passes (Pillow's LR)."""
    small = []
    for p in planes:
        t = torch.from_numpy(p).float().div(255.0)[None]
        size = (p.shape[0] // scale, p.shape[1] // scale)
        small.append(to_uint8(resize(t, size, "bicubic", like_pillow_8bit=True))[0].numpy())
    return tuple(small)


def write_clip(path: Path, frames: list[tuple[np.ndarray, ...]], rate: Fraction) -> None:
    h, w = frames[0][0].shape
    with av.open(str(path), "w") as out:
        s = out.add_stream(LOSSLESS.codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"qp": "0", "preset": "ultrafast"}
        for i, planes in enumerate(frames):
            vf = av.VideoFrame(w, h, "yuv420p")
            for plane, data in zip(vf.planes, planes, strict=True):
                plane_view(plane)[...] = data
            vf.pts = i
            out.mux(s.encode(vf))
        out.mux(s.encode(None))


def read_y(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [plane_view(f.reformat(format="yuv420p").planes[0]).copy() for f in c.decode(video=0)]


def score(hr: list[tuple[np.ndarray, ...]], out: Path, scale: int) -> dict[str, float | list[float]]:
    ys = read_y(out)
    if len(ys) != len(hr):
        raise RuntimeError(f"{out} has {len(ys)} frames, expected {len(hr)}")
    p, s = [], []
    for (y_hr, _, _), y_sr in zip(hr, ys, strict=True):
        a = shave(torch.from_numpy(y_sr[: y_hr.shape[0], : y_hr.shape[1]]).double(), scale)
        b = shave(torch.from_numpy(y_hr).double(), scale)
        p.append(psnr(a, b))
        s.append(ssim(a, b))
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)), "psnr_per_frame": [round(v, 3) for v in p]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--scales", default="2,4")
    ap.add_argument("--models", default="espcn,srresnet,srgan")
    ap.add_argument("--weights", action="append", default=[], help="MODEL=FILE (repeatable)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, help="write the figures (with per-frame PSNR) here")
    args = ap.parse_args(argv)
    weights = dict(w.split("=", 1) for w in args.weights)
    results = []
    with tempfile.TemporaryDirectory(prefix="vidsr-vq-") as tmp:
        work = Path(tmp)
        with av.open(str(args.clip)) as c:
            rate = c.streams.video[0].average_rate or Fraction(25)
        for scale in (int(s) for s in args.scales.split(",")):
            hr = read_planes(args.clip, args.frames, 2 * scale)
            lr_path = work / f"lr_x{scale}.mp4"
            write_clip(lr_path, [downscale(p, scale) for p in hr], rate)
            bicubic = None
            for model in ["bicubic", *args.models.split(",")]:
                try:
                    build_model(model, scale, weights=weights.get(model))
                except ModelError as exc:
                    print(f"skip {model} x{scale}: {exc}", file=sys.stderr)
                    continue
                out = work / f"{model}_x{scale}.mp4"
                upscale_video(
                    lr_path,
                    out,
                    model=model,
                    scale=scale,
                    weights=weights.get(model),
                    device=args.device,
                    encode=LOSSLESS,
                    progress=False,
                )
                r = {"model": model, "scale": scale, "frames": len(hr), **score(hr, out, scale)}
                bicubic = r if model == "bicubic" else bicubic
                r["psnr_vs_bicubic"] = round(r["psnr"] - bicubic["psnr"], 3) if bicubic else None
                results.append(r)
                print(
                    f"x{scale} {model:<9} PSNR-Y {r['psnr']:.2f} dB  SSIM-Y {r['ssim']:.4f}"
                    + (f"  ({r['psnr_vs_bicubic']:+.2f} dB vs bicubic)" if model != "bicubic" else "")
                )
    print("\n| model | x | frames | PSNR-Y (dB) | SSIM-Y | vs bicubic (dB) |\n| --- | --- | --- | --- | --- | --- |")
    for r in results:
        delta = "–" if r["model"] == "bicubic" else f"{r['psnr_vs_bicubic']:+.2f}"
        print(f"| {r['model']} | {r['scale']} | {r['frames']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {delta} |")
    if args.json:
        args.json.write_text(json.dumps({"clip": str(args.clip), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
