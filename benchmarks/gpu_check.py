"""The first run on a GPU machine, in one command: does every GPU path work, and how fast is it?

    make gpu-check                     # or, without make or a venv (offline GPU hosts):
    python benchmarks/gpu_check.py     # python -m benchmarks.gpu_check works too

On a machine without an NVIDIA GPU it says so and exits 0.  On one with a GPU, within a
time budget (default 9.5 minutes), it:

1. reports the environment (GPU, torch/CUDA, TensorRT, PyAV, onnxruntime);
2. runs the GPU tests: ``pytest -m "cuda or tensorrt"``;
3. builds (or loads) the TensorRT engines for espcn x4 and srresnet x4 in the engine cache
   (srresnet has no shipped weights yet: random weights, seeded, which is all speed and
   equivalence need);
4. compares every GPU backend (torch-cuda fp16, tensorrt fp16) with torch-cpu fp32 on real
   frames of vtest.avi: PSNR between them must be at least 45 dB;
5. checks NVDEC (``--hwdec cuda``: frames and colour tags equal to software decoding) and NVENC;
6. runs ``benchmarks/run.py --frames 120`` with the time that is left;

and prints one pass/fail table with the figures (also ``<out>/gpu_check.json``).  Exit 1
if anything failed.  Needs no network and no ``make setup``: torch, PyAV (a wheel on
PYTHONPATH is fine) and, for step 2, pytest.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout's vidsr, installed or not

PSNR_MIN_DB = 45.0
DEFAULT_BUDGET_S = 570  # under 10 minutes with start-up and the table
DATA = Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data"))


@dataclass
class Check:
    name: str
    status: str  # PASS, FAIL or SKIP
    figures: str
    seconds: float


class Checks:
    """Runs named checks against one deadline; a check that raises is a FAIL with the reason."""

    def __init__(self, budget_s: float, log_path: Path | None = None, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.deadline = clock() + budget_s
        self.results: list[Check] = []
        self.log_path = log_path

    def left(self) -> float:
        return self.deadline - self.clock()

    def run(self, name: str, fn: Callable[[], tuple[str, str]], *, needs_s: float = 10) -> str:
        """``fn() -> (status, figures)``; skipped when fewer than ``needs_s`` seconds are left."""
        if self.left() < needs_s:
            self.results.append(Check(name, "SKIP", f"out of time ({self.left():.0f} s left)", 0.0))
            return "SKIP"
        started = self.clock()
        try:
            status, figures = fn()
        except Exception as exc:
            status, figures = "FAIL", f"{type(exc).__name__}: {exc}"
            if self.log_path is not None:
                with open(self.log_path, "a") as f:
                    f.write(f"== {name}\n{traceback.format_exc()}\n")
        self.results.append(Check(name, status, figures, round(self.clock() - started, 1)))
        print(f"gpu-check: {status:4} {name}: {figures}", flush=True)
        return status


def table(checks: list[Check]) -> str:
    lines = ["| check | result | figures | s |", "| --- | --- | --- | ---: |"]
    lines += [f"| {c.name} | {c.status} | {c.figures.replace('|', '/')} | {c.seconds:.1f} |" for c in checks]
    return "\n".join(lines)


def psnr(a, b, peak: float = 1.0) -> float:
    """PSNR in dB between two tensors of values in [0, peak] (inf when equal)."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


# -- the checks ------------------------------------------------------------------------------
def no_gpu_reason() -> str | None:
    """None when PyTorch sees a CUDA GPU, else why not (and whether nvidia-smi disagrees)."""
    try:
        import torch
    except ImportError as exc:
        return f"PyTorch is not importable ({exc})"
    if torch.cuda.is_available():
        return None
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout.strip()
        if out.startswith("GPU"):
            return f"nvidia-smi lists {out.splitlines()[0]!r} but PyTorch {torch.__version__} sees no CUDA GPU"
    return f"torch.cuda.is_available() is False (PyTorch {torch.__version__}) and there is no nvidia-smi"


def environment() -> tuple[str, str]:
    import av
    import torch

    from vidsr.backends.tensorrt import tensorrt_available

    props = torch.cuda.get_device_properties(0)
    parts = [
        f"{props.name} x{torch.cuda.device_count()} ({props.total_memory / 2**30:.0f} GiB)",
        f"torch {torch.__version__} CUDA {torch.version.cuda}",
        f"PyAV {av.__version__}",
    ]
    if tensorrt_available():
        import tensorrt

        parts.append(f"TensorRT {tensorrt.__version__}")
    else:
        parts.append("TensorRT absent")
    try:
        import onnxruntime

        parts.append(f"onnxruntime {onnxruntime.__version__}")
    except ImportError:
        parts.append("onnxruntime absent")
    return "PASS", ", ".join(parts)


