"""RGB models see R'G'B' converted with the video's own matrix and range, and their output is
converted back with the output's: checked against the published conversion equations.

A randomly initialised SRResNet runs through :meth:`vidsr.Upscaler.upscale_planes` on 4:4:4
frames (so no chroma resampling is involved).  Its output is added to a pixel-repeated copy of
its input: a random network alone writes near-black, which looks the same in every matrix.
The reference converts the same planes to RGB with the matrices printed in the standards
(BT.601, BT.709; studio and full range), runs the same network, and converts back with the
printed forward matrices.  Nothing in it comes from :mod:`vidsr.colour`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidsr.colour import YCbCrFormat
from vidsr.models import LoadedModel, get_spec
from vidsr.models.srresnet import srresnet
from vidsr.upscaler import PlaneBatch, Upscaler, output_geometry

# R'G'B' in [0, 1] -> Y', Cb, Cr in 8-bit code values: rows of the published forward matrices
# (BT.601: ITU-R BT.601-7 / MATLAB rgb2ycbcr; BT.709: ITU-R BT.709-6 scaled by 219 and 224;
# full range: JFIF / ITU-T T.871 and its BT.709 analogue), offsets 16/128 or 0/128.
FORWARD = {
    ("bt601", False): ([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], 16),
    ("bt709", False): ([[46.559, 156.629, 15.812], [-25.664, -86.336, 112.0], [112.0, -101.730, -10.270]], 16),
    ("bt601", True): (
        [[76.245, 149.685, 29.070], [-43.028, -84.472, 127.5], [127.5, -106.765, -20.735]],
        0,
    ),
    ("bt709", True): (
        [[54.213, 182.376, 18.411], [-29.216, -98.284, 127.5], [127.5, -115.809, -11.691]],
        0,
    ),
}
# Y', Cb, Cr code values (minus 16/128/128, or 0/128/128) -> R'G'B' x 255: the published inverses.
INVERSE = {
    ("bt601", False): [[1.164383, 0.0, 1.596027], [1.164383, -0.391762, -0.812968], [1.164383, 2.017232, 0.0]],
    ("bt709", False): [[1.164383, 0.0, 1.792741], [1.164383, -0.213249, -0.532909], [1.164383, 2.112402, 0.0]],
    ("bt601", True): [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]],
    ("bt709", True): [[1.0, 0.0, 1.5748], [1.0, -0.187324, -0.468124], [1.0, 1.8556, 0.0]],
}
FORMATS = [YCbCrFormat(m, full) for m in ("bt601", "bt709") for full in (False, True)]


def ref_to_ycbcr(rgb: np.ndarray, fmt: YCbCrFormat) -> np.ndarray:
    """(3, H, W) R'G'B' in [0, 1] -> (3, H, W) Y'CbCr code values (float, unrounded)."""
    matrix, y_offset = FORWARD[(fmt.matrix, fmt.full_range)]
    # Full-range rows are printed for a 0..255 signal; 127.5 is half of 255.
    out = np.einsum("ij,jhw->ihw", np.array(matrix), rgb)
    return out + np.array([y_offset, 128.0, 128.0])[:, None, None]


def ref_to_rgb(ycc: np.ndarray, fmt: YCbCrFormat) -> np.ndarray:
    """(3, H, W) Y'CbCr code values -> (3, H, W) R'G'B' in [0, 1], unclamped."""
    y_offset = 0.0 if fmt.full_range else 16.0
    centred = ycc - np.array([y_offset, 128.0, 128.0])[:, None, None]
    return np.einsum("ij,jhw->ihw", np.array(INVERSE[(fmt.matrix, fmt.full_range)]), centred) / 255.0


def quantise(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


class PassThrough(torch.nn.Module):
    """A random SRResNet's texture on top of the input colour, pixel-repeated."""

    def __init__(self, net: torch.nn.Module, scale: int) -> None:
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + self.net(x)


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return PassThrough(srresnet(scale=2), 2).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def upscaler(network) -> Upscaler:
    return Upscaler(loaded=LoadedModel(get_spec("srresnet"), 2, network), backend="torch-cpu", tile_pixels=0)


