"""The frame-level engine: a model on a backend, with the colour handling each model needs.

* ``y`` models (ESPCN) see luma only; chroma is resized bicubic.  On Y'CbCr video
  that means no RGB conversion at all.
* ``rgb`` models (SRResNet, SRGAN) see R'G'B' converted with the input's own matrix
  and range, and their output is converted back with the output's.
* ``any`` models (the interpolation baselines) resize every plane as it is.

Frames arrive as uint8 planes and leave as uint8 planes (uint16 for 10- and 12-bit
video, :mod:`vidsr.media.depth`); everything between (upload, conversion, model,
quantisation) runs on the backend's device, so a GPU receives and returns code
values, not floats.  On CUDA the planes travel from pooled pinned host memory on a copy
stream (:meth:`Upscaler.upload`), and come back through pooled pinned buffers on a copy the
encode thread waits for (:meth:`Upscaler.download`), so both transfers run beside compute.

Around the backend call (:meth:`Upscaler.run_model`) sit two safety nets: frames over
the pixel budget go through seamless tiles (:mod:`vidsr.tiling`), and a reduced
precision backend whose first batch comes back NaN/inf or black is replaced by FP32.
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.backends import Backend, BackendOptions, create_backend, precision_of
from vidsr.colour import BT601_STUDIO, YCbCrFormat, planes_to_rgb8, rgb8_to_planes, rgb_to_ycbcr, ycbcr_to_rgb
from vidsr.ensemble import self_ensemble
from vidsr.errors import InputError
from vidsr.hostbuffers import BufferPool, HostBatch
from vidsr.media.depth import EIGHT_BIT, SampleDepth, quantise, to_float, to_numpy, to_torch
from vidsr.models import LoadedModel, build_model
from vidsr.resample import can_resize_uint8, from_uint8, resize, resize_uint8, to_uint8
from vidsr.tiling import DEFAULT_TILE_PIXELS, overlap_for, plan_tiles, run_tiled

log = logging.getLogger(__name__)


@dataclass
class PlaneBatch:
    """N frames as planes: ``y`` (N, H, W), ``cb`` and ``cr`` (N, Hc, Wc); uint8, or above 8 bits int16
    tensors holding uint16 codes (:func:`vidsr.media.depth.to_torch`)."""

    y: torch.Tensor
    cb: torch.Tensor
    cr: torch.Tensor

    def __len__(self) -> int:
        return self.y.shape[0]

    @classmethod
    def stack(cls, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, pin: bool = False) -> PlaneBatch:
        planes = [to_torch(np.stack(p)) for p in zip(*frames, strict=True)]
        if pin:
            planes = [p.pin_memory() for p in planes]
        return cls(*planes)

    def frames(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The planes in host memory, one tuple per frame (waits for a GPU's copy)."""
        return HostBatch((self.y, self.cb, self.cr)).frames()


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
        tile_pixels: int | None = None,
        tile_overlap: int | None = None,
        compile: bool = False,
        engine_dir: str | Path | None = None,
        threads: int | None = None,
        loaded: LoadedModel | None = None,
        ensemble: bool = False,
    ) -> None:
        """``tile_pixels``: input frames with more pixels are tiled (None: about one 1080p frame;
        0: never).  ``tile_overlap``: input pixels of context around each tile (None: the
        model's receptive radius, which makes tiling exact).  ``compile``: ``torch.compile``
        on torch-cuda.  ``engine_dir``: TensorRT engine and ONNX cache.  ``threads``: the
        model's threads on the CPU runtimes (openvino, onnxruntime; None: ``torch.get_num_threads()``).
        ``loaded``: an already built model (benchmarks use randomly initialised ones) instead of
        ``model``/``weights``.  ``ensemble``: each frame through the model eight times, flipped and
        transposed, and the outputs averaged (:mod:`vidsr.ensemble`): better pictures, eight times the
        model's work.
        """
        self.loaded: LoadedModel = loaded or build_model(model, scale, weights=weights)
        # Backends convert the module in place (fp16, bf16); the FP32 fallback restores from this copy
        # instead of widening weights that were already rounded.
        self._fp32_state = {k: v.detach().cpu().clone() for k, v in self.loaded.module.state_dict().items()}
        self.options = BackendOptions(
            backend, device, precision, compile=compile, engine_dir=engine_dir, threads=threads
        )
        self.backend: Backend = create_backend(self.loaded, self.options)
        if tile_pixels is not None and tile_pixels < 0:
            raise InputError(f"tile pixels must be 0 (no tiling) or positive, not {tile_pixels}")
        self.tile_pixels = DEFAULT_TILE_PIXELS if tile_pixels is None else tile_pixels
        self.tile_overlap = (
            overlap_for(self.spec.architecture, self.loaded.module) if tile_overlap is None else tile_overlap
        )
        self.ensemble = ensemble
        self.warnings: list[str] = []
        self._checked = False
        self._copy_stream: torch.cuda.Stream | None = None  # uploads
        self._download_stream: torch.cuda.Stream | None = None  # downloads, beside the next batch's compute
        self._buffers = BufferPool(pin=self.device.type == "cuda")
        self._warming: threading.Thread | None = None  # warm_up_in_background's; the next model call joins it
        self._warmed: set[tuple[int, int, int]] = set()

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
        text = f"{self.spec.name} x{self.scale} on {self.backend.name} ({precision_of(self.backend)})"
        if self.ensemble:
            text += ", self-ensemble of 8"
        reason = getattr(self.backend, "reason", None)
        if self.options.backend == "auto" and reason:
            text += f", chosen by auto: {reason}"
        return text

    # -- the model -------------------------------------------------------------------
    @torch.inference_mode()
    def run_model(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] ``(N, C, H, W)`` on the device -> float32 upscaled, clamped to [0, 1].

        Frames over the pixel budget (or over a TensorRT profile) are tiled here.
        """
        return self._infer(x).clamp_(0.0, 1.0)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`run_model` without the clamp, for callers that quantise next (which clamps anyway)."""
        self._join_warm_up()
        plan = self._tile_plan(x.shape[-2], x.shape[-1])
        return self._call_backend(x) if plan is None else run_tiled(self._call_backend, x, self.scale, plan)

    # -- warming up ---------------------------------------------------------------------
    def warm_up(self, batch: int, height: int, width: int) -> None:
        """Run the model once on ``batch`` blank frames of ``height`` x ``width`` (tiled as real
        frames would be): what the first real batch would otherwise wait for, on CUDA cuDNN's
        kernel choice, the CUDA graph of that shape and loading the kernels (0.75 s of the first
        frame at 1080p on the H200).  Leaves no trace in the results; the first-batch precision
        check still looks at the first real batch."""
        key = (batch, height, width)
        if key in self._warmed:
            return
        channels = 3 if self.spec.colour == "rgb" else 1
        with torch.inference_mode(), _on_device(self.device):
            x = torch.zeros(batch, channels, height, width, device=self.device)
            plan = self._tile_plan(height, width)
            self._backend_out(x) if plan is None else run_tiled(self._backend_out, x, self.scale, plan)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        self._warmed.add(key)

    def warm_up_in_background(self, batch: int, height: int, width: int) -> None:
        """:meth:`warm_up` in a thread, beside what the caller does next (opening the input, field
        detection, the encoder's set-up, decoding the first batch); the next model call waits for
        it.  A warm-up that fails is only logged: the real call meets the same problem and says so."""
        self._join_warm_up()
        if (batch, height, width) in self._warmed:
            return  # another file of the same size: nothing left to warm

        def warm() -> None:
            try:
                self.warm_up(batch, height, width)
            except Exception as exc:  # the first real batch meets it too, and reports it
                log.debug("warm-up at %dx%d x%d failed: %s", width, height, batch, exc)

        self._warming = threading.Thread(target=warm, name="vidsr-warm-up")
        self._warming.start()

    def _join_warm_up(self) -> None:
        if self._warming is not None:
            self._warming.join()
            self._warming = None

    def _tile_plan(self, height: int, width: int):
        budget = self.tile_pixels or 0
        max_hw = getattr(self.backend, "max_input_hw", None)
        if max_hw is not None:
            budget = min(budget or max_hw[0] * max_hw[1], max_hw[0] * max_hw[1])
        if not budget:
            return None
        return plan_tiles(
            height, width, budget, self.tile_overlap, multiple=max(1, self.spec.size_multiple), max_hw=max_hw
        )

    def _call_backend(self, x: torch.Tensor) -> torch.Tensor:
        """The backend on ``x`` as float32, with the reduced-precision check on the first batch."""
        out = self._backend_out(x)
        if not self._checked:
            self._checked = True
            problem = _precision_problem(x, out) if self.backend.dtype in (torch.float16, torch.bfloat16) else None
            if problem:
                dtype = str(self.backend.dtype).removeprefix("torch.")
                message = f"{self.spec.name} in {dtype} gave {problem} on the first batch; falling back to fp32"
                log.warning(message)
                self.warnings.append(message)
                self.options = replace(self.options, precision="fp32")
                self.loaded.module.float().load_state_dict(self._fp32_state)
                self.backend = create_backend(self.loaded, self.options)
                out = self._backend_out(x)
        return out

    def _backend_out(self, x: torch.Tensor) -> torch.Tensor:
        """The backend on ``x`` as float32; with ``ensemble``, the mean over its eight turns (its four
        flips where the backend bounds each side, as a TensorRT profile does, and ``x`` transposed
        would not fit)."""
        if not self.ensemble:
            return self._run_backend(x)
        max_hw = getattr(self.backend, "max_input_hw", None)
        height, width = x.shape[-2:]
        transpose = max_hw is None or (width <= max_hw[0] and height <= max_hw[1])
        return self_ensemble(self._run_backend, x, transpose=transpose)

    def _run_backend(self, x: torch.Tensor) -> torch.Tensor:
        return self.backend(x.to(self.backend.dtype).contiguous()).float()

    def _chroma_kernel(self) -> str:
        return getattr(self.loaded.module, "kernel", "bicubic")

    # -- images ----------------------------------------------------------------------
    @torch.inference_mode()
    def upscale_image(self, rgb: np.ndarray) -> np.ndarray:
        """Upscale an ``(H, W, 3)`` uint8 RGB image; returns ``(s*H, s*W, 3)`` uint8."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        if self.spec.colour == "y" and self.device.type == "cpu":
            return self._upscale_image_luma_cpu(rgb)
        x = torch.from_numpy(np.array(rgb, copy=True)).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
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

    def _upscale_image_luma_cpu(self, rgb: np.ndarray) -> np.ndarray:
        """A luma model's image path on the CPU, at memory speed: Y' as float for the model, Cb/Cr
        as 8-bit planes resized like Pillow's 8-bit bicubic, and one fused conversion back to RGB."""
        y, cb, cr = rgb8_to_planes(rgb, BT601_STUDIO)
        luma = self._infer(torch.from_numpy(y)[None, None])[0, 0]
        chroma = resize_uint8(torch.from_numpy(np.stack((cb, cr))), tuple(luma.shape), "bicubic")
        return planes_to_rgb8(luma.numpy(), chroma[0].numpy(), chroma[1].numpy(), BT601_STUDIO)

    # -- video frames ----------------------------------------------------------------
    @torch.inference_mode()
    def upscale_planes(
        self,
        batch: PlaneBatch,
        src: YCbCrFormat,
        dst: YCbCrFormat,
        geometry: OutputGeometry,
        depth_in: SampleDepth = EIGHT_BIT,
        depth_out: SampleDepth = EIGHT_BIT,
    ) -> PlaneBatch:
        """Upscale a batch of Y'CbCr frames (any chroma layout) to ``geometry``.

        ``depth_in``/``depth_out``: the planes' sample depth (uint16 planes above 8 bits); the model
        always sees floats, 1.0 at the depth's peak code."""
        y8, cb8, cr8 = self._upload(batch)
        chroma8 = torch.stack((cb8, cr8), 1)
        g = geometry
        if depth_in.deep or depth_out.deep:
            y, chroma = to_float(y8[:, None], depth_in), to_float(chroma8, depth_in)
            out_y, out_c = self._upscale_float(y, chroma, src, dst, g)
            out_y, out_c = quantise(out_y, depth_out), quantise(out_c, depth_out)
            return PlaneBatch(out_y[:, 0], out_c[:, 0], out_c[:, 1])
        y = from_uint8(y8[:, None])
        chroma_size = (g.chroma_height, g.chroma_width)
        if self.spec.colour != "rgb" and can_resize_uint8(chroma8, self._chroma_kernel()):
            # Luma through the model, chroma resized in 8 bits (Pillow's arithmetic) at a tenth of
            # the float path's cost, quantisation in one fused pass: no RGB, no float chroma.
            out_y = to_uint8(_fit(self._infer(y), g.height, g.width))
            out_c = resize_uint8(chroma8, chroma_size, self._chroma_kernel())
            return PlaneBatch(out_y[:, 0], out_c[:, 0], out_c[:, 1])
        out_y, out_c = self._upscale_float(y, from_uint8(chroma8), src, dst, g)
        out_y, out_c = to_uint8(out_y), to_uint8(out_c)
        return PlaneBatch(out_y[:, 0], out_c[:, 0], out_c[:, 1])

    def _upscale_float(
        self, y: torch.Tensor, chroma: torch.Tensor, src: YCbCrFormat, dst: YCbCrFormat, g: OutputGeometry
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float planes (N, 1, H, W) and (N, 2, Hc, Wc) to upscaled float planes of ``g``."""
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
        return out_y, out_c

    def upload(self, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> PlaneBatch:
        """Frames' planes as one batch on the device.  On CUDA each plane is stacked straight into a
        pooled pinned buffer and copied on the copy stream; the buffer is reused once that copy ran."""
        if self.device.type != "cuda":
            return PlaneBatch.stack(frames)
        host = []
        for planes in zip(*frames, strict=True):
            dtype = torch.int16 if planes[0].dtype == np.uint16 else torch.uint8  # uint16 codes ride as int16
            buffer = self._buffers.take((len(planes), *planes[0].shape), dtype)
            np.stack(planes, out=to_numpy(buffer))
            host.append(buffer)
        on_device = PlaneBatch(*self._upload(PlaneBatch(*host)))
        copied = torch.cuda.Event()
        copied.record(self._copy_stream)
        for buffer in host:
            self._buffers.give(buffer, after=copied)
        return on_device

    def download(self, batch: PlaneBatch) -> HostBatch:
        """``batch`` on its way to host memory: queued now, waited for by whoever calls ``frames()``
        (the pipeline's encode thread), which then ``release()``s the pooled buffers."""
        if self.device.type == "cuda" and self._download_stream is None:
            self._download_stream = torch.cuda.Stream(self.device)
        return HostBatch((batch.y, batch.cb, batch.cr), self._buffers, self._download_stream)

    def _upload(self, batch: PlaneBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The uint8 planes on the device.  On CUDA: on a copy stream, from pinned memory when given."""
        dev = self.device
        planes = (batch.y, batch.cb, batch.cr)
        if dev.type != "cuda":
            return tuple(p.to(dev) for p in planes)  # type: ignore[return-value]
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(dev)
        compute = torch.cuda.current_stream(dev)
        with torch.cuda.stream(self._copy_stream):
            # non_blocking is truly asynchronous only from pinned memory (PlaneBatch.stack(pin=True)).
            moved = [p.to(dev, non_blocking=True) for p in planes]
        compute.wait_stream(self._copy_stream)
        for m in moved:
            # Allocated on the copy stream, used on the compute stream: keep the allocator honest.
            m.record_stream(compute)
        return moved[0], moved[1], moved[2]


def _on_device(device: torch.device):
    """A new thread's current CUDA device is the first: graph capture and library handles follow
    the current device, so work for another GPU names it."""
    return torch.cuda.device(device) if device.type == "cuda" else nullcontext()


def _precision_problem(x: torch.Tensor, out: torch.Tensor) -> str | None:
    """Why a reduced-precision output is unusable: non-finite values, or black from a non-black input."""
    if not bool(torch.isfinite(out).all()):
        return "NaN/inf values"
    # Overflowed activations often saturate to zero after clamping: a black frame from a lit one.
    if float(out.amax()) < 1.0 / 255.0 and float(x.amax()) > 32.0 / 255.0:
        return "an all-black result from a non-black input"
    return None
