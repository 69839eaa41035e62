"""The resampler against Pillow, the reference the SR literature (and DESIGN.md's figures) use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidsr.resample import can_resize_uint8, from_uint8, resize, resize_reference, resize_uint8, to_uint8

PIL_KERNELS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    # smooth structure plus texture, odd sizes on purpose
    return np.asarray(Image.fromarray(base).resize((93, 71), Image.BICUBIC))


@pytest.mark.parametrize("kernel", list(PIL_KERNELS))
@pytest.mark.parametrize("size", [(142, 186), (213, 279), (23, 31), (50, 40)])
def test_matches_pillow_8bit(image, kernel, size):
    ref = np.asarray(Image.fromarray(image).resize((size[1], size[0]), PIL_KERNELS[kernel])).astype(int)
    x = torch.from_numpy(image.copy()).permute(2, 0, 1).double() / 255
    out = to_uint8(resize(x, size, kernel, like_pillow_8bit=True)).permute(1, 2, 0).numpy().astype(int)
    diff = np.abs(out - ref)
    assert diff.max() <= 2  # Pillow rounds its fixed-point weights: a rare pixel lands 1-2 codes off
    # Bicubic, the kernel the quality protocol rests on, agrees almost everywhere.  Pillow's
    # bilinear upscale rounds its 8-bit intermediate its own way (measured: a quarter code on average).
    assert diff.mean() < (0.3 if kernel == "bilinear" else 0.01)


@pytest.mark.parametrize("kernel", list(PIL_KERNELS))
def test_fast_path_equals_reference(kernel):
    x = torch.rand(2, 3, 37, 53, dtype=torch.float64)
    for size in [(74, 106), (111, 159), (12, 17)]:
        assert torch.allclose(resize(x, size, kernel), resize_reference(x, size, kernel), atol=1e-12)


def test_shapes_and_dtypes():
    x = torch.rand(4, 10, 12)
    assert resize(x, (20, 24)).shape == (4, 20, 24)
    with pytest.raises(TypeError):
        resize(torch.zeros(3, 3, dtype=torch.uint8), (6, 6))
    with pytest.raises(ValueError, match="unknown resampling kernel"):
        resize_reference(x, (20, 24), "cubic-ish")


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear", "nearest"])
@pytest.mark.parametrize("size", [(142, 186), (284, 372), (213, 279)])
def test_uint8_resize_is_pillow_8bit(image, kernel, size):
    """The chroma fast path: torch's fixed-point uint8 kernels give Pillow's 8-bit upscale within one code."""
    planes = np.ascontiguousarray(image.transpose(2, 0, 1))
    out = resize_uint8(torch.from_numpy(planes)[None], size, kernel)[0].numpy()
    assert out.shape == (3, *size) and out.dtype == np.uint8
    for c in range(3):
        ref = np.asarray(Image.fromarray(planes[c]).resize((size[1], size[0]), PIL_KERNELS[kernel]))
        diff = np.abs(out[c].astype(int) - ref)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # fixed-point rounding: a rare pixel 1 off


def test_uint8_resize_of_a_batch_equals_each_plane_alone():
    """Video batches (N, 2, H, W) are resized as the channels of one image (faster): the same codes
    as resizing each plane by itself."""
    rng = np.random.default_rng(5)
    batch = torch.from_numpy(rng.integers(0, 256, (3, 2, 17, 29), dtype=np.uint8))
    out = resize_uint8(batch, (68, 116), "bicubic")
    assert out.shape == (3, 2, 68, 116)
    for n in range(3):
        for c in range(2):
            assert torch.equal(out[n, c], resize_uint8(batch[n, c], (68, 116), "bicubic"))


def test_uint8_resize_takes_only_what_it_can():
    x8 = torch.zeros(2, 4, 4, dtype=torch.uint8)
    assert can_resize_uint8(x8, "bicubic")
    assert not can_resize_uint8(x8, "lanczos") and not can_resize_uint8(x8.float(), "bicubic")
    with pytest.raises(ValueError, match="uint8 CPU tensors"):
        resize_uint8(x8, (8, 8), "lanczos")


def test_quantisation_rounds_half_to_even_and_clamps():
    x = torch.tensor([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.49999, 1.0, 1.3], dtype=torch.float64)
    assert to_uint8(x).tolist() == [0, 0, 0, 2, 2, 127, 255, 255]
    # float32, strided views (a crop, a permute) and 4-D batches give the torch arithmetic's result.
    y = torch.rand(2, 3, 9, 11) * 1.4 - 0.2
    for view in (y, y[:, :, 1:7, 2:9], y.permute(0, 2, 3, 1)):
        assert torch.equal(to_uint8(view), view.mul(255).round().clamp(0, 255).to(torch.uint8))
    codes = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    assert torch.equal(from_uint8(codes), codes.float() / 255)
    assert torch.equal(to_uint8(from_uint8(codes)), codes)
