"""Options shared by the commands that upscale (``upscale``, ``batch``): declared once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

MODEL_NAMES = ["espcn", "srresnet", "srgan", "bicubic", "lanczos", "bilinear", "nearest"]

_MODEL_OPTIONS = (
    click.option("-m", "--model", type=click.Choice(MODEL_NAMES), default="espcn", show_default=True),
    click.option("-s", "--scale", type=click.IntRange(2, 4), default=4, show_default=True),
    click.option("--weights", type=click.Path(path_type=Path), help="Your own .safetensors weights for --model."),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option("--precision", type=click.Choice(["auto", "fp16", "bf16", "fp32"]), default="auto", show_default=True),
    click.option(
        "--backend",
        type=click.Choice(["auto", "tensorrt", "torch-cuda", "torch-cpu"]),
        default="auto",
        show_default=True,
    ),
    click.option(
        "--batch", "batch_size", type=click.IntRange(1, 256), help="Frames per model call [default: 8 GPU, 2 CPU]."
    ),
)

_ENCODE_OPTIONS = (
    click.option("--codec", help="Video encoder: libx264, libx265, h264_nvenc... [libx264; mpeg4 for .avi]."),
    click.option("--crf", type=click.IntRange(0, 63), help="Constant rate factor (mpeg4: quantiser) [encoder's]."),
    click.option("--preset", help="Encoder preset, e.g. veryfast, medium, slow [encoder default]."),
    click.option("--pix-fmt", default="yuv420p", show_default=True, help="Output pixel format (yuv420p, yuv444p...)."),
)


def _apply(options: tuple[Callable[..., Any], ...], fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        fn = option(fn)
    return fn


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--model --scale --weights --device --precision --backend --batch"""
    return _apply(_MODEL_OPTIONS, fn)


def encode_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--codec --crf --preset --pix-fmt"""
    return _apply(_ENCODE_OPTIONS, fn)
