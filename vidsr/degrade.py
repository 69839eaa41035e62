"""How a low-resolution image is made from a high-resolution one: named degradations and training recipes.

Real footage is not made by one kernel.  This module holds, under one name each:

* the **rows of the degradation matrix** (:data:`MATRIX`) that ``vidsr eval
  --degradations`` measures every model on: the literature's protocol
  (antialiased bicubic) and the ways CCTV and archival LR really comes about —
  no antialiasing, area averaging, blur then decimation, JPEG, H.264, sensor noise;
* the **training recipes** (:data:`RECIPES`): ``protocol`` (the paper's single
  kernel), ``robust-v1``, a random chain of blur, downscale kernel, noise and
  compression, each step with a probability and a range, ``robust-v2``, the
  same chain with milder tails, ``robust-v3``, v2 with more LR made without
  antialiasing (40 %), ``robust-v4`` with half of it made so, ``robust-v5``,
  whose kernels, noise and compression are drawn as often as the degradation
  matrix's rows draw them, and ``robust-v6``, v5 with its compression drawn
  around the matrix's own settings (JPEG 40, CRF 28).

Every function takes ``(3, H, W)`` float RGB in [0, 1] with H and W multiples of
``scale`` and returns the ``(3, H/scale, W/scale)`` LR image quantised to 8 bits,
as a file or a decoder would hold it.  Randomness comes only from the numpy
generator passed in, so training is reproducible from the seed and resumable.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.errors import InputError


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] floats to the 8-bit grid (clamped), staying float."""
    return x.mul(255.0).round_().clamp_(0.0, 255.0).div_(255.0)


def _to_uint8_hwc(img: torch.Tensor) -> np.ndarray:
    return img.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _from_uint8_hwc(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float().div_(255.0)


def _lr_size(hr: torch.Tensor, scale: int) -> tuple[int, int]:
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise InputError(f"the HR image ({w}x{h}) must be a multiple of the scale ({scale}) in both sides")
    return h // scale, w // scale


# --- downscaling kernels -------------------------------------------------------------------------


def pillow_resize(img: torch.Tensor, size: tuple[int, int], kernel: str = "bicubic") -> torch.Tensor:
    """Resize one 8-bit RGB image ``(3, H, W)`` to ``size`` = (h, w) with Pillow (antialiased when shrinking)."""
    from PIL import Image

    filters = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}
    arr = _to_uint8_hwc(img)
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    out = np.asarray(pil.resize((size[1], size[0]), filters[kernel]), dtype=np.uint8)
    return _from_uint8_hwc(out[..., None] if out.ndim == 2 else out)


