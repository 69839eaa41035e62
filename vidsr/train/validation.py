"""Validation during training: what a checkpoint is scored on, and the score that picks it.

Only photos of the selection side of the split (:mod:`vidsr.split`) are looked at here.  The
score depends on what the run is for:

* ``protocol`` runs: PSNR-Y on the protocol, as the literature picks.
* robust runs: the mean gain over bicubic across the degradation matrix's rows, plus the worst
  row's gain where it is negative, so a checkpoint that loses to bicubic on one row (aliased LR)
  pays for it twice and is not bought by gains on the rows that are easy anyway.
* SRGAN: NIQE (lower is more natural) of its outputs on the whole photos, among checkpoints whose
  protocol gain over bicubic stays at least :data:`SRGAN_MIN_GAIN`; PSNR cannot pick a model that
  is meant to give some of it up.  Photos too small for NIQE (under 2 x 96 px a side): the latest
  checkpoint is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidsr.degrade import MATRIX, row_rng
from vidsr.evaluate import bicubic_upscaler, load_rgb, module_upscaler
from vidsr.metrics import luma_255, mod_crop, psnr_ssim_y

NIQE_PATCH = 96  # vidsr.niqe.PATCH, without importing scipy before a run needs it

# The bar for SRGAN is protocol PSNR-Y >= bicubic + 0.5 dB; picking at +0.7 on the selection
# photos leaves a margin for photos nobody picked on.
SRGAN_MIN_GAIN = 0.7


@dataclass(frozen=True)
class ValPair:
    row: str
    lr: torch.Tensor  # RGB [0, 1]
    hr_y: torch.Tensor  # Y 0..255
    bicubic_psnr: float


@dataclass(frozen=True)
class ValSet:
    pairs: tuple[ValPair, ...]
    niqe_images: tuple[tuple[str, torch.Tensor], ...] = ()  # whole HR photos, for SRGAN's NIQE


@dataclass(frozen=True)
class Validation:
    psnr: float
    ssim: float
    row_gains: dict[str, float]
    score: float
    niqe: float | None = None
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        out = {"val_psnr": self.psnr, "val_ssim": self.ssim, "val_score": self.score}
        out["val_gains"] = {row: round(g, 4) for row, g in self.row_gains.items()}
        if self.niqe is not None:
            out["val_niqe"] = self.niqe
        return out


def _centre_crop(hr: torch.Tensor, crop: int) -> torch.Tensor:
    if not crop:
        return hr
    h, w = hr.shape[-2:]
    ch, cw = min(crop, h), min(crop, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return hr[:, top : top + ch, left : left + cw]


def make_valset(paths: list[Path], scale: int, crop: int, degradations: str, *, niqe: bool = False) -> ValSet:
    """(LR, HR Y) pairs made once from ``paths``: the protocol only for protocol runs, else every matrix row."""
    rows = [MATRIX["bicubic-aa"]] if degradations == "protocol" else list(MATRIX.values())
    bicubic = bicubic_upscaler(scale)
    pairs, whole = [], []
    for path in paths:
        full = load_rgb(path)
        hr = mod_crop(_centre_crop(full, crop), scale)
        hr_y = luma_255(hr)
        for row in rows:
            lr = row.make(hr, scale, row_rng(row.name, path.name))
            pairs.append(ValPair(row.name, lr, hr_y, psnr_ssim_y(bicubic(lr), hr_y, scale)[0]))
        if niqe and min(full.shape[-2:]) > 2 * NIQE_PATCH:
            whole.append((path.name, mod_crop(full, scale)))
    return ValSet(tuple(pairs), tuple(whole))


def selection_score(
    row_gains: dict[str, float], psnr: float, niqe: float | None, degradations: str, *, gan: bool = False, step: int = 0
) -> float:
    """The number the best checkpoint maximises (module docstring)."""
    if gan and niqe is None:
        return float(step)  # nothing to judge texture on: the latest
    if niqe is not None:
        shortfall = max(0.0, SRGAN_MIN_GAIN - row_gains.get("bicubic-aa", -math.inf))
        return -niqe - 100.0 * shortfall
    if degradations == "protocol":
        return psnr
    gains = list(row_gains.values())
    return float(np.mean(gains)) + min(0.0, min(gains))


@torch.no_grad()
def validate(
    module: nn.Module, colour: str, valset: ValSet, scale: int, device, degradations: str, *, gan: bool, step: int
) -> Validation:
    from vidsr.niqe import mean_niqe

    module.eval()
    upscale = module_upscaler(module, colour, device)
    scores = [(pair, *psnr_ssim_y(upscale(pair.lr), pair.hr_y, scale)) for pair in valset.pairs]
    rows: dict[str, list[float]] = {}
    for pair, p, _ in scores:
        rows.setdefault(pair.row, []).append(p - pair.bicubic_psnr)
    gains = {row: float(np.mean(g)) for row, g in rows.items()}
    niqe = round(mean_niqe(valset.niqe_images, scale, upscale), 4) if valset.niqe_images else None
    module.train()
    psnr = float(np.mean([s[1] for s in scores]))
    ssim = float(np.mean([s[2] for s in scores]))
    score = selection_score(gains, psnr, niqe, degradations, gan=gan, step=step)
    return Validation(psnr, ssim, gains, score, niqe)
