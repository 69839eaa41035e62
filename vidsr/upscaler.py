"""The frame-level engine: a model on a backend, with the colour handling each model needs.

* ``y`` models (ESPCN) see luma only; chroma is resized bicubic.  On Y'CbCr video
  that means no RGB conversion at all.
* ``rgb`` models (SRResNet, SRGAN) see R'G'B' converted with the input's own matrix
  and range, and their output is converted back with the output's.
* ``any`` models (the interpolation baselines) resize every plane as it is.

Frames arrive as uint8 planes and leave as uint8 planes; everything between
(upload, conversion, model, quantisation) runs on the backend's device, so a GPU
receives and returns bytes, not floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.backends import Backend, BackendOptions, create_backend
from vidsr.colour import BT601_STUDIO, YCbCrFormat, rgb_to_ycbcr, ycbcr_to_rgb
from vidsr.errors import InputError
from vidsr.models import LoadedModel, build_model
from vidsr.resample import resize, to_uint8


@dataclass
class PlaneBatch:
    """N frames as 8-bit planes: ``y`` (N, H, W), ``cb`` and ``cr`` (N, Hc, Wc)."""

    y: torch.Tensor
    cb: torch.Tensor
    cr: torch.Tensor

    def __len__(self) -> int:
        return self.y.shape[0]

    @classmethod
    def stack(cls, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, pin: bool = False) -> PlaneBatch:
        planes = [torch.from_numpy(np.stack(p)) for p in zip(*frames, strict=True)]
        if pin:
            planes = [p.pin_memory() for p in planes]
        return cls(*planes)

    def frames(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        y, cb, cr = (p.cpu().numpy() for p in (self.y, self.cb, self.cr))
        return [(y[i], cb[i], cr[i]) for i in range(len(y))]


@dataclass(frozen=True)
class OutputGeometry:
    """Output luma size and chroma plane size."""

    height: int
    width: int
    chroma_height: int
    chroma_width: int


def output_geometry(height: int, width: int, scale: int, sub_x: int, sub_y: int) -> OutputGeometry:
    """Upscaled size, trimmed to even where the chroma is subsampled (yuv420p needs even sizes)."""
    out_h, out_w = height * scale, width * scale
    out_h -= out_h % sub_y
    out_w -= out_w % sub_x
    return OutputGeometry(out_h, out_w, out_h // sub_y, out_w // sub_x)


def _fit(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop, or pad by repeating the edge, to exactly (height, width)."""
    x = x[..., :height, :width]
    pad_h, pad_w = height - x.shape[-2], width - x.shape[-1]
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


class Upscaler:
    """A model ready to upscale images and video frames.

    >>> up = Upscaler(model="bicubic", scale=2, device="cpu")
    >>> up.upscale_image(np.zeros((8, 8, 3), np.uint8)).shape
    (16, 16, 3)
    """

    def __init__(
        self,
        model: str = "espcn",
        scale: int = 2,
        *,
        weights: str | Path | None = None,
        device: str = "auto",
        precision: str = "auto",
        backend: str = "auto",
    ) -> None:
        self.loaded: LoadedModel = build_model(model, scale, weights=weights)
        self.backend: Backend = create_backend(self.loaded, BackendOptions(backend, device, precision))

    @property
    def spec(self):
        return self.loaded.spec

    @property
    def scale(self) -> int:
        return self.loaded.scale

    @property
    def device(self) -> torch.device:
        return self.backend.device

    def describe(self) -> str:
        dtype = str(self.backend.dtype).removeprefix("torch.")
        return f"{self.spec.name} x{self.scale} on {self.backend.name} ({dtype})"

    # -- the model -------------------------------------------------------------------
    @torch.inference_mode()
    def run_model(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] ``(N, C, H, W)`` on the device -> float32 upscaled, clamped to [0, 1]."""
        out = self.backend(x.to(self.backend.dtype).contiguous())
        return out.float().clamp_(0.0, 1.0)

    def _chroma_kernel(self) -> str:
        return getattr(self.loaded.module, "kernel", "bicubic")

    # -- images ----------------------------------------------------------------------
    @torch.inference_mode()
    def upscale_image(self, rgb: np.ndarray) -> np.ndarray:
        """Upscale an ``(H, W, 3)`` uint8 RGB image; returns ``(s*H, s*W, 3)`` uint8."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
        h, w = x.shape[-2:]
        size = (h * self.scale, w * self.scale)
        if self.spec.colour == "rgb":
            out = self.run_model(x)
        elif self.spec.colour == "y":
            ycc = rgb_to_ycbcr(x, BT601_STUDIO)
            luma = self.run_model(ycc[:, :1])
            chroma = resize(ycc[:, 1:], size, "bicubic")
            out = ycbcr_to_rgb(torch.cat((luma, chroma), 1), BT601_STUDIO)
        else:
            out = self.run_model(x.reshape(3, 1, h, w)).reshape(1, 3, *size)
        return to_uint8(out.clamp(0.0, 1.0))[0].permute(1, 2, 0).cpu().numpy()

    # -- video frames ----------------------------------------------------------------
    @torch.inference_mode()
    def upscale_planes(
        self, batch: PlaneBatch, src: YCbCrFormat, dst: YCbCrFormat, geometry: OutputGeometry
    ) -> PlaneBatch:
        """Upscale a batch of Y'CbCr frames (any chroma layout) to ``geometry``."""
        dev = self.device
        y = batch.y.to(dev, non_blocking=True)[:, None].float().div_(255.0)
        chroma = torch.stack((batch.cb, batch.cr), 1).to(dev, non_blocking=True).float().div_(255.0)
        g = geometry
        if self.spec.colour == "rgb":
            full = resize(chroma, y.shape[-2:], "bicubic")
            rgb = ycbcr_to_rgb(torch.cat((y, full), 1), src).clamp_(0.0, 1.0)
            out = _fit(self.run_model(rgb), g.height, g.width)
            ycc = rgb_to_ycbcr(out, dst)
            out_y = ycc[:, :1]
            out_c = ycc[:, 1:]
            if (g.chroma_height, g.chroma_width) != (g.height, g.width):
                out_c = resize(out_c, (g.chroma_height, g.chroma_width), "bilinear", antialias=True)
        else:
            out_y = _fit(self.run_model(y), g.height, g.width)
            out_c = resize(chroma, (g.chroma_height, g.chroma_width), self._chroma_kernel())
        out_y, out_c = to_uint8(out_y), to_uint8(out_c)
        return PlaneBatch(out_y[:, 0], out_c[:, 0], out_c[:, 1])
