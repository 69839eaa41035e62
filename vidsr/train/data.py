"""Training pairs made on the fly: random HR crops, flips and 90° rotations, LR by a named degradation recipe.

``protocol``: the evaluation protocol's downscaling (:func:`vidsr.evaluate.bicubic_down`:
Pillow's antialiased bicubic, 8-bit), batched, so the network learns to invert the
degradation the literature measures.  Any other recipe of :mod:`vidsr.degrade`
(``robust-v1``) degrades each patch its own random way.  All randomness comes from
one numpy generator whose state is saved in checkpoints, so a resumed run draws
the same patches as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsr.colour import BT601_STUDIO, rgb_to_luma
from vidsr.degrade import recipe
from vidsr.errors import InputError
from vidsr.evaluate import bicubic_down, list_images, load_rgb


def load_folder(folder: str | Path) -> list[torch.Tensor]:
    """Every image of ``folder`` as a uint8 ``(3, H, W)`` tensor (uint8 keeps 20 photos at ~100 MB)."""
    return [load_rgb(p).mul_(255.0).round_().to(torch.uint8) for p in list_images(folder)]


# Photographs and textures that scikit-image ships inside its wheel (nothing is downloaded), each
# CC0 or public domain by skimage.data's docstrings: camera (Lav Varshney, CC0), astronaut (NASA),
# chelsea (Stefan van der Walt, CC0), coffee (Rachel Michetti, CC0), rocket (SpaceX, public domain),
# brick and gravel (CC0Textures), grass (CC0), coins (Brooklyn Museum, no known restrictions).
# They are small, sharp and pixel-exact where the 20 training photos are large JPEGs; no held-out
# set is drawn from scikit-image.
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "rocket")
EXTRA_SOURCES = ("scikit-image",)


def load_extra(source: str) -> list[torch.Tensor]:
    """The images of a registry package named by ``source`` as uint8 ``(3, H, W)`` tensors."""
    if source not in EXTRA_SOURCES:
        raise InputError(f"unknown extra photo source {source!r}; choose from {', '.join(EXTRA_SOURCES)}")
    try:
        import skimage.data
    except ImportError:
        raise InputError("--extra-photos scikit-image needs scikit-image: pip install scikit-image") from None
    images = []
    for name in SKIMAGE_PHOTOS:
        pixels = np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)
        rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]
        images.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous())
    return images


class PatchSampler:
    """Draws batches of (LR, HR) patch pairs from images held in memory.

    ``colour`` is ``"rgb"`` (3 channels) or ``"y"`` (BT.601 studio luma, the
    channel ESPCN sees at inference).  Y is taken after degrading the RGB patch,
    as the evaluation does.
    """

    def __init__(
        self,
        images: list[torch.Tensor],
        *,
        scale: int,
        patch: int,
        colour: str,
        seed: int,
        degradations: str = "protocol",
    ) -> None:
        if patch % scale:
            raise InputError(f"the HR patch size ({patch}) must be a multiple of the scale ({scale})")
        small = [tuple(im.shape[-2:]) for im in images if min(im.shape[-2:]) < patch]
        if small or not images:
            raise InputError(f"training images must be at least {patch}x{patch} pixels (found {small or 'none'})")
        self.images = images
        self.scale = scale
        self.patch = patch
        self.colour = colour
        self.degrade = recipe(degradations)
        self.rng = np.random.default_rng(seed)
        self.drawn = 0  # batches drawn: the sampler's position, saved with its generator state

    def _crop(self) -> torch.Tensor:
        im = self.images[int(self.rng.integers(len(self.images)))]
        h, w = im.shape[-2:]
        top = int(self.rng.integers(h - self.patch + 1))
        left = int(self.rng.integers(w - self.patch + 1))
        crop = im[:, top : top + self.patch, left : left + self.patch]
        if self.rng.random() < 0.5:
            crop = crop.flip(-1)
        return torch.rot90(crop, int(self.rng.integers(4)), dims=(-2, -1))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) float tensors in [0, 1]: ``(size, C, patch/scale, patch/scale)`` and ``(size, C, patch, patch)``."""
        hr = torch.stack([self._crop() for _ in range(size)]).float().div_(255.0)
        if self.degrade is None:
            lr = bicubic_down(hr, self.scale)
        else:
            lr = torch.stack([self.degrade(patch, self.scale, self.rng) for patch in hr])
        self.drawn += 1
        if self.colour == "y":
            return rgb_to_luma(lr, BT601_STUDIO), rgb_to_luma(hr, BT601_STUDIO)
        return lr, hr

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.drawn = int(state["drawn"])