def gpu_tests(timeout_s: float) -> tuple[str, str]:
    try:
        import pytest  # noqa: F401 - only whether it is there
    except ImportError:
        return "SKIP", "pytest not installed"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda or tensorrt", "-q", "-p", "no:cacheprovider", "tests"]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return "FAIL", f"did not finish in {timeout_s:.0f} s"
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else r.stderr.strip()[-200:]
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    detail = f"{summary}" + (f"; {'; '.join(failures[:3])}" if failures else "")
    return ("PASS" if r.returncode == 0 else "FAIL"), detail


def build_engine_check(model: str) -> tuple[str, str]:
    from vidsr.backends.tensorrt import prepare_engine, tensorrt_available
    from vidsr.bench import load_for_bench

    if not tensorrt_available():
        return "SKIP", "TensorRT not installed (pip install 'vidsr[tensorrt]' or docker/)"
    loaded, weights = load_for_bench(model, 4)
    started = time.perf_counter()
    prepared = prepare_engine(loaded)
    how = "built" if prepared.built else "from the cache"
    return "PASS", f"{how} in {time.perf_counter() - started:.0f} s, {weights} weights: {prepared.paths.engine.name}"


def real_frames(model_channels: int, count: int, crop: tuple[int, int] | None):
    """``count`` frames of vtest.avi as model input in [0, 1]: luma (1 channel) or RGB, optionally cropped."""
    import av
    import numpy as np
    import torch

    path = DATA / "video" / "vtest.avi"
    if not path.is_file():
        raise FileNotFoundError(f"{path} (set VIDSR_DATA)")
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if model_channels == 1:
                plane = frame.to_ndarray(format="gray")[None]  # full-range luma of the decoded frame
            else:
                plane = frame.to_ndarray(format="rgb24").transpose(2, 0, 1)
            if crop is not None:
                plane = plane[:, : crop[0], : crop[1]]
            frames.append(np.ascontiguousarray(plane))
            if len(frames) == count:
                break
    return torch.from_numpy(np.stack(frames)).float() / 255


def equivalence(model: str, backend_name: str, compile: bool) -> tuple[str, str]:
    import torch

    from vidsr.backends import TorchBackend
    from vidsr.bench import load_for_bench

    loaded, weights = load_for_bench(model, 4)
    x = real_frames(loaded.spec.channels, 2, None if model == "espcn" else (144, 256))
    reference = TorchBackend(load_for_bench(model, 4)[0], torch.device("cpu"), torch.float32)
    with torch.inference_mode():
        expected = reference(x).clamp(0, 1)
    device = torch.device("cuda")
    if backend_name == "tensorrt":
        from vidsr.backends.tensorrt import TensorRTBackend, tensorrt_available

        if not tensorrt_available():
            return "SKIP", "TensorRT not installed"
        backend = TensorRTBackend(loaded, device, precision="fp16")
    else:
        from vidsr.backends.torch_cuda import TorchCudaBackend

        backend = TorchCudaBackend(loaded, device, torch.float16, compile=compile)
    with torch.inference_mode():
        backend(x.to(device, backend.dtype))  # the first call captures a CUDA graph (torch-cuda)
        got = backend(x.to(device, backend.dtype)).float().clamp(0, 1).cpu()  # the second replays it
    db = psnr(got, expected)
    frames = f"{x.shape[0]} vtest.avi frames {x.shape[-1]}x{x.shape[-2]}"
    figures = f"PSNR {db:.1f} dB vs torch-cpu fp32 ({frames}, {weights} weights, fp16)"
    return ("PASS" if db >= PSNR_MIN_DB else "FAIL"), figures


def hwdec_check() -> tuple[str, str]:
    import av
    import numpy as np

    from vidsr.backends.hwvideo import decode_hwaccel

    hw = decode_hwaccel("auto")
    if hw is None:
        return "SKIP", "no CUDA hwaccel in this FFmpeg/PyAV build: --hwdec cuda decodes in software"
    path = DATA / "video" / "box.mp4"  # H.264, which NVDEC decodes
    if not path.is_file():
        return "SKIP", f"{path} not found (set VIDSR_DATA)"
    with av.open(str(path)) as soft, av.open(str(path), hwaccel=hw) as hard:
        a = next(soft.decode(video=0))
        b = next(hard.decode(video=0))
    tags_a = (a.colorspace, a.color_range, a.color_primaries, a.color_trc)
    tags_b = (b.colorspace, b.color_range, b.color_primaries, b.color_trc)
    diff = int(np.abs(a.to_ndarray(format="gray").astype(int) - b.to_ndarray(format="gray").astype(int)).max())
    ok = tags_a == tags_b and diff <= 2
    return (
        "PASS" if ok else "FAIL"
    ), f"{b.format.name} frames; colour tags {tags_b} vs software {tags_a}; max Y diff {diff}"


