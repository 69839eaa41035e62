"""vidsr: video super-resolution on a streaming PyAV pipeline."""

from __future__ import annotations

__version__ = "0.1.0"

from vidsr.bytecode import inherit_bytecode_folder
from vidsr.errors import BackendError, InputError, ModelError, OutputError, UnsupportedError, VidsrError

inherit_bytecode_folder()  # in the CLI's batch workers, before they import PyTorch


def __getattr__(name: str):
    # Heavy modules (torch, av) load on first use, so `vidsr --help` stays fast.
    if name == "Upscaler":
        from vidsr.upscaler import Upscaler

        return Upscaler
    if name == "upscale_video":
        from vidsr.video import upscale_video

        return upscale_video
    if name == "upscale_image_file":
        from vidsr.video import upscale_image_file

        return upscale_image_file
    raise AttributeError(f"module 'vidsr' has no attribute {name!r}")


__all__ = [
    "BackendError",
    "InputError",
    "ModelError",
    "OutputError",
    "UnsupportedError",
    "Upscaler",
    "VidsrError",
    "upscale_video",
]