def _interpolate(hr: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    # No antialiasing: each LR pixel samples the HR image at its centre, as cv2.resize
    # (INTER_CUBIC / INTER_LINEAR, a = -0.75) and plain decimation do; aliasing included.
    return F.interpolate(hr[None], size=size, mode=mode, align_corners=False, antialias=False)[0]


def _gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=img.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(img[:, None], (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x[:, 0]


def downscale(hr: torch.Tensor, scale: int, kernel: str, *, sigma: float = 0.0) -> torch.Tensor:
    """Downscale ``hr`` by ``scale`` with one named kernel; not quantised.

    ``bicubic-aa`` / ``bilinear-aa``: Pillow's antialiased filters (the protocol's LR).
    ``bicubic`` / ``bilinear``: point sampling at the LR pixel centres, no antialiasing.
    ``area``: the mean of each ``scale`` x ``scale`` block (a sensor's binning).
    ``blur``: a Gaussian of ``sigma`` HR pixels, then decimation at the LR pixel centres.
    """
    size = _lr_size(hr, scale)
    if kernel in ("bicubic-aa", "bilinear-aa"):
        return pillow_resize(hr, size, kernel.removesuffix("-aa"))
    if kernel in ("bicubic", "bilinear"):
        return _interpolate(hr, size, kernel)
    if kernel == "area":
        return F.avg_pool2d(hr[None], scale)[0]
    if kernel == "blur":
        return _interpolate(_gaussian_blur(hr, sigma), size, "bilinear")
    raise InputError(f"unknown downscaling kernel {kernel!r}")


# --- noise and compression -----------------------------------------------------------------------


def add_noise(img: torch.Tensor, sigma: float, rng: np.random.Generator, *, grey: bool = False) -> torch.Tensor:
    """Gaussian sensor noise of ``sigma`` 8-bit code values: per channel, or the same on all three (``grey``)."""
    shape = (1, *img.shape[-2:]) if grey else tuple(img.shape)
    noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) * (sigma / 255.0)
    return img + noise


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Through a baseline JPEG of ``quality`` (Pillow/libjpeg, 4:2:0 chroma) and back."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_to_uint8_hwc(img)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return _from_uint8_hwc(np.asarray(im.convert("RGB")))


def video_codec(img: torch.Tensor, codec: str, quality: int) -> torch.Tensor:
    """Through one intra frame of ``codec`` (``h264``: libx264 at CRF ``quality``; ``mpeg4``: qscale) and back.

    Single-threaded so the bitstream, and so training, is the same on every run.
    Odd sizes are padded by edge replication for 4:2:0 and cropped afterwards.
    """
    import av

    h, w = img.shape[-2:]
    arr = _to_uint8_hwc(img)
    arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        if codec == "h264":
            stream = out.add_stream("libx264", rate=25, options={"crf": str(quality), "preset": "veryfast"})
            stream.codec_context.options = {**stream.codec_context.options, "x264-params": "log-level=none"}
        elif codec == "mpeg4":
            stream = out.add_stream("mpeg4", rate=25)
            stream.codec_context.qmin = stream.codec_context.qmax = int(quality)
        else:
            raise InputError(f"unknown codec {codec!r} for a degradation")
        stream.width, stream.height, stream.pix_fmt = arr.shape[1], arr.shape[0], "yuv420p"
        stream.codec_context.thread_count = 1
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r") as src:
        src.streams.video[0].thread_count = 1
        decoded = next(src.decode(video=0)).to_ndarray(format="rgb24")
    return _from_uint8_hwc(decoded[:h, :w])


# --- the degradation matrix ----------------------------------------------------------------------


def blur_sigma(scale: int) -> float:
    """The matrix's blur: a Gaussian a little wider than the antialiasing a camera lens gives."""
    return 0.3 * scale + 0.3


Degrade = Callable[[torch.Tensor, int, np.random.Generator], torch.Tensor]


@dataclass(frozen=True)
class Row:
    """One way of making LR, for the evaluation matrix."""

    name: str
    description: str
    make: Degrade


def _protocol(hr: torch.Tensor, scale: int, rng: np.random.Generator) -> torch.Tensor:
    return quantise(downscale(hr, scale, "bicubic-aa"))


# The compressed rows' settings, named once: the rows use them and robust-v6 centres its ranges on them.
JPEG_ROW_QUALITY = 40
H264_ROW_CRF = 28

MATRIX: dict[str, Row] = {
    row.name: row
    for row in (
        Row("bicubic-aa", "antialiased bicubic (Pillow): the literature's protocol", _protocol),
        Row(
            "bicubic",
            "bicubic without antialiasing (cv2.resize INTER_CUBIC)",
            lambda hr, s, rng: quantise(downscale(hr, s, "bicubic")),
        ),
        Row("area", "area average (sensor binning)", lambda hr, s, rng: quantise(downscale(hr, s, "area"))),
        Row(
            "blur",
            "Gaussian blur (sigma 0.3 x scale + 0.3 HR px), then decimation",
            lambda hr, s, rng: quantise(downscale(hr, s, "blur", sigma=blur_sigma(s))),
        ),
        Row(
            "jpeg",
            f"antialiased bicubic, then JPEG quality {JPEG_ROW_QUALITY}",
            lambda hr, s, rng: jpeg(_protocol(hr, s, rng), JPEG_ROW_QUALITY),
        ),
        Row(
            "h264",
            f"antialiased bicubic, then an H.264 intra frame at CRF {H264_ROW_CRF}",
            lambda hr, s, rng: video_codec(_protocol(hr, s, rng), "h264", H264_ROW_CRF),
        ),
        Row(
            "noise",
            "antialiased bicubic, then Gaussian noise of sigma 5 (8-bit values)",
            lambda hr, s, rng: quantise(add_noise(_protocol(hr, s, rng), 5.0, rng)),
        ),
    )
}


def matrix_rows(names: str | list[str] | tuple[str, ...]) -> list[Row]:
    """``"all"``, a comma-separated string or a list of row names -> the rows, in the matrix's order."""
    if isinstance(names, str):
        names = list(MATRIX) if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in MATRIX]
    if unknown or not names:
        raise InputError(f"unknown degradation {', '.join(unknown) or '(none)'}; choose from all, {', '.join(MATRIX)}")
    return [MATRIX[n] for n in MATRIX if n in names]


def row_rng(row: str, image: str) -> np.random.Generator:
    """A generator fixed by the row and image names, so noisy rows are the same in every run and for every model."""
    seed = int.from_bytes(f"{row}/{image}".encode(), "little") % (2**63)
    return np.random.default_rng(seed)


# --- training recipes ----------------------------------------------------------------------------


def _choice(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = list(table)
    p = np.array([table[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


@dataclass(frozen=True)
class RobustRecipe:
    """A random degradation chain: downscale (one kernel, blur before some), then maybe noise, then maybe compression.

    Probabilities and ranges are fields so a weights file can record exactly what it saw.
    """

    name: str = "robust-v1"
    kernels: tuple[tuple[str, float], ...] = (
        ("bicubic-aa", 0.25),
        ("bicubic", 0.2),
        ("bilinear-aa", 0.1),
        ("bilinear", 0.1),
        ("area", 0.15),
        ("blur", 0.2),
    )
    blur_sigma: tuple[float, float] = (0.3, 0.5)  # HR px: lo, and hi per unit of scale (hi = 0.5 x scale + 0.3)
    noise_p: float = 0.3
    noise_sigma: tuple[float, float] = (1.0, 10.0)  # 8-bit code values
    noise_grey_p: float = 0.3
    compress_p: float = 0.4
    codecs: tuple[tuple[str, float], ...] = (("jpeg", 0.6), ("h264", 0.25), ("mpeg4", 0.15))
    jpeg_quality: tuple[int, int] = (30, 95)
    h264_crf: tuple[int, int] = (18, 36)
    mpeg4_qscale: tuple[int, int] = (2, 12)

    def __call__(self, hr: torch.Tensor, scale: int, rng: np.random.Generator) -> torch.Tensor:
        kernel = _choice(rng, dict(self.kernels))
        sigma = 0.0
        if kernel == "blur":
            lo, per_scale = self.blur_sigma
            sigma = float(rng.uniform(lo, per_scale * scale + lo))
        lr = quantise(downscale(hr, scale, kernel, sigma=sigma))
        if rng.random() < self.noise_p:
            sigma_n = float(rng.uniform(*self.noise_sigma))
            lr = quantise(add_noise(lr, sigma_n, rng, grey=bool(rng.random() < self.noise_grey_p)))
        if rng.random() < self.compress_p:
            codec = _choice(rng, dict(self.codecs))
            if codec == "jpeg":
                lr = jpeg(lr, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
            elif codec == "h264":
                lr = video_codec(lr, "h264", int(rng.integers(self.h264_crf[0], self.h264_crf[1] + 1)))
            else:
                lr = video_codec(lr, "mpeg4", int(rng.integers(self.mpeg4_qscale[0], self.mpeg4_qscale[1] + 1)))
        return lr

    def describe(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


# robust-v2: robust-v1 narrowed to what CCTV and archival LR mostly is.  Measured on robust-v1 at x4: the
# validation matrix peaked 500 steps into fine-tuning and fell while the training loss kept falling, so the
# tails (blur to sigma 2.3 HR px at x4, noise to 10, CRF 36, noise *and* codec on 12% of patches) were
# costing the common cases.  v2 keeps every kind of degradation and cuts the tails.
_ROBUST = {
    "robust-v1": RobustRecipe(),
    "robust-v2": RobustRecipe(
        name="robust-v2",
        kernels=(
            ("bicubic-aa", 0.3),
            ("bicubic", 0.2),
            ("bilinear-aa", 0.1),
            ("bilinear", 0.05),
            ("area", 0.15),
            ("blur", 0.2),
        ),
        blur_sigma=(0.3, 0.4),
        noise_p=0.25,
        noise_sigma=(1.0, 8.0),
        compress_p=0.35,
        jpeg_quality=(35, 95),
        h264_crf=(18, 32),
        mpeg4_qscale=(2, 8),
    ),
}
# robust-v3: robust-v2 with LR made without antialiasing drawn 40% of the time instead of 25% (bicubic 0.3,
# bilinear 0.1), taken from the antialiased and blur kernels.  Held-out photos showed the x2 sets losing
# 0.7-0.9 dB to bicubic on aliased LR where val said +0.02/+0.17: the network sharpens what it takes for
# a softly filtered image, and aliased LR is already sharp.  Set from that report alone, before any run.
_ROBUST["robust-v3"] = replace(
    _ROBUST["robust-v2"],
    name="robust-v3",
    kernels=(
        ("bicubic-aa", 0.25),
        ("bicubic", 0.3),
        ("bilinear-aa", 0.05),
        ("bilinear", 0.1),
        ("area", 0.15),
        ("blur", 0.15),
    ),
)
# robust-v4: half the LR made without antialiasing (bicubic 0.35, bilinear 0.15).  The old x2 sets' aliased row
# fell 1.1-1.4 dB from the selection photos to the held-out ones, more than robust-v3 gains on it
# (+0.3 dB on the selection photos), so the x2 sets need a larger margin there than v3 buys.
_ROBUST["robust-v4"] = replace(
    _ROBUST["robust-v2"],
    name="robust-v4",
    kernels=(
        ("bicubic-aa", 0.2),
        ("bicubic", 0.35),
        ("bilinear-aa", 0.05),
        ("bilinear", 0.15),
        ("area", 0.1),
        ("blur", 0.15),
    ),
)
# robust-v5: the mix the degradation matrix measures, drawn as often as its rows draw it.  Of issue 24's six
# rows, three start from antialiased bicubic (clean, JPEG, noise) and one each from bicubic without
# antialiasing, area and blur; one in six adds noise; one in six compresses, two in seven with the H.264 row
# (hence 0.25, between).  v4 gives half its LR to aliased kernels for the x2 aliased row, which the x4 sets
# already clear on every side, so at x4 the other rows get that share back.  Set from the matrix's definition
# alone, before any run.
_ROBUST["robust-v5"] = replace(
    _ROBUST["robust-v2"],
    name="robust-v5",
    kernels=(
        ("bicubic-aa", 0.45),
        ("bicubic", 0.15),
        ("bilinear-aa", 0.05),
        ("bilinear", 0.05),
        ("area", 0.15),
        ("blur", 0.15),
    ),
    noise_p=0.2,
    compress_p=0.25,
)
# robust-v6: robust-v5 with its compression centred on the matrix's settings (JPEG quality 40, H.264 CRF 28)
# instead of v2's ranges, and JPEG and H.264 drawn about equally, as the two rows are.  v5 drew JPEG at
# quality 35-95, two thirds of it above 55, where there is little left to undo; the JPEG row is the x4
# sets' weakest of the six on both sides (report +0.45 dB; selection +0.9, against +1.4 to +2.5 elsewhere).
# Quality 30-60 and CRF 22-33 are still the range of CCTV recorders' settings, not one point.  Set from the
# matrix's definition and the rows' standing alone, before any run.
_ROBUST["robust-v6"] = replace(
    _ROBUST["robust-v5"],
    name="robust-v6",
    codecs=(("jpeg", 0.5), ("h264", 0.4), ("mpeg4", 0.1)),
    jpeg_quality=(30, 60),
    h264_crf=(22, 33),
)
RECIPES = ("protocol", *_ROBUST)


def recipe(name: str) -> Degrade | None:
    """The training recipe called ``name``; None for ``protocol``, which the sampler does batched and exactly."""
    if name == "protocol":
        return None
    if name in _ROBUST:
        return _ROBUST[name]
    raise InputError(f"unknown degradation recipe {name!r}; choose from {', '.join(RECIPES)}")


def describe_recipe(name: str) -> dict:
    """What a weights file records about the LR its network saw."""
    made = recipe(name)
    if made is None:
        return {"name": "protocol", "kernel": "bicubic-aa (Pillow-exact, 8-bit)"}
    return made.describe()
