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
from vidsr.backends.int8 import cpu_has_vnni
from vidsr.backends.openvino import native_bf16
from vidsr.errors import BackendError, InputError, ModelError
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
            vout = out.add_stream("libx264", rate=vin.average_rate or Fraction(25))
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            vout.options = {"crf": "10", "preset": "veryfast"}
            for i, frame in enumerate(inp.decode(vin)):
                if i >= frames:
                    break
                small = frame.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
                small.pts = i
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

    def upscale_planes(self, batch: PlaneBatch, src: Any, dst: Any, g: OutputGeometry) -> PlaneBatch:
        s = self.scale

        def rep(p: torch.Tensor, h: int, w: int) -> torch.Tensor:
            a = p.numpy().repeat(s, axis=1).repeat(s, axis=2)[:, :h, :w]
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


def _run_pipeline(src: Path, out_dir: Path, up: Any, cfg: BenchConfig, tag: str) -> tuple[int, float, int]:
    dst = out_dir / f"{src.stem}.{tag}.mp4"
    batch = cfg.batch_size or (8 if up.device.type == "cuda" else 2)
    summary = upscale_video(src, dst, upscaler=up, encode=cfg.encode, overwrite=True, progress=False, batch_size=batch)
    dst.unlink(missing_ok=True)
    return summary.frames_out, summary.seconds, batch


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


def naive_run(src: Path, out_dir: Path, up: Upscaler | _OpenCVPeer, cfg: BenchConfig) -> tuple[int, float]:
    """Decode one frame, FP32 model on RGB at batch 1, encode it; repeat.  No threads, no overlap."""
    dst = out_dir / f"{src.stem}.naive.mp4"
    started = time.perf_counter()
    frames = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = None
        for frame in inp.decode(vin):
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
        if vout is not None:
            out.mux(vout.encode(None))
    seconds = time.perf_counter() - started
    dst.unlink(missing_ok=True)
    return frames, seconds


