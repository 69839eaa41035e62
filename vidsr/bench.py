"""Throughput benchmarks: the same input through four stages, so each number has a yardstick.

=============  ============================================================================
``io_ceiling`` decode + encode through the real pipeline (threads, queues, muxer), with the
               model replaced by a nearest-neighbour pixel repeat on the CPU: the fastest
               any model could possibly go on this machine with this encoder
``bicubic``    the bicubic baseline through the same pipeline, on the device
``naive``      what a first script does: decode a frame, RGB, FP32 PyTorch model (batch 1),
               encode, one after the other, no threads, no overlap
``opencv``     the peer: OpenCV's dnn_superres ESPCN (``../shared/peers``) in the naive loop,
               for ``espcn`` rows; skipped, with the reason logged, where OpenCV or the file is absent
``pipeline``   vidsr itself, once per backend available here
=============  ============================================================================

Each learned-model row also reports *model-only* fps (the backend alone on a batch
already on the device), which is what the GPU targets are stated in.  Weights: the
shipped ones when present, else random weights of the same architecture; speed does not
depend on weight values, and every row says which it used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from vidsr.backends import resolve_device
from vidsr.backends.hwvideo import decode_hwaccel
from vidsr.backends.int8 import cpu_has_vnni
from vidsr.backends.openvino import native_bf16
from vidsr.errors import BackendError, InputError, ModelError
from vidsr.hostbuffers import HostBatch
from vidsr.media.pyav import fraction
from vidsr.media.sink import EncodeOptions
from vidsr.models import LoadedModel, build_model, get_spec
from vidsr.models import weights as shipped_weights
from vidsr.upscaler import OutputGeometry, PlaneBatch, Upscaler
from vidsr.video import upscale_video

log = logging.getLogger(__name__)

STAGES = ("io_ceiling", "bicubic", "naive", "opencv", "pipeline")
# The encoder every stage uses: fast enough not to hide the model, and the same for every row.
BENCH_ENCODE = EncodeOptions(codec="libx264", preset="veryfast", crf=18)


# -- the machine -----------------------------------------------------------------------------
def _runtime_versions() -> dict[str, str]:
    """Versions of the CPU runtimes installed here (onnxruntime, openvino)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("onnxruntime", "openvino"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def machine_info() -> dict[str, Any]:
    """CPU model, cores, torch version, and the GPU when there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "vnni": cpu_has_vnni(),  # int8 dot products: what --precision auto's int8 choice rests on
        "bf16": native_bf16(),  # native bf16 (OpenVINO's word): what its bf16 choice rests on
        "runtimes": _runtime_versions(),
        "torch": torch.__version__,
        "pyav": av.__version__,
        "ffmpeg": _ffmpeg_version(),
        "python": platform.python_version(),
        "gpu": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
        try:
            import tensorrt as trt

            info["tensorrt"] = trt.__version__
        except ImportError:
            info["tensorrt"] = None
    return info


def _ffmpeg_version() -> str:
    try:
        lib = av.library_versions.get("libavcodec")
        return "libavcodec " + ".".join(map(str, lib)) if lib else "unknown"
    except AttributeError:
        return "unknown"


# -- models ----------------------------------------------------------------------------------
def load_for_bench(name: str, scale: int, weights: str | Path | None = None) -> tuple[LoadedModel, str]:
    """The model with shipped (or given) weights, else randomly initialised: ``(loaded, "shipped"|...)``."""
    spec = get_spec(name)
    if not spec.learned:
        return build_model(name, scale), "-"
    try:
        loaded = build_model(name, scale, weights=weights)
        if "mean_of" in loaded.metadata:  # shipped sets averaged (vidsr.models.mean): named as asked
            return loaded, str(weights)
        shipped = loaded.weights is not None and Path(loaded.weights).parent == shipped_weights.SHIPPED_DIR
        if not shipped:
            return loaded, "given"
        # espcn_x2.robust.safetensors -> "robust"; "(default)" when no set was asked for.
        return loaded, Path(loaded.weights).name.split(".")[1] + ("" if weights else " (default)")
    except ModelError:
        if weights is not None:
            raise
    torch.manual_seed(0)
    module = spec.builder(scale=scale).eval().requires_grad_(False)
    return LoadedModel(spec, scale, module, None, {"weights": "random"}), "random"


# -- inputs ----------------------------------------------------------------------------------
def make_bench_input(src: Path, dst: Path, frames: int, size: tuple[int, int] | None) -> Path:
    """The first ``frames`` frames of ``src``: remuxed untouched when ``size`` is None, else
    resampled (swscale bicubic) to ``size`` = (width, height) and encoded near-losslessly."""
    if dst.exists():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    temp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    with av.open(str(src)) as inp, av.open(str(temp), "w") as out:
        vin = inp.streams.video[0]
        if size is None:
            vout = out.add_stream_from_template(vin)
            count = 0
            for packet in inp.demux(vin):
                if packet.size == 0:
                    continue
                if count >= frames:
                    break
                packet.stream = vout
                out.mux(packet)
                count += 1
        else:
            width, height = size
            rate = fraction(vin.average_rate) or Fraction(25)
            vout = out.add_stream("libx264", rate=rate)
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            vout.options = {"crf": "10", "preset": "veryfast"}
            for i, frame in enumerate(inp.decode(vin)):
                if i >= frames:
                    break
                small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
                # Frame i at i / rate: in the encoder's clock, not the decoder's (box.mp4's is 1/1000000).
                small.pts, small.time_base = i, 1 / rate
                out.mux(vout.encode(small))
            out.mux(vout.encode(None))
    temp.replace(dst)
    return dst


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# -- rows ------------------------------------------------------------------------------------
@dataclass
class BenchRow:
    stage: str
    input: str
    width: int
    height: int
    model: str
    scale: int
    backend: str
    precision: str
    weights: str
    frames: int
    seconds: float
    fps: float
    model_fps: float | None = None
    batch: int | None = None
    gpu_peak_mib: float | None = None
    ratio_vs_io_ceiling: float | None = None
    ratio_vs_naive: float | None = None
    ratio_vs_opencv: float | None = None
    note: str = ""
    # Start-up (row start, before its upscaler is made, to the first frame written) apart from the
    # steady state (frames a second after the first batch), and seconds per pipeline stage
    # (vidsr.stages): from the run's UpscaleSummary; naive rows time their own loop.
    startup_s: float | None = None
    steady_fps: float | None = None
    stage_seconds: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchConfig:
    models: tuple[str, ...] = ("espcn", "srresnet")
    scales: tuple[int, ...] = (2, 4)
    device: str = "auto"
    backends: tuple[str, ...] | None = None  # None: every backend that works on the device
    batch_size: int | None = None
    model_iters: int = 10
    encode: EncodeOptions = BENCH_ENCODE
    weights: dict[str, str] = field(default_factory=dict)  # model name -> weights file


class _NearestRepeat:
    """Stands in for an Upscaler in the io_ceiling stage: np.repeat on the CPU, no model."""

    class _Spec:
        name = "none"

    class _Backend:
        name = "none"
        dtype = torch.uint8

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.device = torch.device("cpu")
        self.spec = self._Spec()
        self.backend = self._Backend()
        self.warnings: list[str] = []

    def upload(self, frames: list[Any]) -> PlaneBatch:
        return PlaneBatch.stack(frames)

    def download(self, batch: PlaneBatch) -> HostBatch:
        return HostBatch((batch.y, batch.cb, batch.cr))

    def upscale_planes(self, batch: PlaneBatch, src: Any, dst: Any, g: OutputGeometry) -> PlaneBatch:
        s = self.scale

        def rep(p: torch.Tensor, h: int, w: int) -> torch.Tensor:
            # One multi-threaded copy of a broadcast view (torch): np.repeat twice, single-threaded,
            # took 5x as long on the 2-core CPU, and at 4K output the first H200 run's io_ceiling
            # row may have measured that rather than the codecs.
            n, ph, pw = p.shape
            a = p[:, :, None, :, None].expand(n, ph, s, pw, s).reshape(n, ph * s, pw * s).numpy()[:, :h, :w]
            if a.shape[1:] != (h, w):  # chroma of odd sizes: pad by the edge
                a = np.pad(a, ((0, 0), (0, h - a.shape[1]), (0, w - a.shape[2])), mode="edge")
            return torch.from_numpy(np.ascontiguousarray(a))

        return PlaneBatch(
            rep(batch.y, g.height, g.width),
            rep(batch.cb, g.chroma_height, g.chroma_width),
            rep(batch.cr, g.chroma_height, g.chroma_width),
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def _summary_fields(summary: Any) -> dict[str, Any]:
    """A pipeline run's start-up, steady state and per-stage seconds, as row fields."""
    return {
        "startup_s": summary.startup_s,
        "steady_fps": summary.steady_fps,
        "stage_seconds": dict(summary.stage_seconds) or None,
    }


def _run_pipeline(
    src: Path,
    out_dir: Path,
    up: Any,
    cfg: BenchConfig,
    tag: str,
    started: float | None = None,
    *,
    device: torch.device | None = None,
    hwdec: str = "auto",
) -> tuple[Any, int]:
    """``upscale_video`` on ``src`` with ``up``: its summary and the batch size.  ``started``: when
    the row began (before its upscaler was made), so ``startup_s`` counts building the backend too.
    ``device``: whose default batch to use [``up``'s]."""
    dst = out_dir / f"{src.stem}.{tag}.mp4"
    batch = cfg.batch_size or (8 if (device or up.device).type == "cuda" else 2)
    summary = upscale_video(
        src,
        dst,
        upscaler=up,
        encode=cfg.encode,
        overwrite=True,
        progress=False,
        batch_size=batch,
        started=started,
        hwdec=hwdec,
    )
    dst.unlink(missing_ok=True)
    return summary, batch


def _geometry(src: Path) -> tuple[int, int]:
    with av.open(str(src)) as c:
        cc = c.streams.video[0].codec_context
        return cc.width, cc.height


def model_only_fps(up: Upscaler, width: int, height: int, batch: int, iters: int) -> float:
    """Frames per second of ``run_model`` alone on a batch already on the device (after warm-up)."""
    channels = up.spec.channels if up.spec.colour != "any" else 1
    x = torch.rand(batch, channels, height, width, device=up.device)
    if up.device.type == "cuda":
        for _ in range(3):  # compile, graph capture, cuDNN autotune happen here
            up.run_model(x)
    else:
        up.run_model(x[:1])  # oneDNN primitive creation; one frame is enough on a CPU
    _sync(up.device)
    started = time.perf_counter()
    for _ in range(iters):
        up.run_model(x)
    _sync(up.device)
    return batch * iters / (time.perf_counter() - started)


class _OpenCVPeer:
    """OpenCV's dnn_superres behind the one method :func:`naive_run` calls."""

    def __init__(self, sr: Any) -> None:
        self.sr = sr

    def upscale_image(self, rgb: np.ndarray) -> np.ndarray:
        return self.sr.upsample(np.ascontiguousarray(rgb[:, :, ::-1]))[:, :, ::-1]


@dataclass(frozen=True)
class NaiveRun:
    """What the frame-by-frame loop did: frames, seconds, and its own start-up / steady split."""

    frames: int
    seconds: float
    startup_s: float | None  # start to the first frame handed to the encoder
    steady_fps: float | None  # frames a second after the first one


def naive_run(
    src: Path, out_dir: Path, up: Upscaler | _OpenCVPeer, cfg: BenchConfig, max_frames: int | None = None
) -> NaiveRun:
    """Decode one frame, FP32 model on RGB at batch 1, encode it; repeat.  No threads, no overlap.
    ``max_frames``: stop after that many (a shorter row from the same clip)."""
    dst = out_dir / f"{src.stem}.naive.mp4"
    started = time.perf_counter()
    first_at = None
    frames = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = None
        for frame in inp.decode(vin):
            if max_frames is not None and frames >= max_frames:
                break
            rgb = frame.to_ndarray(format="rgb24")
            big = up.upscale_image(rgb)
            if vout is None:
                vout = out.add_stream(cfg.encode.codec, rate=vin.average_rate or Fraction(25))
                vout.width, vout.height = big.shape[1] - big.shape[1] % 2, big.shape[0] - big.shape[0] % 2
                vout.pix_fmt = cfg.encode.pix_fmt or "yuv420p"  # None: auto, 8-bit here
                vout.options = {"crf": str(cfg.encode.crf), "preset": cfg.encode.preset or "medium"}
            out_frame = av.VideoFrame.from_ndarray(big[: vout.height, : vout.width], format="rgb24")
            out_frame.pts = frames
            out.mux(vout.encode(out_frame))
            frames += 1
            if first_at is None:
                first_at = time.perf_counter()
        if vout is not None:
            out.mux(vout.encode(None))
    ended = time.perf_counter()
    dst.unlink(missing_ok=True)
    steady = (frames - 1) / (ended - first_at) if first_at is not None and frames > 1 and ended > first_at else None
    return NaiveRun(
        frames,
        ended - started,
        None if first_at is None else round(first_at - started, 3),
        None if steady is None else round(steady, 2),
    )


def available_backends(device: str) -> list[str]:
    """The backends that can run here: openvino and onnxruntime (when installed) and torch-cpu on a
    CPU; torch-cuda and tensorrt with a GPU."""
    if device == "cpu" or not torch.cuda.is_available():
        return cpu_backends()
    return gpu_backends()


def cpu_backends() -> list[str]:
    from vidsr.backends.onnxruntime import onnxruntime_available
    from vidsr.backends.openvino import openvino_available

    runtimes = [("openvino", openvino_available()), ("onnxruntime", onnxruntime_available())]
    return [name for name, here in runtimes if here] + ["torch-cpu"]


def gpu_backends() -> list[str]:
    """torch-cuda, and tensorrt where it is installed (asked without a GPU too: plans are made ahead)."""
    from vidsr.backends.tensorrt import tensorrt_available

    return ["torch-cuda"] + (["tensorrt"] if tensorrt_available() else [])


@dataclass(frozen=True)
class RowSpec:
    """One row to measure: a stage at a scale; naive, opencv and pipeline rows name a model,
    pipeline rows a backend.  ``max_frames``: naive and opencv rows stop after that many frames."""

    stage: str
    scale: int
    model: str = "none"
    backend: str = ""
    max_frames: int | None = None


def row_specs(cfg: BenchConfig, stages: Iterable[str], backends: Iterable[str]) -> list[RowSpec]:
    """Every row of ``stages`` for every scale and model of ``cfg``, in the order the table shows them."""
    stages, backends = tuple(stages), tuple(backends)
    specs = []
    for scale in cfg.scales:
        specs += [RowSpec(stage, scale) for stage in ("io_ceiling", "bicubic") if stage in stages]
        for model in cfg.models:
            if "naive" in stages:
                specs.append(RowSpec("naive", scale, model))
            if "opencv" in stages and model.partition(":")[0] == "espcn":
                specs.append(RowSpec("opencv", scale, model))
            if "pipeline" in stages:
                specs += [RowSpec("pipeline", scale, model, name) for name in backends]
    return specs


class BenchRunner:
    """Measures rows on one input file, one at a time, in whatever order the caller wants.

    ``clip_for(spec)`` may return a shorter clip for slow rows (srresnet on a CPU); models are
    loaded once per name and scale.
    """

    def __init__(
        self,
        src: Path,
        cfg: BenchConfig,
        *,
        label: str | None = None,
        out_dir: Path | None = None,
        clip_for: Callable[[RowSpec], Path] | None = None,
    ) -> None:
        self.src = Path(src)
        if not self.src.is_file():
            raise InputError(f"{self.src}: no such file")
        self.cfg = cfg
        self.label = label or self.src.name
        self.out_dir = out_dir or self.src.parent
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.clip_for = clip_for or (lambda spec: self.src)
        self.width, self.height = _geometry(self.src)
        self.device = resolve_device(cfg.device)
        self._models: dict[tuple[str, int], tuple[LoadedModel, str]] = {}

    def run(self, spec: RowSpec) -> BenchRow | None:
        """The row, or None where it cannot run here (no OpenCV peer, a backend that fails to start)."""
        measure = {
            "io_ceiling": self._io_ceiling,
            "bicubic": self._bicubic,
            "naive": self._naive,
            "opencv": self._opencv,
            "pipeline": self._pipeline,
        }[spec.stage]
        return measure(spec)

    def _model(self, model: str, scale: int) -> tuple[LoadedModel, str]:
        key = (model, scale)
        if key not in self._models:
            # "espcn:paper" names a weights set; plain "espcn" runs the default one.
            name, _, weights_set = model.partition(":")
            self._models[key] = load_for_bench(name, scale, weights_set or self.cfg.weights.get(name))
        return self._models[key]

    def _row(self, spec: RowSpec, clip: Path, frames: int, seconds: float, **fields: Any) -> BenchRow:
        note = fields.pop("note", "")
        if clip != self.src:
            note += f"; slow row: {frames} frame{'s' * (frames != 1)} only"
        elif spec.max_frames is not None and frames < count_frames_cached(self.src):
            note += f"; the first {frames} frames"
        return BenchRow(
            stage=spec.stage,
            input=self.label,
            width=self.width,
            height=self.height,
            model=fields.pop("model", spec.model),
            scale=spec.scale,
            frames=frames,
            seconds=round(seconds, 3),
            fps=round(frames / seconds, 2) if seconds else 0.0,
            note=note,
            **fields,
        )

    def _io_ceiling(self, spec: RowSpec) -> BenchRow:
        # Decoded and batched as the device's pipeline rows are (NVDEC and batches of 8 on a GPU),
        # or the ceiling would not be one for them.
        hwdec = "cuda" if self.device.type == "cuda" and decode_hwaccel("auto") is not None else "none"
        up = _NearestRepeat(spec.scale)
        tag = f"io{spec.scale}"
        summary, batch = _run_pipeline(self.src, self.out_dir, up, self.cfg, tag, device=self.device, hwdec=hwdec)
        return self._row(
            spec,
            self.src,
            summary.frames_out,
            summary.seconds,
            backend="cpu",
            precision="uint8",
            weights="-",
            batch=batch,
            note=f"decode{' (NVDEC)' if hwdec == 'cuda' else ''} + pixel repeat + encode",
            **_summary_fields(summary),
        )

    def _bicubic(self, spec: RowSpec) -> BenchRow:
        started = time.perf_counter()
        up = Upscaler("bicubic", spec.scale, device=self.device.type)
        _reset_peak(self.device)
        summary, batch = _run_pipeline(self.src, self.out_dir, up, self.cfg, f"bicubic{spec.scale}", started)
        return self._row(
            spec,
            self.src,
            summary.frames_out,
            summary.seconds,
            model="bicubic",
            backend=up.backend.name,
            precision=_dtype(up),
            weights="-",
            batch=batch,
            gpu_peak_mib=_peak_mib(self.device),
            **_summary_fields(summary),
        )

    def _naive(self, spec: RowSpec) -> BenchRow:
        clip = self.clip_for(spec)
        loaded, weights = self._model(spec.model, spec.scale)
        up = _naive_upscaler(loaded, self.device)
        _reset_peak(self.device)
        run = naive_run(clip, self.out_dir, up, self.cfg, spec.max_frames)
        return self._row(
            spec,
            clip,
            run.frames,
            run.seconds,
            backend=f"torch-{self.device.type} eager",
            precision="float32",
            weights=weights,
            batch=1,
            gpu_peak_mib=_peak_mib(self.device),
            startup_s=run.startup_s,
            steady_fps=run.steady_fps,
        )

    def _opencv(self, spec: RowSpec) -> BenchRow | None:
        from vidsr.bench_cpu import opencv_espcn

        sr, why = opencv_espcn(spec.scale, threads=torch.get_num_threads())
        if sr is None:
            log.warning("no OpenCV peer row: %s", why)
            return None
        clip = self.clip_for(spec)
        run = naive_run(clip, self.out_dir, _OpenCVPeer(sr), self.cfg, spec.max_frames)
        return self._row(
            spec,
            clip,
            run.frames,
            run.seconds,
            model="opencv-espcn",
            backend="opencv dnn",
            precision="float32",
            weights="TF-ESPCN",
            batch=1,
            note="dnn_superres ESPCN from ../shared/peers, frame by frame",
            startup_s=run.startup_s,
            steady_fps=run.steady_fps,
        )

    def _pipeline(self, spec: RowSpec) -> BenchRow | None:
        clip = self.clip_for(spec)
        loaded, weights = self._model(spec.model, spec.scale)
        started = time.perf_counter()
        try:
            up = Upscaler(spec.model, spec.scale, loaded=_fresh(loaded), device=self.device.type, backend=spec.backend)
        except BackendError as exc:
            log.warning("skipping %s on %s: %s", spec.model, spec.backend, exc)
            return None
        _reset_peak(self.device)
        tag = f"{spec.model.replace(':', '-')}{spec.scale}{spec.backend}"
        summary, batch = _run_pipeline(clip, self.out_dir, up, self.cfg, tag, started)
        iters = self.cfg.model_iters if clip == self.src else max(1, self.cfg.model_iters // 5)
        mfps = model_only_fps(up, self.width, self.height, min(batch, summary.frames_out), iters)
        return self._row(
            spec,
            clip,
            summary.frames_out,
            summary.seconds,
            backend=up.backend.name,
            precision=_dtype(up),
            weights=weights,
            batch=batch,
            model_fps=round(mfps, 2),
            gpu_peak_mib=_peak_mib(self.device),
            **_summary_fields(summary),
        )


_FRAME_COUNTS: dict[tuple[str, float], int] = {}


def count_frames_cached(path: Path) -> int:
    """:func:`count_frames`, once per file version (a row asks whether it stopped short of the clip)."""
    key = (str(path), path.stat().st_mtime)
    if key not in _FRAME_COUNTS:
        _FRAME_COUNTS[key] = count_frames(path)
    return _FRAME_COUNTS[key]


def bench_input(
    src: Path,
    cfg: BenchConfig,
    *,
    label: str | None = None,
    out_dir: Path | None = None,
    stages: Iterable[str] = STAGES,
    frames_for: Callable[[str, int], Path] | None = None,
    on_row: Callable[[BenchRow], None] | None = None,
) -> list[BenchRow]:
    """Every stage for every model x scale on one input file.

    ``frames_for(model, scale)`` may return a shorter clip for slow rows (srresnet on a CPU).
    """
    src = Path(src)

    def clip_for(spec: RowSpec) -> Path:
        return frames_for(spec.model, spec.scale) if frames_for and spec.model != "none" else src

    runner = BenchRunner(src, cfg, label=label, out_dir=out_dir, clip_for=clip_for)
    backends = list(cfg.backends or available_backends(runner.device.type))
    rows: list[BenchRow] = []
    for spec in row_specs(cfg, stages, backends):
        row = runner.run(spec)
        if row is None:
            continue
        rows.append(row)
        if on_row:
            on_row(row)
    add_ratios(rows)
    return rows


def _dtype(up: Any) -> str:
    from vidsr.backends import precision_of

    return precision_of(up.backend)


def _fresh(loaded: LoadedModel) -> LoadedModel:
    """A copy, because backends move modules to their device and dtype in place."""
    import copy

    return LoadedModel(
        loaded.spec, loaded.scale, copy.deepcopy(loaded.module).float().cpu(), loaded.weights, dict(loaded.metadata)
    )


def _naive_upscaler(loaded: LoadedModel, device: torch.device) -> Upscaler:
    """Plain eager FP32 PyTorch on the device: no TensorRT, no compile, no graphs, no tiling."""
    from vidsr.backends import TorchBackend

    up = Upscaler(
        loaded.spec.name, loaded.scale, loaded=_fresh(loaded), backend="torch-cpu", precision="fp32", tile_pixels=0
    )
    if device.type == "cuda":
        up.backend = TorchBackend(_fresh(loaded), device, torch.float32)
    return up


def pace(row: BenchRow, other: BenchRow) -> tuple[float, float]:
    """The two rows' speeds to compare: steady fps where both have it (start-up is reported on its
    own, and the issue's bar is the steady state), else end-to-end fps."""
    if row.steady_fps and other.steady_fps:
        return row.steady_fps, other.steady_fps
    return row.fps, other.fps


def _ratio(row: BenchRow, base: BenchRow | None, digits: int) -> float | None:
    if base is None:
        return None
    mine, theirs = pace(row, base)
    return round(mine / theirs, digits) if theirs else None


def add_ratios(rows: list[BenchRow]) -> None:
    """pipeline (and bicubic) speed / io_ceiling, / naive and / opencv, per input x scale (x model
    for naive); steady fps where both rows have it (:func:`pace`)."""
    ceilings = {(r.input, r.scale): r for r in rows if r.stage == "io_ceiling"}
    naive = {(r.input, r.scale, r.model): r for r in rows if r.stage == "naive"}
    opencv = {(r.input, r.scale): r for r in rows if r.stage == "opencv"}
    for r in rows:
        if r.stage not in ("pipeline", "bicubic"):
            continue
        r.ratio_vs_io_ceiling = _ratio(r, ceilings.get((r.input, r.scale)), 3)
        r.ratio_vs_naive = _ratio(r, naive.get((r.input, r.scale, r.model)), 2)
        if r.model.partition(":")[0] == "espcn":
            r.ratio_vs_opencv = _ratio(r, opencv.get((r.input, r.scale)), 2)


def bound_by(row: BenchRow) -> str:
    """The stage with the most seconds and its share of the row's wall time (``encode 92%``): what
    bounds it.  Stages overlap in threads, so the shares add up to more than 100%."""
    if not row.stage_seconds or not row.seconds:
        return ""
    stage, seconds = max(row.stage_seconds.items(), key=lambda item: item[1])
    return f"{stage} {seconds / row.seconds:.0%}"


# -- reporting -------------------------------------------------------------------------------
COLUMNS = (
    ("stage", "stage"),
    ("input", "input"),
    ("model", "model"),
    ("scale", "x"),
    ("backend", "backend"),
    ("precision", "precision"),
    ("weights", "weights"),
    ("batch", "batch"),
    ("frames", "frames"),
    ("fps", "end-to-end fps"),
    ("steady_fps", "steady fps"),
    ("startup_s", "startup s"),
    ("bound_by", "bound by"),
    ("model_fps", "model-only fps"),
    ("gpu_peak_mib", "GPU peak MiB"),
    ("ratio_vs_io_ceiling", "/ io_ceiling"),
    ("ratio_vs_naive", "/ naive"),
    ("ratio_vs_opencv", "/ opencv"),
    ("note", "note"),
)


def markdown_table(rows: list[BenchRow]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "| " + " | ".join("---" for _ in COLUMNS) + " |"
    lines = [head, rule]
    for r in rows:
        d = r.to_dict() | {"bound_by": bound_by(r)}
        cells = []
        for key, _ in COLUMNS:
            value = d[key]
            if key == "input":
                value = f"{value} ({r.width}x{r.height})"
            cells.append("–" if value in (None, "") else str(value).lstrip("; "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
