"""Turn the INPUTS of ``vidsr batch`` into jobs: one input file and the output name it maps to.

INPUTS may be files, folders (walked recursively), globs (``'in/**/*.avi'``, quoted so the shell
leaves them alone) or ``@list.txt``: a text file with one path per line (blank lines and lines
starting with ``#`` ignored; relative paths are relative to the list file's folder; each line may
itself be a file, folder or glob).  The ``@`` prefix, not the ``.txt`` suffix, marks a list, so a
video that happens to be called ``.txt`` is never read as one.

Output names mirror the input tree: a file found in folder input ``D`` goes to
``OUT_DIR/<path relative to D>``, a glob match to its path relative to the glob's fixed leading
folder, a file named directly to ``OUT_DIR/<name>``.  Names depend only on each input, never on the
others, so adding an input to a rerun does not rename (and redo) what is already done.  The suffix
is kept unless that container cannot hold the encoder's output or loses timestamps (AVI, ASF, FLV):
then it is ``.mp4`` (see :func:`output_suffix`).
"""

from __future__ import annotations

import functools
import glob
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import av

from vidsr.errors import InputError, VidsrError
from vidsr.media.pyav import open_container

# Files in a folder with these suffixes are jobs even when they turn out to be bad (they then fail with
# a reason); other files are sniffed and become jobs only if FFmpeg finds a video stream in them.
VIDEO_SUFFIXES = frozenset(
    [
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".wmv",
        ".asf",
        ".flv",
        ".f4v",
        ".mpg",
        ".mpeg",
        ".m2v",
        ".ts",
        ".m2ts",
        ".mts",
        ".vob",
        ".ogv",
        ".3gp",
        ".3g2",
        ".dv",
        ".mxf",
        ".y4m",
        ".nut",
        ".rm",
        ".rmvb",
        ".divx",
        ".h264",
        ".264",
        ".hevc",
        ".265",
    ]
)
# Single pictures (and image sequences) open in FFmpeg as one-frame "video": not what a batch means.
_IMAGE_FORMATS = ("image2", "_pipe", "gif", "apng", "webp")
WORK_DIR = ".vidsr-work"
MANIFEST = "vidsr-manifest.jsonl"


@dataclass(frozen=True)
class Job:
    """One input and its output, named by ``key``: the output path relative to OUT_DIR (posix)."""

    source: Path
    key: str

    def output(self, out_dir: Path) -> Path:
        return out_dir.joinpath(*PurePosixPath(self.key).parts)


@dataclass(frozen=True)
class Discovery:
    jobs: tuple[Job, ...]
    notes: tuple[str, ...]  # files skipped as not video, globs that matched nothing...


def discover(inputs: list[str], out_dir: Path, codec: str | None = None) -> Discovery:
    """Expand ``inputs`` into jobs; raise before anything runs if two would share one output name."""
    out_dir = out_dir.resolve()
    found: list[tuple[Path, PurePosixPath]] = []
    notes: list[str] = []
    for spec in inputs:
        _expand(spec, Path.cwd(), out_dir, found, notes, depth=0)
    if not found:
        raise InputError("no input files found" + (f" ({'; '.join(notes)})" if notes else ""))
    jobs: list[Job] = []
    seen_sources: set[Path] = set()
    by_name: dict[str, Job] = {}
    clashes: list[str] = []
    for source, rel in found:
        resolved = source.resolve()
        if resolved in seen_sources:
            continue  # the same file named twice (a folder and a file inside it): once is enough
        seen_sources.add(resolved)
        suffix = output_suffix(rel.suffix, codec)
        # "clip.avi" -> "clip.mp4", but "tape.2009" -> "tape.2009.mp4": only a video suffix is replaced.
        name = rel.with_suffix(suffix) if rel.suffix.lower() in VIDEO_SUFFIXES else rel.with_name(rel.name + suffix)
        job = Job(source, str(name))
        # Case-folded: on macOS and Windows file systems a.mp4 and A.mp4 are one file.
        other = by_name.get(job.key.casefold())
        if other is not None:
            clashes.append(f"{other.source} and {job.source} would both be written to {job.output(out_dir)}")
            continue
        by_name[job.key.casefold()] = job
        jobs.append(job)
    if clashes:
        raise VidsrError(
            "two inputs map to one output name: "
            + "; ".join(clashes)
            + " (pass their parent folder instead, so the output tree keeps them apart)"
        )
    return Discovery(tuple(jobs), tuple(notes))


def _expand(
    spec: str, base: Path, out_dir: Path, found: list[tuple[Path, PurePosixPath]], notes: list[str], depth: int
) -> None:
    if spec.startswith("@"):
        if depth > 4:
            raise InputError(f"list files nested too deep at {spec}")
        _read_list(_resolve(spec[1:], base), out_dir, found, notes, depth)
        return
    path = _resolve(spec, base)
    if path.is_dir():
        root = path
        for file in _walk(root, out_dir):
            if _is_candidate(file, notes, root):
                found.append((file, PurePosixPath(file.relative_to(root).as_posix())))
        return
    if path.exists() or not glob.has_magic(spec):
        found.append((path, PurePosixPath(path.name)))  # named directly: a job even if bad, to say why
        return
    root = _glob_root(path)
    matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
    files = [m for m in matches if m.is_file() and not _inside(m, out_dir) and not _hidden(m.relative_to(root))]
    if not files:
        notes.append(f"{spec} matched no files")
    for file in files:
        if _is_candidate(file, notes, root):
            found.append((file, PurePosixPath(file.relative_to(root).as_posix())))