def frames(fmt: YCbCrFormat, count: int = 2, size: tuple[int, int] = (12, 16)) -> np.ndarray:
    """``count`` 4:4:4 frames (count, 3, H, W) uint8 of saturated colour blobs with some noise."""
    rng = np.random.default_rng(7)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for i in range(count):
        rgb = np.stack(
            [0.5 + 0.45 * np.sin(6 * xx + i), 0.5 + 0.45 * np.cos(5 * yy - i), 0.5 + 0.4 * np.sin(4 * (xx - yy))]
        )
        rgb = np.clip(rgb + rng.normal(0, 0.03, rgb.shape), 0, 1)
        out.append(quantise(ref_to_ycbcr(rgb, fmt)))
    return np.stack(out)


def reference(network: torch.nn.Module, planes: np.ndarray, src: YCbCrFormat, dst: YCbCrFormat) -> np.ndarray:
    rgb = np.clip(np.stack([ref_to_rgb(p.astype(np.float64), src) for p in planes]), 0.0, 1.0)
    with torch.inference_mode():
        out = network(torch.from_numpy(rgb).float()).clamp(0.0, 1.0).double().numpy()
    return np.stack([quantise(ref_to_ycbcr(o, dst)) for o in out])


def upscaled(upscaler: Upscaler, planes: np.ndarray, src: YCbCrFormat, dst: YCbCrFormat) -> np.ndarray:
    h, w = planes.shape[-2:]
    batch = PlaneBatch(*(torch.from_numpy(np.ascontiguousarray(planes[:, c])) for c in range(3)))
    out = upscaler.upscale_planes(batch, src, dst, output_geometry(h, w, 2, 1, 1))
    return np.stack([out.y.numpy(), out.cb.numpy(), out.cr.numpy()], axis=1)


def test_reference_matrices_are_each_others_inverse():
    rgb = np.random.default_rng(1).uniform(0, 1, (3, 4, 5))
    for fmt in FORMATS:
        assert np.abs(ref_to_rgb(ref_to_ycbcr(rgb, fmt), fmt) - rgb).max() < 1e-5, fmt


def test_the_network_passes_colour_through(network, upscaler):
    """The check below can see a wrong matrix: the random network's output depends on its input
    colour, well beyond rounding."""
    planes = frames(FORMATS[0])
    ok = reference(network, planes, FORMATS[0], FORMATS[0]).astype(int)
    wrong = reference(network, planes, FORMATS[2], FORMATS[0]).astype(int)
    assert np.abs(ok - wrong).max() >= 4


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.matrix}-{'full' if f.full_range else 'limited'}")
def test_rgb_model_round_trip_uses_the_video_matrix_and_range(network, upscaler, fmt):
    planes = frames(fmt)
    got, want = upscaled(upscaler, planes, fmt, fmt).astype(int), reference(network, planes, fmt, fmt).astype(int)
    assert got.shape == want.shape == (2, 3, 24, 32)
    # Float rounding (float32 here, six printed digits there) may move a value across .5.
    assert np.abs(got - want).max() <= 1
    assert np.mean(got != want) < 0.02


@pytest.mark.parametrize(
    ("src", "dst"), [(FORMATS[0], FORMATS[3]), (FORMATS[3], FORMATS[0]), (FORMATS[1], FORMATS[2])], ids=str
)
def test_input_and_output_conversions_use_their_own_formats(network, upscaler, src, dst):
    planes = frames(src)
    got, want = upscaled(upscaler, planes, src, dst).astype(int), reference(network, planes, src, dst).astype(int)
    assert np.abs(got - want).max() <= 1
    assert np.mean(got != want) < 0.02
