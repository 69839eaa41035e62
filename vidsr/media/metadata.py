"""What an archive wants kept besides the pictures: timecode, rotation, chapters, titles, languages,
field order, container tags.

:func:`read` collects them from the input; :func:`apply` puts them on the output before its header
is written; :func:`check` reopens the finished output and lists what did not survive.  Checking the
written file, rather than keeping a table of which muxer stores what, stays right across FFmpeg
versions and muxer options: AVI has no timecode or chapters, MP4 keeps a track title as ``name``
and has no field order, Matroska uppercases most tag names.  Whatever is missing is reported in one
warning (:func:`dropped_warning`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from vidsr.media.pyav import open_container, text

log = logging.getLogger(__name__)

# Tags a muxer writes for itself, or that describe the old encoding (stale once re-encoded).
_HOUSEKEEPING = {
    "encoder",
    "software",
    "major_brand",
    "minor_version",
    "compatible_brands",
    "duration",
    "handler_name",
    "vendor_id",
    "bps",
    "number_of_frames",
    "number_of_bytes",
}
# FFmpeg's AVFieldOrder.
FIELD_UNKNOWN, FIELD_PROGRESSIVE = 0, 1
FIELD_ORDER_NAMES = {0: "unknown", 1: "progressive", 2: "tff", 3: "bff", 4: "tb", 5: "bt"}
# MP4/MOV store a track's title as "name" (and read it back so).
_ALIASES = {"title": ("title", "name")}


def stream_metadata(tags: dict[str, str]) -> dict[str, str]:
    """A stream's tags as a muxer takes them: MP4's track ``name`` (as FFmpeg reads it) written back
    as ``title`` (which every muxer that has track titles stores, MP4's as ``name``)."""
    tags = dict(tags)
    if "name" in tags and "title" not in {k.lower() for k in tags}:
        tags["title"] = tags.pop("name")
    return tags


def _kept(tags: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in stream_metadata(tags).items()
        # MP4/MOV repeat a tag per language as "name-eng": the same housekeeping under another key.
        if k.lower().split("-", 1)[0] not in _HOUSEKEEPING and not k.upper().startswith("_STATISTICS") and v != ""
    }


def _get(tags: dict[str, str], key: str) -> str | None:
    lowered = {k.lower(): v for k, v in tags.items()}
    for name in _ALIASES.get(key, (key,)):
        if name in lowered:
            return lowered[name]
    return None


def _shown(tag: str | None) -> str | None:
    return text(tag) if tag is not None else None


def display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix (rotation / flip) as FFmpeg's nine int32, or None when it has none."""
    sd = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if sd is None:
        return None
    matrix = tuple(int(x) for x in np.frombuffer(bytes(sd), np.int32))
    identity = (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)
    return None if matrix == identity else matrix


def first_matrix(path: Path, index: int) -> tuple[int, ...] | None:
    """The display matrix on the first decoded frame of stream ``index`` of ``path`` (it rides on frames)."""
    with open_container(path) as container:
        try:
            first = next(container.decode(container.streams[index]), None)
        except av.error.FFmpegError:
            return None
    return display_matrix(first) if first is not None else None


def rotation_of(matrix: tuple[int, ...] | None) -> int:
    """Counter-clockwise degrees of a display matrix (FFmpeg's av_display_rotation_get, rounded)."""
    if matrix is None:
        return 0
    return round(-float(np.degrees(np.arctan2(matrix[1], matrix[0])))) % 360


def _is_chapter_track(container: av.container.InputContainer, stream: av.stream.Stream, chapters: int) -> bool:
    """MP4/MOV keep chapter names as a text track, one sample per chapter, which FFmpeg shows as a
    subtitle (or, beside audio, a data) stream.  It is not copied: the output writes its own chapters."""
    codec = stream.codec_context.name if stream.codec_context is not None else None
    return (
        chapters > 0
        and container.format.name.startswith("mov")
        and stream.type in ("subtitle", "data")
        and codec in (None, "mov_text")
        and stream.frames == chapters
    )


def side_streams(container: av.container.InputContainer, video: av.stream.Stream) -> list[av.stream.Stream]:
    """The streams to carry beside the video: audio, subtitles, data, less what metadata rebuilds
    (an MP4 timecode track comes back from the timecode tag; a chapter track from the chapters)."""
    chapters = len(container.chapters())
    return [
        s
        for s in container.streams
        if s is not video
        and s.type in ("audio", "subtitle", "data")
        and not (s.type == "data" and "timecode" in {k.lower() for k in s.metadata})
        and not _is_chapter_track(container, s, chapters)
    ]


@dataclass(frozen=True)
class Metadata:
    """What the output should carry of the input besides pictures and sound."""

    container: dict[str, str] = field(default_factory=dict)
    video: dict[str, str] = field(default_factory=dict)  # video stream tags: title, language, timecode...
    chapters: tuple[dict[str, Any], ...] = ()
    display_matrix: tuple[int, ...] | None = None
    field_order: int = FIELD_UNKNOWN  # of the output: progressive once deinterlaced

    @property
    def timecode(self) -> str | None:
        return _get(self.video, "timecode") or _get(self.container, "timecode")

    def describe(self) -> dict[str, Any]:
        """For summaries and ``vidsr probe``: tags as printable text (see :func:`.pyav.text`)."""
        lang = _get(self.video, "language")
        return {
            "timecode": _shown(self.timecode),
            "rotation": rotation_of(self.display_matrix),
            "chapters": len(self.chapters),
            "title": _shown(_get(self.container, "title")),
            "video_title": _shown(_get(self.video, "title")),
            "video_language": _shown(lang) if lang != "und" else None,
            "field_order": FIELD_ORDER_NAMES.get(self.field_order, str(self.field_order)),
        }


def read(
    container: av.container.InputContainer, video: av.stream.Stream, matrix: tuple[int, ...] | None = None
) -> Metadata:
    """The input's metadata; ``matrix``: the display matrix its decoded frames carry (:func:`display_matrix`)."""
    video_tags = _kept(dict(video.metadata))
    container_tags = _kept(dict(container.metadata))
    # MP4 repeats the timecode on the container and on its timecode track: keep it on the video.
    if (timecode := _get(container_tags, "timecode")) and not _get(video_tags, "timecode"):
        video_tags["timecode"] = timecode
    container_tags = {k: v for k, v in container_tags.items() if k.lower() != "timecode"}
    return Metadata(
        container=container_tags,
        video=video_tags,
        chapters=tuple(container.chapters()),
        display_matrix=matrix,
        field_order=video.codec_context.field_order if video.codec_context else FIELD_UNKNOWN,
    )


def apply(out: av.container.OutputContainer, stream: av.video.stream.VideoStream, meta: Metadata) -> None:
    """Put ``meta`` on an output whose header is not written yet."""
    out.metadata.update(meta.container)
    stream.metadata.update(meta.video)
    if meta.chapters:
        out.set_chapters([dict(c) for c in meta.chapters])  # type: ignore[misc]
    if meta.display_matrix is not None:
        stream.set_display_matrix(list(meta.display_matrix))
    if meta.field_order != FIELD_UNKNOWN:  # progressive too: deinterlaced output says so
        stream.codec_context.field_order = meta.field_order


@dataclass(frozen=True)
class StreamTags:
    """A passthrough stream's title and language, to check in the output (by output index)."""

    label: str
    output_index: int
    tags: dict[str, str]


def stream_tags(label: str, output_index: int, tags: dict[str, str]) -> StreamTags:
    wanted = {k: v for k in ("title", "language") if (v := _get(tags, k)) and v != "und"}
    return StreamTags(label, output_index, wanted)


def check(path: Path, meta: Metadata, others: Sequence[StreamTags] = ()) -> list[str]:
    """What of ``meta`` (and the passthrough streams' titles and languages) the file at ``path`` lacks."""
    missing: list[str] = []
    with open_container(path) as written:
        video = written.streams.video[0]
        if meta.timecode and meta.timecode not in (
            _get(video.metadata, "timecode"),
            _get(written.metadata, "timecode"),
        ):
            missing.append(f"timecode {meta.timecode}")
        for key in ("title", "language"):
            if (want := _get(meta.video, key)) and want != "und" and _get(video.metadata, key) != want:
                missing.append(f"video {key} {want!r}")
        lost = [k for k, v in meta.container.items() if _get(written.metadata, k.lower()) != v]
        if lost:
            missing.append("container tags " + ", ".join(sorted(k.lower() for k in lost)))
        if meta.chapters and len(written.chapters()) != len(meta.chapters):
            missing.append(f"{len(meta.chapters)} chapters")
        if meta.field_order > FIELD_PROGRESSIVE and video.codec_context.field_order != meta.field_order:
            missing.append(f"field order {FIELD_ORDER_NAMES.get(meta.field_order, meta.field_order)}")
        for s in others:
            out_tags = written.streams[s.output_index].metadata if s.output_index < len(written.streams) else {}
            for key, want in s.tags.items():
                if _get(out_tags, key) != want:
                    missing.append(f"{s.label} {key} {want!r}")
        if meta.display_matrix is not None:
            first = next(written.decode(video), None)
            got = display_matrix(first) if first is not None else None
            if rotation_of(got) != rotation_of(meta.display_matrix) or got is None:
                missing.append(f"rotation {rotation_of(meta.display_matrix)}°")
    return missing


def dropped_warning(final: Path, written: Path, meta: Metadata, others: Sequence[StreamTags] = ()) -> str | None:
    """One warning naming what of ``meta`` the file at ``written`` (to be renamed ``final``) lacks, or None."""
    try:
        missing = check(written, meta, others)
    except av.error.FFmpegError as exc:  # the file is complete (its muxer said so); only the look-back failed
        log.debug("cannot read back %s: %s", written, exc)
        return None
    if not missing:
        return None
    return f"{final.suffix or final.name} cannot hold the input's {'; '.join(missing)}: dropped"