def available_backends(device: str) -> list[str]:
    """The backends that can run here: openvino and onnxruntime (when installed) and torch-cpu on a
    CPU; torch-cuda and tensorrt with a GPU."""
    if device == "cpu" or not torch.cuda.is_available():
        from vidsr.backends.onnxruntime import onnxruntime_available
        from vidsr.backends.openvino import openvino_available

        runtimes = [("openvino", openvino_available()), ("onnxruntime", onnxruntime_available())]
        return [name for name, here in runtimes if here] + ["torch-cpu"]
    names = ["torch-cuda"]
    from vidsr.backends.tensorrt import tensorrt_available

    if tensorrt_available():
        names.append("tensorrt")
    return names


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
    if not src.is_file():
        raise InputError(f"{src}: no such file")
    stages = tuple(stages)
    label = label or src.name
    out_dir = out_dir or src.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    width, height = _geometry(src)
    device = resolve_device(cfg.device)
    backends = list(cfg.backends or available_backends(device.type))
    rows: list[BenchRow] = []

    def emit(row: BenchRow) -> None:
        rows.append(row)
        if on_row:
            on_row(row)

    def base(stage: str, model: str, scale: int, clip: Path, frames: int, seconds: float, **kw: Any) -> BenchRow:
        return BenchRow(
            stage=stage,
            input=label,
            width=width,
            height=height,
            model=model,
            scale=scale,
            frames=frames,
            seconds=round(seconds, 3),
            fps=round(frames / seconds, 2) if seconds else 0.0,
            note=kw.pop("note", "") + ("" if clip == src else f"; slow row: {frames} frame{'s' * (frames != 1)} only"),
            **kw,
        )

    for scale in cfg.scales:
        if "io_ceiling" in stages:
            frames, seconds, batch = _run_pipeline(src, out_dir, _NearestRepeat(scale), cfg, f"io{scale}")
            emit(
                base(
                    "io_ceiling",
                    "none",
                    scale,
                    src,
                    frames,
                    seconds,
                    backend="cpu",
                    precision="uint8",
                    weights="-",
                    batch=batch,
                    note="decode + pixel repeat + encode",
                )
            )
        if "bicubic" in stages:
            up = Upscaler("bicubic", scale, device=device.type)
            _reset_peak(device)
            frames, seconds, batch = _run_pipeline(src, out_dir, up, cfg, f"bicubic{scale}")
            emit(
                base(
                    "bicubic",
                    "bicubic",
                    scale,
                    src,
                    frames,
                    seconds,
                    backend=up.backend.name,
                    precision=_dtype(up),
                    weights="-",
                    batch=batch,
                    gpu_peak_mib=_peak_mib(device),
                )
            )
        for model in cfg.models:
            clip = frames_for(model, scale) if frames_for else src
            # "espcn:paper" names a weights set; plain "espcn" runs the default one.
            name, _, weights_set = model.partition(":")
            loaded, weights = load_for_bench(name, scale, weights_set or cfg.weights.get(name))
            if "naive" in stages:
                up = _naive_upscaler(loaded, device)
                _reset_peak(device)
                frames, seconds = naive_run(clip, out_dir, up, cfg)
                emit(
                    base(
                        "naive",
                        model,
                        scale,
                        clip,
                        frames,
                        seconds,
                        backend=f"torch-{device.type} eager",
                        precision="float32",
                        weights=weights,
                        batch=1,
                        gpu_peak_mib=_peak_mib(device),
                    )
                )
            if "opencv" in stages and name == "espcn":
                from vidsr.bench_cpu import opencv_espcn

                sr, why = opencv_espcn(scale, threads=torch.get_num_threads())
                if sr is None:
                    log.warning("no OpenCV peer row: %s", why)
                else:
                    frames, seconds = naive_run(clip, out_dir, _OpenCVPeer(sr), cfg)
                    emit(
                        base(
                            "opencv",
                            "opencv-espcn",
                            scale,
                            clip,
                            frames,
                            seconds,
                            backend="opencv dnn",
                            precision="float32",
                            weights="TF-ESPCN",
                            batch=1,
                            note="dnn_superres ESPCN from ../shared/peers, frame by frame",
                        )
                    )
            if "pipeline" not in stages:
                continue
            for name in backends:
                try:
                    up = Upscaler(model, scale, loaded=_fresh(loaded), device=device.type, backend=name)
                except BackendError as exc:
                    log.warning("skipping %s on %s: %s", model, name, exc)
                    continue
                _reset_peak(device)
                frames, seconds, batch = _run_pipeline(clip, out_dir, up, cfg, f"{model}{scale}{name}")
                iters = cfg.model_iters if clip == src else max(1, cfg.model_iters // 5)
                mfps = model_only_fps(up, width, height, min(batch, frames), iters)
                emit(
                    base(
                        "pipeline",
                        model,
                        scale,
                        clip,
                        frames,
                        seconds,
                        backend=up.backend.name,
                        precision=_dtype(up),
                        weights=weights,
                        batch=batch,
                        model_fps=round(mfps, 2),
                        gpu_peak_mib=_peak_mib(device),
                    )
                )
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


def add_ratios(rows: list[BenchRow]) -> None:
    """pipeline fps / io_ceiling fps and / naive fps, per input x scale (x model for naive)."""
    ceilings = {(r.input, r.scale): r.fps for r in rows if r.stage == "io_ceiling"}
    naive = {(r.input, r.scale, r.model): r.fps for r in rows if r.stage == "naive"}
    opencv = {(r.input, r.scale): r.fps for r in rows if r.stage == "opencv"}
    for r in rows:
        if r.stage not in ("pipeline", "bicubic"):
            continue
        ceiling = ceilings.get((r.input, r.scale))
        if ceiling:
            r.ratio_vs_io_ceiling = round(r.fps / ceiling, 3)
        base = naive.get((r.input, r.scale, r.model))
        if base:
            r.ratio_vs_naive = round(r.fps / base, 2)
        peer = opencv.get((r.input, r.scale)) if r.model.partition(":")[0] == "espcn" else None
        if peer:
            r.ratio_vs_opencv = round(r.fps / peer, 2)


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
        d = r.to_dict()
        cells = []
        for key, _ in COLUMNS:
            value = d[key]
            if key == "input":
                value = f"{value} ({r.width}x{r.height})"
            cells.append("–" if value in (None, "") else str(value).lstrip("; "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
