"""Where TensorRT engines live, what they are called, and when one is stale.

An engine is only valid for the exact model weights, build options, TensorRT version
and GPU it was built with.  All four go into an :class:`EngineKey`; its hash is part of
the file name, so a change to any of them names a different file and a new engine is
built, and a JSON sidecar beside each engine records them in readable form.  A cached
file that does not deserialize (truncated copy, other TensorRT) is rebuilt, not trusted.

Batch runs start one worker per GPU, and they often want the same engine at once: a build
holds an exclusive lock on ``<stem>.lock`` (``flock``), and whoever waited finds the engine
the first one built.  Every file is written under a name unique to the process and thread,
then renamed.

Nothing here imports TensorRT: building and loading are passed in as callables, which
keeps this logic testable on machines without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from vidsr.cachedir import ENGINE_DIR_ENV, default_engine_dir
from vidsr.errors import BackendError

log = logging.getLogger(__name__)

SIDECAR_VERSION = 1
T = TypeVar("T")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_state_dict(state: dict[str, Any]) -> str:
    """Checksum of a module's tensors, for models without a weights file (random init in benchmarks)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineBuildOptions:
    """What the engine is built for: precision and the optimisation profile (batch and LR frame size).

    Shapes are of the model *input* (low resolution).  Frames larger than ``max_hw`` are
    tiled by the Upscaler to fit; batches larger than ``max_batch`` are split.
    """

    precision: str = "fp16"
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 8
    min_hw: tuple[int, int] = (16, 16)
    opt_hw: tuple[int, int] = (270, 480)
    max_hw: tuple[int, int] = (1088, 1920)
    workspace_mib: int = 4096
    opset: int = 18

    def __post_init__(self) -> None:
        if self.precision not in ("fp16", "fp32"):
            raise BackendError(f"TensorRT engines are built in fp16 or fp32, not {self.precision}")
        if not self.min_batch <= self.opt_batch <= self.max_batch:
            raise BackendError(f"need min <= opt <= max batch, got {self.min_batch}/{self.opt_batch}/{self.max_batch}")
        for i, axis in enumerate(("height", "width")):
            if not self.min_hw[i] <= self.opt_hw[i] <= self.max_hw[i]:
                raise BackendError(
                    f"need min <= opt <= max {axis}, got {self.min_hw[i]}/{self.opt_hw[i]}/{self.max_hw[i]}"
                )

    def profile(self, channels: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NCHW shapes of the optimisation profile."""
        return (
            (self.min_batch, channels, *self.min_hw),
            (self.opt_batch, channels, *self.opt_hw),
            (self.max_batch, channels, *self.max_hw),
        )

    def fits(self, shape: tuple[int, ...]) -> bool:
        _, _, h, w = shape
        return self.min_hw[0] <= h <= self.max_hw[0] and self.min_hw[1] <= w <= self.max_hw[1]


def default_build_options(arch: str, precision: str = "fp16") -> EngineBuildOptions:
    """Profiles sized so the largest activation stays a few GiB on a 24+ GiB GPU.

    ESPCN works at low resolution with few channels: full 1080p input, batch 16.
    SRResNet's upsampler holds 256 channels at 2x the input size; batch 8 at 576x1024
    (vtest.avi's 576x768 fits untiled) keeps that tensor near 10 GiB in fp16.
    """
    if arch == "srresnet":
        return EngineBuildOptions(precision, 1, 8, 8, (16, 16), (270, 480), (576, 1024))
    return EngineBuildOptions(precision, 1, 8, 16, (16, 16), (540, 960), (1088, 1920))


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on.  Equal keys mean an engine can be reused."""

    model: str
    arch: str
    scale: int
    channels: int
    weights_sha256: str
    options: EngineBuildOptions
    tensorrt_version: str
    gpu_name: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def stem(self) -> str:
        """A name that says what went in, plus a short hash of the rest.

        ``espcn_x4_fp16_b1-8-16_1088x1920_trt10.3.0_nvidia-h100-80gb-hbm3_3f2a9c1d0b4e``
        """
        o = self.options
        parts = [
            f"{self.model}_x{self.scale}",
            o.precision,
            f"b{o.min_batch}-{o.opt_batch}-{o.max_batch}",
            f"{o.max_hw[0]}x{o.max_hw[1]}",
            f"trt{self.tensorrt_version}",
            slug(self.gpu_name),
            self.digest[:12],
        ]
        return "_".join(parts)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


@dataclass(frozen=True)
class EnginePaths:
    engine: Path
    lock: Path
    sidecar: Path
    onnx: Path
    build_log: Path
    timing_cache: Path


class EngineCache:
    """A folder of engines with sidecars, plus one timing cache per TensorRT version and GPU."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_engine_dir()

    def paths(self, key: EngineKey) -> EnginePaths:
        d = self.directory
        stem = key.stem
        return EnginePaths(
            engine=d / f"{stem}.engine",
            lock=d / f"{stem}.lock",
            sidecar=d / f"{stem}.json",
            onnx=d / f"{stem}.onnx",
            build_log=d / f"{stem}.build.log",
            # Timings depend on the GPU and TensorRT only, so every model shares one cache.
            timing_cache=d / f"timing_trt{key.tensorrt_version}_{slug(key.gpu_name)}.cache",
        )

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(
                f"cannot create engine cache {self.directory}: {exc.strerror}; "
                f"set {ENGINE_DIR_ENV} to a writable folder"
            ) from None

    def is_current(self, key: EngineKey) -> bool:
        """An engine file exists and its sidecar records exactly ``key``."""
        p = self.paths(key)
        if not p.engine.is_file() or not p.sidecar.is_file():
            return False
        try:
            sidecar = json.loads(p.sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return sidecar.get("key") == json.loads(json.dumps(key.to_dict())) and sidecar.get("digest") == key.digest

    def load_or_build(
        self,
        key: EngineKey,
        build: Callable[[EnginePaths], bytes],
        load: Callable[[bytes], T | None],
        *,
        force: bool = False,
    ) -> tuple[T, bool]:
        """The engine for ``key``: from the cache when current and loadable, else built now.

        ``build(paths)`` returns the serialized engine (it may write ``paths.build_log`` and
        ``paths.timing_cache``); ``load(data)`` deserializes, returning None on failure.
        Returns ``(engine, built)``.
        """
        self._ensure_dir()
        p = self.paths(key)
        if not force:
            engine = self._load_current(key, load)
            if engine is not None:
                return engine, False
        with exclusive_lock(p.lock):
            # Another worker may have built it while we waited for the lock.
            if not force:
                engine = self._load_current(key, load, quiet=True)
                if engine is not None:
                    return engine, False
            data = build(p)
            engine = load(data)
            if engine is None:
                raise BackendError(f"TensorRT built an engine it cannot load; see the build log {p.build_log}")
            self.store(key, data)
        return engine, True

    def _load_current(self, key: EngineKey, load: Callable[[bytes], T | None], quiet: bool = False) -> T | None:
        p = self.paths(key)
        if self.is_current(key):
            engine = load(p.engine.read_bytes())
            if engine is not None:
                log.info("TensorRT engine from cache: %s", p.engine)
                return engine
            if not quiet:
                log.warning("cached engine %s does not deserialize; rebuilding it", p.engine)
        elif p.engine.exists() and not quiet:
            log.warning("engine %s has no matching sidecar; rebuilding it", p.engine)
        return None

    def store(self, key: EngineKey, data: bytes) -> Path:
        """Write engine and sidecar atomically: a reader never sees half an engine under the final name."""
        self._ensure_dir()
        p = self.paths(key)
        atomic_write(p.engine, data)
        sidecar = {
            "sidecar_version": SIDECAR_VERSION,
            "digest": key.digest,
            "key": key.to_dict(),
            "engine": p.engine.name,
            "bytes": len(data),
        }
        atomic_write(p.sidecar, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
        return p.engine


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing): one builder per engine at a time.

    flock locks belong to the open file, so threads of one process exclude each other too.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BackendError(f"cannot lock {path}: {exc.strerror}; set {ENGINE_DIR_ENV} to a writable folder") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def unique_temp(path: Path) -> Path:
    """A hidden name beside ``path`` that no other process or thread uses at the same time."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def atomic_write(path: Path, data: bytes) -> None:
    temp = unique_temp(path)
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise BackendError(f"cannot write {path}: {exc.strerror}; set {ENGINE_DIR_ENV} to a writable folder") from None
