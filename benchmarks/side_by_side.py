"""A labelled crop: bicubic | each shipped weights set | original, for the README.

    .venv/bin/python benchmarks/side_by_side.py [--model espcn --scale 4 --image butterfly.png --degradation bicubic]
    .venv/bin/python benchmarks/side_by_side.py --model srresnet,srgan --degradation bicubic-aa \
        --image baboon.png --crop 40 360 128 --out benchmarks/srgan_side_by_side.png

Writes ``benchmarks/side_by_side.png``: every shipped set of each ``--model`` (a comma
list).  The LR input is made by one row of the degradation matrix
(:data:`vidsr.degrade.MATRIX`; default ``bicubic``: no antialiasing, the aliased LR of
plain decimation and ``cv2.resize``, where the paper-protocol weights fail); ESPCN
upscales Y and the chroma is upscaled bicubic, exactly as vidsr does on video.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidsr.colour import BT601_STUDIO, rgb_to_ycbcr, ycbcr_to_rgb  # noqa: E402
from vidsr.degrade import MATRIX, row_rng  # noqa: E402
from vidsr.evaluate import bicubic_up, load_rgb, quantise  # noqa: E402
from vidsr.metrics import mod_crop  # noqa: E402
from vidsr.models import build_model, shipped_sets  # noqa: E402

LABEL_HEIGHT = 22


@torch.no_grad()
def upscale(model: str, scale: int, lr: torch.Tensor, weights: str) -> torch.Tensor:
    """Upscale one LR RGB image (3, h, w) in [0, 1] with ``model``; a Y model gets bicubic chroma."""
    loaded = build_model(model, scale, weights=weights)
    if loaded.spec.colour == "rgb":
        return quantise(loaded.module(lr[None])[0].clamp(0, 1))
    ycc = rgb_to_ycbcr(bicubic_up(lr, scale), BT601_STUDIO)
    ycc[0] = loaded.module(rgb_to_ycbcr(lr, BT601_STUDIO)[None, :1])[0, 0]
    return quantise(ycbcr_to_rgb(ycc, BT601_STUDIO).clamp(0, 1))


def to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(x.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="espcn", help="A model, or a comma list of models.")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--degradation", default="bicubic", choices=list(MATRIX))
    parser.add_argument("--image", type=Path, default=Path("butterfly.png"), help="A path, or a name in --val.")
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--crop", type=int, nargs=3, default=(100, 150, 128), metavar=("TOP", "LEFT", "SIZE"))
    parser.add_argument("--zoom", type=int, default=2, help="Enlarge each panel (nearest) for visibility.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "side_by_side.png")
    args = parser.parse_args()

    image = args.image if args.image.is_file() else args.val / args.image
    hr = mod_crop(load_rgb(image), args.scale)
    lr = MATRIX[args.degradation].make(hr, args.scale, row_rng(args.degradation, image.name))
    top, left, size = args.crop
    panels = {f"bicubic x{args.scale}, LR: {args.degradation}": bicubic_up(lr, args.scale)}
    for model in args.model.split(","):
        for weight_set in shipped_sets(model, args.scale):
            panels[f"{model} {weight_set}"] = upscale(model, args.scale, lr, weight_set)
    panels["original"] = hr
    side = size * args.zoom
    sheet = Image.new("RGB", (side * len(panels) + 4 * (len(panels) - 1), side + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(panels.items()):
        crop = to_pil(img[:, top : top + size, left : left + size]).resize((side, side), Image.NEAREST)
        x = i * (side + 4)
        sheet.paste(crop, (x, LABEL_HEIGHT))
        draw.text((x + 4, 5), label, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB), crop of {image.name}, LR: {args.degradation}")


if __name__ == "__main__":
    main()
