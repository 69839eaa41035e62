"""Colour tags as FFmpeg stores them, and what they mean for the Y'CbCr conversion.

FFmpeg's enums (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic)
are the lingua franca of containers and codecs; we keep the integers and map them once here.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidsr.colour import YCbCrFormat

UNSPECIFIED = 2  # the same value in all four enums
RANGE_LIMITED, RANGE_FULL = 1, 2

_MATRIX_BY_SPACE = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
_SPACE_BY_MATRIX = {"bt709": 1, "fcc": 4, "bt601": 6, "smpte240m": 7, "bt2020": 9}
_NAMES = {
    "colorspace": {
        0: "rgb",
        1: "bt709",
        2: "unknown",
        4: "fcc",
        5: "bt470bg",
        6: "smpte170m",
        7: "smpte240m",
        9: "bt2020nc",
        10: "bt2020c",
    },
    "range": {0: "unknown", 1: "tv", 2: "pc"},
    "primaries": {
        1: "bt709",
        2: "unknown",
        4: "bt470m",
        5: "bt470bg",
        6: "smpte170m",
        7: "smpte240m",
        9: "bt2020",
        12: "smpte432",
    },
    "transfer": {
        1: "bt709",
        2: "unknown",
        4: "gamma22",
        5: "gamma28",
        6: "smpte170m",
        7: "smpte240m",
        8: "linear",
        13: "iec61966-2-1",
        14: "bt2020-10",
        15: "bt2020-12",
        16: "smpte2084",
        18: "arib-std-b67",
    },
}


@dataclass(frozen=True)
class ColourTags:
    """The four colour tags of a video stream (FFmpeg enum values)."""

    colorspace: int = UNSPECIFIED
    color_range: int = 0
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED

    def describe(self) -> dict[str, str]:
        return {
            "matrix": _NAMES["colorspace"].get(self.colorspace, str(self.colorspace)),
            "range": _NAMES["range"].get(self.color_range, str(self.color_range)),
            "primaries": _NAMES["primaries"].get(self.primaries, str(self.primaries)),
            "transfer": _NAMES["transfer"].get(self.transfer, str(self.transfer)),
        }


def default_matrix(width: int, height: int) -> str:
    """What players assume for untagged video: BT.709 for HD, BT.601 for SD."""
    return "bt709" if width >= 1280 or height > 576 else "bt601"


def resolve(tags: ColourTags, width: int, height: int, *, full_range_format: bool = False) -> ColourTags:
    """Fill unspecified tags the way a player would interpret the input, so the output
    (which may be HD where the input was SD) is tagged with what the input looked like."""
    matrix = _MATRIX_BY_SPACE.get(tags.colorspace) or default_matrix(width, height)
    colorspace = tags.colorspace if tags.colorspace in _MATRIX_BY_SPACE else _SPACE_BY_MATRIX[matrix]
    color_range = tags.color_range or (RANGE_FULL if full_range_format else RANGE_LIMITED)
    if matrix == "bt709":
        default_prim, default_trc = 1, 1
    elif matrix == "bt2020":
        default_prim, default_trc = 9, 14
    else:
        default_prim, default_trc = (5 if height > 480 else 6), 6
    primaries = tags.primaries if tags.primaries != UNSPECIFIED and tags.primaries else default_prim
    transfer = tags.transfer if tags.transfer != UNSPECIFIED and tags.transfer else default_trc
    return ColourTags(colorspace, color_range, primaries, transfer)


def ycbcr_format(tags: ColourTags) -> YCbCrFormat:
    """The conversion a resolved set of tags calls for."""
    return YCbCrFormat(_MATRIX_BY_SPACE.get(tags.colorspace, "bt601"), tags.color_range == RANGE_FULL)
