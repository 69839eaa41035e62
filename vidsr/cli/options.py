"""Options shared by the commands that upscale (``upscale``, ``batch``): declared once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

MODEL_NAMES = ["espcn", "srresnet", "srgan", "bicubic", "lanczos", "bilinear", "nearest"]

_MODEL_OPTIONS = (
    click.option("-m", "--model", type=click.Choice(MODEL_NAMES), default="espcn", show_default=True),
    click.option("-s", "--scale", type=click.IntRange(2, 4), default=4, show_default=True),
    click.option(
        "--weights",
        type=click.Path(path_type=Path),
        help="Weights for --model: a shipped set (robust, large, cascade, paper), sets joined by + for the mean "
        "of their answers (large+cascade at x4: the members' time added up), or your own .safetensors "
        "[the default set].",
    ),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option(
        "--precision",
        type=click.Choice(["auto", "fp16", "bf16", "fp32", "int8"]),
        default="auto",
        show_default=True,
        help="auto: fp16 on GPUs; on the CPU int8 where it pays (VNNI, calibrated weights), "
        "else bf16 (a CPU with native bf16), else fp32.",
    ),
    click.option(
        "--backend",
        type=click.Choice(["auto", "tensorrt", "torch-cuda", "openvino", "onnxruntime", "torch-cpu"]),
        default="auto",
        show_default=True,
    ),
    click.option(
        "--batch", "batch_size", type=click.IntRange(1, 256), help="Frames per model call [default: 8 GPU, 2 CPU]."
    ),
    click.option(
        "--tile-pixels",
        type=click.IntRange(min=0),
        help="Frames with more input pixels go through seamless tiles [about one 1080p frame]; 0: never.",
    ),
    click.option(
        "--compile/--no-compile",
        default=False,
        show_default=True,
        help="torch-cuda: torch.compile (max-autotune) the model. Off: on an H200 it cost 10-20 s a shape "
        "and plain cuDNN won every ESPCN autotune; compiled code is cached in the engine dir.",
    ),
    click.option(
        "--ensemble",
        is_flag=True,
        help="Run the model on the 8 flips and transposes of each frame and average: better pictures "
        "(ESPCN x2 on aliased input -0.09 -> +0.04 dB over bicubic), 8x the model's time.",
    ),
    click.option(
        "--engine-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="VIDSR_ENGINE_DIR",
        help="TensorRT engine cache [engines/ in a checkout, else ~/.cache/vidsr/engines].",
    ),
)

_ENCODE_OPTIONS = (
    click.option(
        "--hwdec",
        type=click.Choice(["none", "auto", "cuda"]),
        default="auto",
        show_default=True,
        help="Decode on the GPU with NVDEC (auto: where the model runs on CUDA and FFmpeg has NVDEC).",
    ),
    click.option("--codec", help="Video encoder: libx264, libx265, ffv1, h264_nvenc... [libx264; mpeg4 for .avi]."),
    click.option("--crf", type=click.IntRange(0, 63), help="Constant rate factor (mpeg4: quantiser) [encoder's]."),
    click.option("--qp", type=click.IntRange(0, 63), help="Constant quantiser (x264, x265, NVENC; x264: 0 lossless)."),
    click.option(
        "--lossless",
        is_flag=True,
        help="Lossless output: FFV1 for .mkv/.avi, x264 at qp 0 for .mp4, or --codec's lossless mode.",
    ),
    click.option("--preset", help="Encoder preset, e.g. veryfast, medium, slow [encoder default]."),
    click.option(
        "--pix-fmt",
        default="auto",
        show_default=True,
        help="Output pixel format (yuv420p, yuv444p, yuv420p10le...); auto: yuv420p, or the input's own for 10/12-bit.",
    ),
    click.option(
        "--deinterlace",
        type=click.Choice(["auto", "on", "off", "ivtc"]),
        default="auto",
        show_default=True,
        help="Deinterlace (bwdif) before the model; auto: when flags or FFmpeg's idet find interlaced input, "
        "and inverse telecine (29.97 -> 23.976) where a 3:2 pulldown cadence shows film; ivtc: always that.",
    ),
    click.option("--field-rate", is_flag=True, help="Deinterlace to one frame per field (double frame rate)."),
)
_ENCODE_NAMES = ("codec", "crf", "qp", "lossless", "preset", "pix_fmt", "deinterlace", "field_rate")


def _apply(options: tuple[Callable[..., Any], ...], fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass(frozen=True)
class ModelChoice:
    """What --model --scale --weights --device --precision --backend --batch --tile-pixels
    --compile --ensemble --engine-dir asked for, as one value."""

    model: str
    scale: int
    weights: Path | None
    device: str
    precision: str
    backend: str
    batch_size: int | None
    tile_pixels: int | None
    compile: bool
    engine_dir: Path | None
    ensemble: bool = False

    def upscaler(self, threads: int | None = None) -> Any:
        """The :class:`vidsr.upscaler.Upscaler` this choice describes."""
        from vidsr.upscaler import Upscaler

        return Upscaler(
            self.model,
            self.scale,
            weights=self.weights,
            device=self.device,
            precision=self.precision,
            backend=self.backend,
            tile_pixels=self.tile_pixels,
            compile=self.compile,
            engine_dir=self.engine_dir,
            threads=threads,
            ensemble=self.ensemble,
        )


_MODEL_NAMES = ("model", "scale", "weights", "device", "precision", "backend", "batch_size", "tile_pixels", "ensemble")


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--model --scale --weights --device --precision --backend --batch --tile-pixels --compile --ensemble
    --engine-dir.

    The command receives them as one ``choice`` (a :class:`ModelChoice`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _MODEL_NAMES}
        choice = ModelChoice(**values, compile=kwargs.pop("compile"), engine_dir=kwargs.pop("engine_dir"))
        return fn(*args, choice=choice, **kwargs)

    return _apply(_MODEL_OPTIONS, wrapper)


def encode_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--hwdec --codec --crf --qp --lossless --preset --pix-fmt --deinterlace --field-rate.

    The command receives ``hwdec`` and one ``encode`` (an :class:`EncodeOptions`) for the rest."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vidsr.media.encoders import EncodeOptions

        values = {name: kwargs.pop(name) for name in _ENCODE_NAMES}
        if values["pix_fmt"] == "auto":
            values["pix_fmt"] = None
        return fn(*args, encode=EncodeOptions(**values), **kwargs)

    return _apply(_ENCODE_OPTIONS, wrapper)