def nvenc_check() -> tuple[str, str]:
    from vidsr.backends.hwvideo import check_encoder
    from vidsr.errors import BackendError

    try:
        check_encoder("h264_nvenc")
    except BackendError as exc:
        return "SKIP", f"h264_nvenc unavailable: {exc}"
    return "PASS", "h264_nvenc opens"


def benchmark(args: argparse.Namespace, timeout_s: float) -> tuple[str, str]:
    out = args.bench_out or args.out / "bench"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "run.py"),
        "--frames",
        str(args.frames),
        "--src",
        str(DATA / "video" / "vtest.avi"),
        "--out",
        str(out),
        "--work",
        str(args.out / "bench-work"),
    ]
    with open(args.out / "bench.log", "w") as log_file:
        try:
            r = subprocess.run(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return "FAIL", f"did not finish in {timeout_s:.0f} s (partial output: {args.out / 'bench.log'})"
    if r.returncode != 0:
        return "FAIL", f"exit {r.returncode}; see {args.out / 'bench.log'}"
    rows = json.loads((out / "results.json").read_text())["rows"]
    return "PASS", f"{len(rows)} rows in {out / 'RESULTS.md'}; " + summarise(rows)


def summarise(rows: list[dict]) -> str:
    """The best x4 pipeline fps per model on 480x270, with model-only fps where measured."""
    best: dict[str, dict] = {}
    for row in rows:
        wanted = row["stage"] == "pipeline" and row["scale"] == 4 and "480x270" in row["input"]
        if wanted and (row["model"] not in best or row["fps"] > best[row["model"]]["fps"]):
            best[row["model"]] = row
    parts = []
    for model, row in sorted(best.items()):
        only = f", model-only {row['model_fps']:.0f}" if row.get("model_fps") else ""
        parts.append(f"{model} x4 480x270 {row['backend']} {row['fps']:.0f} fps{only}")
    return "; ".join(parts) or "no x4 480x270 pipeline rows"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("/tmp/vidsr-gpu-check"), help="logs, table and work files")
    p.add_argument(
        "--bench-out",
        type=Path,
        help="where run.py writes results [default: OUT/bench]; "
        "benchmarks/ updates the repository's RESULTS.md and results.json",
    )
    p.add_argument("--frames", type=int, default=120, help="frames per benchmark row")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for all checks")
    p.add_argument("--no-compile", action="store_true", help="torch-cuda without torch.compile")
    args = p.parse_args(argv)

    reason = no_gpu_reason()
    if reason is not None:
        print(f"gpu-check: no NVIDIA GPU found: {reason}; nothing to check on this machine.")
        # A GPU that PyTorch cannot use is a broken GPU machine, not a CPU one.
        return 1 if reason.startswith("nvidia-smi lists") else 0

    args.out.mkdir(parents=True, exist_ok=True)
    checks = Checks(args.budget, args.out / "gpu_check.log")
    checks.run("environment", environment, needs_s=1)
    checks.run('pytest -m "cuda or tensorrt"', lambda: gpu_tests(min(180.0, checks.left() - 240)), needs_s=60)
    for model in ("espcn", "srresnet"):
        checks.run(f"TensorRT engine {model} x4", lambda m=model: build_engine_check(m), needs_s=60)
    for model in ("espcn", "srresnet"):
        for backend in ("torch-cuda", "tensorrt"):
            compile = not args.no_compile and model == "espcn"  # srresnet's max-autotune takes minutes
            label = f"{backend}{' (compiled)' if backend == 'torch-cuda' and compile else ''} vs torch-cpu, {model} x4"
            checks.run(label, lambda m=model, b=backend, c=compile: equivalence(m, b, c), needs_s=30)
    checks.run("NVDEC (--hwdec cuda)", hwdec_check, needs_s=5)
    checks.run("NVENC (h264_nvenc)", nvenc_check, needs_s=5)
    checks.run(f"benchmarks/run.py --frames {args.frames}", lambda: benchmark(args, checks.left() - 5), needs_s=60)

    text = table(checks.results)
    print("\n" + text)
    (args.out / "gpu_check.md").write_text(text + "\n")
    payload = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "checks": [asdict(c) for c in checks.results],
    }
    (args.out / "gpu_check.json").write_text(json.dumps(payload, indent=2) + "\n")
    failed = [c.name for c in checks.results if c.status == "FAIL"]
    print(
        f"\ngpu-check: {'FAILED: ' + ', '.join(failed) if failed else 'all checks passed or skipped'} "
        f"(details: {args.out})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
