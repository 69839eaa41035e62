"""The quality protocol of DESIGN.md over a folder of images, for a model and for bicubic beside it.

HR is cropped to a multiple of the scale, LR is made by antialiased bicubic
downscaling quantised to 8 bits (Pillow's arithmetic exactly), the model and
bicubic upscale it, and PSNR/SSIM are measured on BT.601 studio Y (0..255)
with ``scale`` pixels shaved from each border.  ESPCN works on Y only, and Y
is all that is measured, so it is evaluated on the Y plane of the LR image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidsr.colour import BT601_STUDIO, rgb_to_luma
from vidsr.errors import InputError
from vidsr.metrics import luma_255, mod_crop, psnr_ssim_y
from vidsr.resample import resize

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_rgb(path: str | Path) -> torch.Tensor:
    """An image file as a ``(3, H, W)`` float tensor of 8-bit values scaled to [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] floats to the 8-bit grid (clamped), staying float."""
    return x.mul(255.0).round_().clamp_(0.0, 255.0).div_(255.0)


def bicubic_down(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The protocol's degradation on a batch: antialiased bicubic downscale by ``scale``, quantised to 8 bits.

    ``hr`` is ``(..., H, W)`` in [0, 1] with H and W multiples of ``scale``.  This is
    :func:`vidsr.resample.resize`, which works on batches and any device, for
    training; it differs from Pillow's fixed-point arithmetic by one code value
    on about 0.1 % of pixels.  The evaluation itself uses :func:`pillow_bicubic`.
    """
    h, w = hr.shape[-2:]
    return quantise(resize(hr, (h // scale, w // scale), "bicubic", antialias=True, like_pillow_8bit=True))


def pillow_bicubic(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize one 8-bit image ``(C, H, W)`` in [0, 1] (C = 1 or 3) to ``size`` = (h, w) with Pillow's bicubic.

    The literature's figures (and DESIGN's) are Pillow's, bit for bit, so the
    protocol calls Pillow itself rather than a reimplementation.
    """
    from PIL import Image

    arr = img.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    out = np.asarray(pil.resize((size[1], size[0]), Image.BICUBIC), dtype=np.uint8)
    out = out[..., None] if out.ndim == 2 else out
    return torch.from_numpy(out.copy()).permute(2, 0, 1).float().div_(255.0)


def protocol_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The evaluation's LR image: Pillow's antialiased bicubic downscale of ``hr`` ``(C, H, W)`` by ``scale``."""
    h, w = hr.shape[-2:]
    return pillow_bicubic(hr, (h // scale, w // scale))


def bicubic_up(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Pillow's bicubic upscale of one 8-bit image ``(C, h, w)`` by ``scale``: the yardstick."""
    h, w = lr.shape[-2:]
    return pillow_bicubic(lr, (h * scale, w * scale))


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return images


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float


@dataclass(frozen=True)
class EvalResult:
    model: str
    scale: int
    images: tuple[ImageScore, ...]

    @property
    def psnr(self) -> float:
        return float(np.mean([i.psnr for i in self.images]))

    @property
    def ssim(self) -> float:
        return float(np.mean([i.ssim for i in self.images]))

    @property
    def bicubic_psnr(self) -> float:
        return float(np.mean([i.bicubic_psnr for i in self.images]))

    @property
    def bicubic_ssim(self) -> float:
        return float(np.mean([i.bicubic_ssim for i in self.images]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "scale": self.scale,
            "psnr": self.psnr,
            "ssim": self.ssim,
            "bicubic_psnr": self.bicubic_psnr,
            "bicubic_ssim": self.bicubic_ssim,
            "images": [asdict(i) for i in self.images],
        }


# An upscaler for the protocol: LR (1 or 3, h, w) in [0, 1] -> SR Y on the 0..255 scale (H, W).
Upscale = Callable[[torch.Tensor], torch.Tensor]


def module_upscaler(module: nn.Module, colour: str, device: str | torch.device = "cpu") -> Upscale:
    """Wrap a network: RGB models see RGB, Y models the LR's studio-range Y; output rounded to 8 bits."""

    @torch.no_grad()
    def run(lr_rgb: torch.Tensor) -> torch.Tensor:
        x = lr_rgb if colour == "rgb" else rgb_to_luma(lr_rgb, BT601_STUDIO)
        out = module(x[None].to(device)).float().cpu()[0]
        out = quantise(out.clamp(0.0, 1.0))
        if colour == "rgb":
            return luma_255(out)
        return out[0].double() * 255.0

    return run


def bicubic_upscaler(scale: int) -> Upscale:
    return lambda lr_rgb: luma_255(bicubic_up(lr_rgb, scale))


def score_image(hr: torch.Tensor, scale: int, upscale: Upscale | None) -> tuple[float, float, float, float]:
    """(psnr, ssim, bicubic psnr, bicubic ssim) of one HR image ``(3, H, W)``; model figures NaN without one."""
    hr = mod_crop(hr, scale)
    lr = protocol_lr(hr, scale)
    hr_y = luma_255(hr)
    bp, bs = psnr_ssim_y(bicubic_upscaler(scale)(lr), hr_y, scale)
    if upscale is None:
        return float("nan"), float("nan"), bp, bs
    mp, ms = psnr_ssim_y(upscale(lr), hr_y, scale)
    return mp, ms, bp, bs


def evaluate_images(
    images: Iterable[tuple[str, torch.Tensor]], scale: int, upscale: Upscale | None, *, model: str = "bicubic"
) -> EvalResult:
    """Run the protocol over ``(name, HR (3, H, W))`` pairs; bicubic only when ``upscale`` is None."""
    scores = []
    for name, hr in images:
        mp, ms, bp, bs = score_image(hr, scale, upscale)
        if upscale is None:
            mp, ms = bp, bs
        scores.append(ImageScore(name, mp, ms, bp, bs))
    return EvalResult(model, scale, tuple(scores))


def evaluate_folder(
    folder: str | Path,
    *,
    model: str,
    scale: int,
    weights: str | Path | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """The protocol on every image in ``folder`` for ``model`` (a registry name) at ``scale``."""
    from vidsr.models import build_model

    loaded = build_model(model, scale, weights=weights)
    upscale: Upscale | None = None
    if loaded.spec.learned:
        upscale = module_upscaler(loaded.module.to(device), loaded.spec.colour, device)
    elif model != "bicubic":
        # Other baselines upscale RGB the same way bicubic does, with their own kernel.
        upscale = module_upscaler(loaded.module, "rgb")

    def pairs() -> Iterable[tuple[str, torch.Tensor]]:
        for path in list_images(folder):
            if progress:
                progress(path.name)
            yield path.name, load_rgb(path)

    return evaluate_images(pairs(), scale, upscale, model=model)
