"""Hardware video: NVDEC decode through PyAV's ``hwaccel``, and NVENC encoders where the GPU has them.

Both are options, never defaults: the decoded planes and the encoder's output are the
same either way, and many GPUs lack one or the other (an H100 or A100 has NVDEC but no
NVENC at all), so each is checked up front with an error that says what to use instead.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av

from vidsr.errors import BackendError

log = logging.getLogger(__name__)

HWDEC_CHOICES = ("none", "auto", "cuda")
# Before PyAV 18, frames transferred from the GPU to system memory lost their colour properties
# (matrix, range, primaries, transfer; PyAV issue 2231): NVDEC output would be tagged and
# converted as unspecified.  pyproject requires av>=18; this guards an older PyAV on PYTHONPATH.
HWDEC_MIN_PYAV = (18, 0)
NVENC_CODECS = ("h264_nvenc", "hevc_nvenc", "av1_nvenc")


def hwdec_available(device_type: str = "cuda") -> bool:
    from av.codec.hwaccel import hwdevices_available

    return device_type in hwdevices_available()


def decode_hwaccel(hwdec: str = "none", device: int | str | None = None) -> av.codec.hwaccel.HWAccel | None:
    """The ``hwaccel`` argument for ``av.open`` that ``--hwdec`` asks for (None: software decode).

    ``auto`` uses NVDEC when FFmpeg has CUDA support and quietly decodes in software when
    not; ``cuda`` insists and says why it cannot.  Frames come back in system memory (nv12),
    which the source converts to planes like any other layout; a codec NVDEC cannot decode
    (MS-MPEG4, Cinepak) falls back to software per stream.
    """
    if hwdec not in HWDEC_CHOICES:
        raise BackendError(f"unknown --hwdec {hwdec!r}; choose from {', '.join(HWDEC_CHOICES)}")
    if hwdec == "none":
        return None
    if _pyav_version() < HWDEC_MIN_PYAV:
        message = (
            f"PyAV {av.__version__} drops the colour tags of hardware-decoded frames (fixed in PyAV 18); "
            "pip install 'av>=18'"
        )
        if hwdec == "auto":
            log.warning("%s; decoding in software", message)
            return None
        raise BackendError(f"--hwdec cuda: {message}, or use --hwdec none")
    import torch
    from av.codec.hwaccel import HWAccel, hwdevices_available

    available = hwdevices_available()
    if not torch.cuda.is_available():
        # FFmpeg may be built with CUDA while the machine has no GPU: opening would fail later, obscurely.
        if hwdec == "auto":
            return None
        raise BackendError("--hwdec cuda: no CUDA GPU is visible (driver missing?); use --hwdec none")
    if "cuda" not in available:
        if hwdec == "auto":
            log.info("no CUDA hwaccel in this FFmpeg build; decoding in software")
            return None
        raise BackendError(
            "--hwdec cuda: this FFmpeg build has no CUDA/NVDEC support "
            f"(hardware devices: {', '.join(available) or 'none'}); use --hwdec none"
        )
    return HWAccel(device_type="cuda", device=device, allow_software_fallback=True)


def _pyav_version() -> tuple[int, int]:
    parts = str(av.__version__).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    except ValueError:
        return (0, 0)


def check_encoder(codec: str, width: int = 256, height: int = 144, pix_fmt: str = "yuv420p") -> None:
    """Open ``codec`` once on a tiny frame size: a missing encoder or NVENC-less GPU is a clear error.

    libx264 & co. pass trivially; ``*_nvenc`` needs FFmpeg built with NVENC *and* a GPU that
    has the encoder block, which only opening a session reveals.
    """
    if codec not in av.codecs_available:
        hint = " (NVENC encoders need an FFmpeg built with --enable-nvenc)" if codec in NVENC_CODECS else ""
        raise BackendError(f"encoder {codec} is not in this FFmpeg build{hint}; use libx264 or libx265")
    try:
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
        ctx.time_base = Fraction(1, 25)
        ctx.open()
    except (av.error.FFmpegError, ValueError) as exc:
        if codec in NVENC_CODECS:
            raise BackendError(
                f"encoder {codec} cannot open: this machine has no NVENC-capable GPU "
                f"(H100 and A100 have none) or no NVIDIA driver ({exc}); use libx264 or libx265"
            ) from None
        raise BackendError(f"encoder {codec} cannot open with {pix_fmt}: {exc}") from None