def _read_list(
    path: Path, out_dir: Path, found: list[tuple[Path, PurePosixPath]], notes: list[str], depth: int
) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read list file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            _expand(entry, path.parent, out_dir, found, notes, depth + 1)


def _resolve(spec: str, base: Path) -> Path:
    path = Path(os.path.expanduser(spec))
    return path if path.is_absolute() else base / path


def _glob_root(pattern: Path) -> Path:
    """The leading folders of a glob that hold no wildcard: what its matches are named relative to."""
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _walk(root: Path, out_dir: Path) -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        # Hidden folders (.git, our own .vidsr-work) and the output folder itself are not inputs.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(here / d, out_dir))
        files += [here / n for n in sorted(names) if not n.startswith(".")]
    return files


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _hidden(rel: Path) -> bool:
    return any(p.startswith(".") for p in rel.parts)


def _is_candidate(file: Path, notes: list[str], root: Path) -> bool:
    """Folder members: by suffix, or else by content, so ``clip`` without a suffix is still found."""
    if file.suffix.lower() in VIDEO_SUFFIXES:
        return True
    kind = sniff(file)
    if kind is None:
        return True
    notes.append(f"skipped {file.relative_to(root)}: {kind}")
    return False


def sniff(path: Path) -> str | None:
    """None if FFmpeg finds a video stream in ``path``; else what it is instead, in words."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with open_container(path) as container:
            name = container.format.name
            videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
            if videos and not any(tag in name for tag in _IMAGE_FORMATS):
                return None
            if videos:
                return "a still image, not video"
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            return f"no video stream (it holds {kinds})"
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return "not a media file"


# Containers that cannot give every frame back its exact timestamp: AVI keeps a frame index, not
# times (H.264 comes back a frame late, gaps between frames are lost); ASF and FLV round to ms.
_INEXACT = frozenset({".avi", ".divx", ".wmv", ".asf", ".flv", ".f4v"})
_MILLISECONDS = frozenset({".mkv", ".webm"})  # their inputs are in ms already, so Matroska loses nothing


@functools.cache
def output_suffix(suffix: str, codec: str | None) -> str:
    """The output container: the input's own when it holds the encoder's output and keeps timestamps
    exactly; else MP4, which stores any time base exactly and holds most audio (PCM, FLAC, Opus, MP3,
    AAC); else Matroska, which holds nearly anything.  ``codec`` None: each container's default."""
    suffix = suffix.lower()
    candidates = []
    if suffix in VIDEO_SUFFIXES and suffix not in _INEXACT:
        candidates.append(suffix)
    if suffix in _MILLISECONDS:
        candidates.append(".mkv")
    candidates += [".mp4", ".mkv"]
    for candidate in candidates:
        if _holds(candidate, effective_codec(codec, candidate)):
            return candidate
    return ".mkv"  # an unknown encoder: the sink reports it with a better message


def effective_codec(codec: str | None, suffix: str, *, lossless: bool = False) -> str:
    """The encoder VideoSink uses for an output named ``*suffix``: the one asked for, else the
    container's default (its lossless one with ``lossless``).  Pieces of a segmented file are encoded
    with it too, so they can be joined."""
    from vidsr.media.encoders import EncodeOptions, codec_for

    return codec_for(_MUXERS.get(suffix.lower(), "mp4"), EncodeOptions(codec=codec, lossless=lossless))


# FFmpeg muxer of each suffix we may keep (what av.open would guess from the name).
_MUXERS = {
    ".avi": "avi",
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".mts": "mpegts",
    ".mpg": "mpeg",
    ".mpeg": "mpeg",
    ".vob": "vob",
    ".ogv": "ogg",
    ".3gp": "3gp",
    ".3g2": "3g2",
    ".mxf": "mxf",
    ".nut": "nut",
    ".dv": "dv",
    ".y4m": "yuv4mpegpipe",
    ".m2v": "mpeg2video",
    ".h264": "h264",
    ".264": "h264",
    ".hevc": "hevc",
    ".265": "hevc",
    ".rm": "rm",
    ".rmvb": "rm",
}


@functools.cache
def _holds(suffix: str, codec: str) -> bool:
    """Whether FFmpeg's muxer for ``suffix`` accepts ``codec``'s output: asked of an in-memory
    container, so the answer depends on nothing but the two names (it decides output names)."""
    muxer = _MUXERS.get(suffix)
    if muxer is None:
        return False
    try:
        with av.open(io.BytesIO(), mode="w", format=muxer) as container:
            container.add_stream(codec)  # raises ValueError when the muxer cannot hold its output
            return True
    except ValueError:
        return False
    except Exception:  # an unknown encoder: the sink reports it with a better message
        return suffix == ".mkv"
