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
from vidsr.degrade import matrix_rows, pillow_resize, quantise, row_rng
from vidsr.ensemble import self_ensemble
from vidsr.errors import InputError
from vidsr.media.inputs import IMAGE_SUFFIXES
from vidsr.metrics import luma_255, mod_crop, psnr_ssim_y
from vidsr.resample import resize


def load_rgb(path: str | Path) -> torch.Tensor:
    """An image file as a ``(3, H, W)`` float tensor of 8-bit values scaled to [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


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
    return pillow_resize(img, size, "bicubic")


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


def module_upscaler(
    module: nn.Module, colour: str, device: str | torch.device = "cpu", *, ensemble: bool = False
) -> Upscale:
    """Wrap a network: RGB models see RGB, Y models the LR's studio-range Y; output rounded to 8 bits.
    ``ensemble``: the mean over the eight turns of the input (:mod:`vidsr.ensemble`), as ``--ensemble``."""

    def call(x: torch.Tensor) -> torch.Tensor:
        return module(x).float()

    @torch.no_grad()
    def run(lr_rgb: torch.Tensor) -> torch.Tensor:
        x = (lr_rgb if colour == "rgb" else rgb_to_luma(lr_rgb, BT601_STUDIO))[None].to(device)
        out = (self_ensemble(call, x) if ensemble else call(x)).cpu()[0]
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


def lanczos_upscaler(scale: int) -> Upscale:
    """Pillow's Lanczos-3 upscale of the RGB LR: the other plain scaler the matrix compares with."""

    def run(lr_rgb: torch.Tensor) -> torch.Tensor:
        h, w = lr_rgb.shape[-2:]
        return luma_255(pillow_resize(lr_rgb, (h * scale, w * scale), "lanczos"))

    return run


@dataclass(frozen=True)
class MatrixRow:
    """One degradation's figures, means over the images: the model, bicubic and Lanczos on the same LR."""

    degradation: str
    description: str
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    lanczos_psnr: float
    lanczos_ssim: float

    @property
    def gain(self) -> float:
        return self.psnr - self.bicubic_psnr


@dataclass(frozen=True)
class MatrixResult:
    model: str
    scale: int
    rows: tuple[MatrixRow, ...]

    @property
    def mean_gain(self) -> float:
        return float(np.mean([r.gain for r in self.rows]))

    @property
    def worst_gain(self) -> float:
        return float(min(r.gain for r in self.rows))

    def summary(self) -> dict[str, Any]:
        """Per-row PSNR and gain over bicubic, for weights metadata and ``vidsr models``."""
        return {
            "rows": {r.degradation: {"psnr": round(r.psnr, 3), "gain": round(r.gain, 3)} for r in self.rows},
            "mean_gain": round(self.mean_gain, 3),
            "worst_gain": round(self.worst_gain, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "scale": self.scale,
            "rows": [{**asdict(r), "gain": r.gain} for r in self.rows],
            "mean": {
                key: float(np.mean([getattr(r, key) for r in self.rows]))
                for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "lanczos_psnr", "lanczos_ssim")
            },
            "mean_gain": self.mean_gain,
            "worst_gain": self.worst_gain,
        }


def evaluate_matrix(
    images: Iterable[tuple[str, torch.Tensor]],
    scale: int,
    upscale: Upscale | None,
    rows: list[Any],
    *,
    model: str = "bicubic",
) -> MatrixResult:
    """The same HR images, LR made each way of ``rows`` (:data:`vidsr.degrade.MATRIX` entries), scored on Y.

    ``upscale`` None scores bicubic itself in the model's columns.  Noisy rows draw their
    noise from a generator fixed by row and image name: every model sees the same LR.
    """
    bicubic, lanczos = bicubic_upscaler(scale), lanczos_upscaler(scale)
    scores: dict[str, list[tuple[float, ...]]] = {row.name: [] for row in rows}
    for name, hr in images:
        hr = mod_crop(hr, scale)
        hr_y = luma_255(hr)
        for row in rows:
            lr = row.make(hr, scale, row_rng(row.name, name))
            b = psnr_ssim_y(bicubic(lr), hr_y, scale)
            m = b if upscale is None else psnr_ssim_y(upscale(lr), hr_y, scale)
            scores[row.name].append((*m, *b, *psnr_ssim_y(lanczos(lr), hr_y, scale)))
    out = []
    for row in rows:
        means = np.mean(np.array(scores[row.name]), axis=0)
        out.append(MatrixRow(row.name, row.description, *(float(v) for v in means)))
    return MatrixResult(model, scale, tuple(out))


def evaluate_folder(
    folder: str | Path,
    *,
    model: str,
    scale: int,
    weights: str | Path | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    degradations: str | list[str] | None = None,
    ensemble: bool = False,
) -> EvalResult | MatrixResult:
    """The protocol on every image in ``folder`` for ``model`` (a registry name) at ``scale``.

    With ``degradations`` (``"all"``, or row names of :data:`vidsr.degrade.MATRIX`), the matrix instead.
    ``ensemble``: the learned model's self-ensemble (:mod:`vidsr.ensemble`).
    """
    from vidsr.models import build_model

    loaded = build_model(model, scale, weights=weights)
    upscale: Upscale | None = None
    if loaded.spec.learned:
        upscale = module_upscaler(loaded.module.to(device), loaded.spec.colour, device, ensemble=ensemble)
    elif model != "bicubic":
        # Other baselines upscale RGB the same way bicubic does, with their own kernel.
        upscale = module_upscaler(loaded.module, "rgb")

    def pairs() -> Iterable[tuple[str, torch.Tensor]]:
        for path in list_images(folder):
            if progress:
                progress(path.name)
            yield path.name, load_rgb(path)

    if degradations:
        return evaluate_matrix(pairs(), scale, upscale, matrix_rows(degradations), model=model)
    return evaluate_images(pairs(), scale, upscale, model=model)
