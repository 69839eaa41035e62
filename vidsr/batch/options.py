"""What a batch run is asked to do: one frozen dataclass, built by the CLI or by library users."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidsr.errors import VidsrError
from vidsr.media.sink import EncodeOptions

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class UpscaleSettings:
    """Everything that decides what an output file looks like.  Stored in the manifest: a rerun
    with different settings would mix two kinds of output in one folder, so it is refused."""

    model: str = "espcn"
    scale: int = 2
    weights: str | None = None
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    ensemble: bool = False  # vidsr.ensemble: eight turns of each frame averaged

    def fingerprint(self) -> dict[str, Any]:
        weights = None
        if self.weights:
            # By content: the same weights under another path resume; retrained ones do not.
            try:
                weights = hashlib.sha256(Path(self.weights).read_bytes()).hexdigest()
            except OSError:
                weights = str(self.weights)  # missing: build_model reports it before anything runs
        # Every encode option, by name: one added to EncodeOptions later is part of the output too.
        # Through JSON, as the manifest stores it (tuples come back as lists), so a rerun compares equal.
        encode = json.loads(json.dumps(dataclasses.asdict(self.encode)))
        # The self-ensemble only when asked: folders begun before the option existed resume.
        ensemble = {"ensemble": True} if self.ensemble else {}
        return {"model": self.model, "scale": self.scale, "weights": weights, **ensemble, **encode}


@dataclass(frozen=True)
class RuntimeSettings:
    """How each worker runs the model: these may change between runs without touching outputs."""

    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    batch_size: int | None = None
    threads: int | None = None  # torch CPU threads per worker; None: the machine's cores / workers
    tile_pixels: int | None = None  # see Upscaler: None about one 1080p frame, 0 never
    compile: bool = False
    engine_dir: str | None = None
    hwdec: str = "auto"


@dataclass(frozen=True)
class BatchOptions:
    """A ``vidsr batch`` run.  ``jobs`` None: one worker per GPU, else one on the CPU."""

    out_dir: Path
    upscale: UpscaleSettings = field(default_factory=UpscaleSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    jobs: int | None = None
    executor: str = "local"
    address: str | None = None
    segment_seconds: float | None = None
    retry: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise VidsrError(f"unknown executor {self.executor!r}; choose from {', '.join(EXECUTORS)}")
        if self.address and self.executor != "ray":
            raise VidsrError("--address needs --executor ray")
        if self.jobs is not None and self.jobs < 1:
            raise VidsrError("--jobs must be at least 1")
        if self.segment_seconds is not None and self.segment_seconds <= 0:
            raise VidsrError("--segment-seconds must be more than 0")
        if self.retry < 0:
            raise VidsrError("--retry must be 0 or more")
