"""The first run on a GPU machine, in one command: does every GPU path work, and how fast is it?

    make gpu-check                          # or, without make or a venv (offline GPU hosts):
    python benchmarks/gpu_check.py --out $OUT
    python benchmarks/gpu_check.py --plan-only                      # the plan for the budget, no GPU needed
    python benchmarks/gpu_check.py --device cpu --frames 4 --sizes 64x36x4,96x54x2,128x72x2   # a CPU dry run

On a machine without an NVIDIA GPU it says so and exits 0.  On one with a GPU it finishes within
its budget (default 450 s, counted from the process's start, so under 8 minutes with everything):

1. reports the environment (GPU, torch/CUDA, TensorRT, PyAV, onnxruntime);
2. runs the GPU tests: ``pytest -m "cuda or tensorrt"`` (at most 120 s);
3. builds (or loads) the TensorRT engines for espcn x4 and srresnet x4 where TensorRT is installed;
4. compares every GPU backend (torch-cuda fp16; tensorrt fp16 where installed) with torch-cpu fp32
   on real frames of vtest.avi: PSNR between them must be at least 45 dB;
5. checks NVDEC (``--hwdec cuda``: frames and colour tags equal to software decoding) and NVENC;
6. runs ``benchmarks/gpu_bench.py`` until the deadline: a plan of rows (480x270 x4, 960x540 x2,
   1920x1080 x2; io_ceiling, bicubic, naive and pipeline for espcn and srresnet) and extras (CLI
   start-up cold and warm, libx264 alone at 4K, torch.compile against eager) that keeps what fits
   and drops the rest by plan, in one process with a hard timeout around it;

and prints one pass/fail table with the figures.  Everything to bring back lands in ``--out``, six
files: gpu_check.md, gpu_check.json, gpu_check.log, bench.log, RESULTS.md and results.json (work
files go to ``--work``).  Exit 1 if anything failed.  ``--write-results`` merges the benchmark into
``benchmarks/RESULTS.md`` and ``results.json`` (elsewhere, from a fetched ``$OUT``:
``python benchmarks/gpu_bench.py --merge OUT/results.json``).  Needs no network and no ``make setup``:
torch, PyAV (a wheel on PYTHONPATH is fine) and, for step 2, pytest.
"""

from __future__ import annotations

import argparse
import faulthandler
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
# Under 8 minutes for everything, counted from the process's start: interpreter, imports, CUDA.
DEFAULT_BUDGET_S = 450
PYTEST_MAX_S = 120.0
WRITE_UP_S = 10.0  # kept back from the benchmark for the last table and the exit
# The hard net: a process still running this long after its budget dumps its threads' stacks into
# gpu_check.log's stream and exits, whatever it is stuck in (a wedged CUDA call cannot be interrupted).
HARD_NET_GRACE_S = 25.0
DATA = Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data"))
OUT_FILES = ("gpu_check.md", "gpu_check.json", "gpu_check.log", "bench.log", "RESULTS.md", "results.json")


@dataclass
class Check:
    name: str
    status: str  # PASS, FAIL or SKIP
    figures: str
    seconds: float


class Checks:
    """Runs named checks against one deadline; a check that raises is a FAIL with the reason.
    ``on_result`` hears every result as it comes (the report is rewritten each time, so a hard
    timeout still leaves it)."""

    def __init__(
        self,
        budget_s: float,
        log_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_result: Callable[[list[Check]], None] | None = None,
    ):
        self.clock = clock
        self.deadline = clock() + budget_s
        self.results: list[Check] = []
        self.log_path = log_path
        self.on_result = on_result

    def left(self) -> float:
        return self.deadline - self.clock()

    def record(self, check: Check) -> None:
        self.results.append(check)
        print(f"gpu-check: {check.status:4} {check.name}: {check.figures}", flush=True)
        if self.on_result:
            self.on_result(self.results)

    def run(self, name: str, fn: Callable[[], tuple[str, str]], *, needs_s: float = 10) -> str:
        """``fn() -> (status, figures)``; skipped when fewer than ``needs_s`` seconds are left."""
        if self.left() < needs_s:
            self.record(Check(name, "SKIP", f"out of time ({self.left():.0f} s left)", 0.0))
            return "SKIP"
        started = self.clock()
        try:
            status, figures = fn()
        except Exception as exc:
            status, figures = "FAIL", f"{type(exc).__name__}: {exc}"
            self.log(f"== {name}\n{traceback.format_exc()}")
        self.record(Check(name, status, figures, round(self.clock() - started, 1)))
        return status

    def log(self, text: str) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(text + "\n")


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
        f"{props.name} x{torch.cuda.device_count()} ({props.total_memory / 2**30:.0f} GiB), {os.cpu_count()} CPU cores",
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


def gpu_tests(timeout_s: float, checks: Checks | None = None) -> tuple[str, str]:
    """The GPU-marked tests, at most ``timeout_s``; their output goes to the log."""
    try:
        import pytest  # noqa: F401 - only whether it is there
    except ImportError:
        return "SKIP", "pytest not installed"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda or tensorrt", "-q", "-rs", "-p", "no:cacheprovider", "tests"]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        if checks is not None:
            partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            checks.log(f"== pytest, cut at {timeout_s:.0f} s\n{partial}")
        return "FAIL", f"did not finish in {timeout_s:.0f} s"
    if checks is not None:
        checks.log(f"== pytest (exit {r.returncode})\n{r.stdout}{r.stderr}")
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


def equivalence(model: str, backend_name: str) -> tuple[str, str]:
    """The backend as ``vidsr upscale`` runs it (torch-cuda: fp16, CUDA graphs, not compiled) against
    torch-cpu fp32 on real frames."""
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

        backend = TorchCudaBackend(loaded, device, torch.float16)
    with torch.inference_mode():
        backend(x.to(device, backend.dtype))  # the first call captures a CUDA graph (torch-cuda)
        got = backend(x.to(device, backend.dtype)).float().clamp(0, 1).cpu()  # the second replays it
    db = psnr(got, expected)
    frames = f"{x.shape[0]} vtest.avi frames {x.shape[-1]}x{x.shape[-2]}"
    figures = f"PSNR {db:.1f} dB vs torch-cpu fp32 ({frames}, {weights} weights, fp16)"
    return ("PASS" if db >= PSNR_MIN_DB else "FAIL"), figures


def hwdec_check(work: Path) -> tuple[str, str]:
    import av
    import numpy as np

    from vidsr.backends.hwvideo import decode_hwaccel
    from vidsr.bench import make_bench_input

    hw = decode_hwaccel("auto")
    if hw is None:
        return "SKIP", "no CUDA hwaccel in this FFmpeg/PyAV build: --hwdec cuda decodes in software"
    path = DATA / "video" / "box.mp4"  # H.264, which NVDEC decodes
    if not path.is_file():
        # A lease's 64 MiB may hold vtest.avi alone: an H.264 clip made from it serves as well.
        source = DATA / "video" / "vtest.avi"
        if not source.is_file():
            return "SKIP", f"neither {path} nor {source} found (set VIDSR_DATA)"
        path = make_bench_input(source, work / "nvdec_check.mp4", 8, (768, 576))
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


def bench_command(args: argparse.Namespace, until: float | None, *, plan_only: bool = False) -> list[str]:
    """``benchmarks/gpu_bench.py`` with this run's deadline, sizes, frames, device and folders."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--out", str(args.out)]
    cmd += ["--work", str(args.work / "bench"), "--src", str(DATA / "video" / "vtest.avi"), "--device", args.device]
    cmd += ["--frames", str(args.frames)] if args.frames else []
    cmd += ["--sizes", args.sizes] if args.sizes else []
    if plan_only:
        return [*cmd, "--plan-only", "--budget", f"{args.bench_budget:.0f}"]
    return [*cmd, "--until", f"{until:.1f}"]


def benchmark(args: argparse.Namespace, checks: Checks) -> tuple[str, str]:
    """The planned benchmark in one subprocess, until the deadline; killed if it overruns (what it
    measured is already in results.json: it rewrites it after every step)."""
    until = time.time() + checks.left() - WRITE_UP_S
    timeout = checks.left() - WRITE_UP_S + HARD_NET_GRACE_S / 2
    results = args.out / "results.json"
    results.unlink(missing_ok=True)
    with open(args.out / "bench.log", "w") as log_file:
        try:
            r = subprocess.run(
                bench_command(args, until), cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, timeout=timeout
            )
            cut = ""
        except subprocess.TimeoutExpired:
            r, cut = None, f"killed after {timeout:.0f} s (past its deadline); "
    if not results.is_file():
        return "FAIL", f"{cut}no results.json; see {args.out / 'bench.log'}"
    payload = json.loads(results.read_text())
    if r is not None and r.returncode != 0:
        return "FAIL", f"exit {r.returncode}; see {args.out / 'bench.log'}; " + summarise(payload)
    if args.write_results:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import gpu_bench

        gpu_bench.merge(results, args.write_results)
    failed = [o["key"] for o in payload["plan"] if o["status"].startswith("failed")]
    status = "FAIL" if cut or failed else "PASS"
    return status, cut + (f"failed: {', '.join(failed)}; " if failed else "") + summarise(payload)


def summarise(payload: dict) -> str:
    """Rows that ran and were dropped, then each pipeline row of the default model: steady fps and
    its ratio to io_ceiling."""
    plan = payload.get("plan", [])
    ran = sum(o["status"] == "ran" for o in plan)
    dropped = [o["key"] for o in plan if o["status"].startswith("dropped")]
    parts = [f"{ran} steps ran, {len(dropped)} dropped by plan" + (f" ({', '.join(dropped)})" if dropped else "")]
    for row in payload.get("rows", []):
        if row["stage"] == "pipeline" and row["model"] == "espcn":
            steady = row.get("steady_fps") or row["fps"]
            ratio = row.get("ratio_vs_io_ceiling")
            vs = f" = {ratio} x io_ceiling" if ratio is not None else ""
            parts.append(f"espcn {row['input']} x{row['scale']} {row['backend']} steady {steady:.0f} fps{vs}")
    return "; ".join(parts)


# Seconds each check is planned at (the benchmark gets what is left); TensorRT's only where installed.
CHECK_ESTIMATES = (
    ("start-up: interpreter, torch, CUDA", 12.0),
    ("environment", 2.0),
    ('pytest -m "cuda or tensorrt"', 45.0),
    ("TensorRT engines espcn, srresnet x4 (where installed)", 0.0),
    ("torch-cuda fp16 vs torch-cpu fp32, espcn and srresnet x4", 20.0),
    ("NVDEC, NVENC", 5.0),
    ("benchmark start-up: a subprocess, torch, CUDA warm-up", 12.0),
)


def check_plan(budget_s: float, tensorrt: bool) -> tuple[list[tuple[str, float]], float]:
    """The checks with their planned seconds, and the seconds left for the benchmark's plan."""
    plan = [(name, 240.0 if tensorrt and name.startswith("TensorRT") else est) for name, est in CHECK_ESTIMATES]
    return plan, budget_s - sum(est for _, est in plan) - WRITE_UP_S


def plan_only(args: argparse.Namespace) -> int:
    """Print what a run with this budget would do: the checks, then the benchmark's own plan."""
    from vidsr.backends.tensorrt import tensorrt_available

    plan, args.bench_budget = check_plan(args.budget, tensorrt_available())
    print(f"gpu-check plan for {args.budget:.0f} s (the hard net at {args.budget + HARD_NET_GRACE_S:.0f} s):")
    for name, est in plan:
        print(f"  {est:6.1f} s  {name}")
    print(f"  {WRITE_UP_S:6.1f} s  the table and the exit\n  {args.bench_budget:6.1f} s  the benchmark:\n", flush=True)
    return subprocess.run(bench_command(args, None, plan_only=True), cwd=ROOT).returncode


def write_report(out: Path, checks: list[Check]) -> None:
    text = table(checks)
    (out / "gpu_check.md").write_text(text + "\n")
    payload = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "checks": [asdict(c) for c in checks]}
    (out / "gpu_check.json").write_text(json.dumps(payload, indent=2) + "\n")


def run_checks(args: argparse.Namespace, checks: Checks, dry_run: bool) -> None:
    """Every check in order; on a CPU dry run the GPU ones are skipped and the benchmark runs on the CPU."""
    skip = (lambda: ("SKIP", "a CPU dry run (--device cpu)")) if dry_run else None
    checks.run("environment", skip or environment, needs_s=1)
    pytest_s = min(PYTEST_MAX_S, checks.left() - 240)
    checks.run('pytest -m "cuda or tensorrt"', skip or (lambda: gpu_tests(pytest_s, checks)), needs_s=60)
    from vidsr.backends.tensorrt import tensorrt_available

    if tensorrt_available():
        for model in ("espcn", "srresnet"):
            checks.run(f"TensorRT engine {model} x4", skip or (lambda m=model: build_engine_check(m)), needs_s=60)
    backends = ["torch-cuda"] + (["tensorrt"] if tensorrt_available() else [])
    for model in ("espcn", "srresnet"):
        for backend in backends:
            label = f"{backend} vs torch-cpu, {model} x4"
            checks.run(label, skip or (lambda m=model, b=backend: equivalence(m, b)), needs_s=30)
    checks.run("NVDEC (--hwdec cuda)", skip or (lambda: hwdec_check(args.work)), needs_s=5)
    checks.run("NVENC (h264_nvenc)", skip or nvenc_check, needs_s=5)
    checks.run("benchmarks/gpu_bench.py (planned)", lambda: benchmark(args, checks), needs_s=60)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("/tmp/vidsr-gpu-check"),
        help=f"what to bring back, {len(OUT_FILES)} files: {', '.join(OUT_FILES)}",
    )
    p.add_argument("--work", type=Path, default=Path("/tmp/vidsr-gpu-work"), help="clips, outputs, caches")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for everything, from start-up")
    p.add_argument("--plan-only", action="store_true", help="print the plan for --budget and exit (no GPU needed)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a dry run of the benchmark")
    p.add_argument("--frames", type=int, help="frames a benchmark row [gpu_bench.py's: 90]")
    p.add_argument("--sizes", help="benchmark inputs WxHxSCALE,... [480x270x4,960x540x2,1920x1080x2]")
    p.add_argument(
        "--write-results",
        "--bench-out",
        nargs="?",
        type=Path,
        const=ROOT / "benchmarks",
        help="merge the benchmark into DIR's RESULTS.md and results.json [benchmarks/]",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    """``started``: the :func:`time.perf_counter` time the budget counts from (the script passes its
    process's start, so interpreter start-up and imports are in the budget) [now]."""
    args = parse_args(argv)
    if args.plan_only:
        return plan_only(args)
    dry_run = args.device == "cpu"
    reason = None if dry_run else no_gpu_reason()
    if reason is not None:
        print(f"gpu-check: no NVIDIA GPU found: {reason}; nothing to check on this machine.")
        # A GPU that PyTorch cannot use is a broken GPU machine, not a CPU one.
        return 1 if reason.startswith("nvidia-smi lists") else 0

    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "gpu_check.log"
    log_path.write_text("")
    started = time.perf_counter() if started is None else started
    budget = args.budget - (time.perf_counter() - started)
    with open(log_path, "a") as net_log:
        faulthandler.dump_traceback_later(budget + HARD_NET_GRACE_S, exit=True, file=net_log)
        checks = Checks(budget, log_path, on_result=lambda results: write_report(args.out, results))
        run_checks(args, checks, dry_run)
        faulthandler.cancel_dump_traceback_later()

    print("\n" + table(checks.results))
    write_report(args.out, checks.results)
    failed = [c.name for c in checks.results if c.status == "FAIL"]
    print(
        f"\ngpu-check: {'FAILED: ' + ', '.join(failed) if failed else 'all checks passed or skipped'} "
        f"in {time.perf_counter() - started:.0f} s (bring back: {args.out})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    from vidsr.stages import process_started

    sys.exit(main(started=process_started()))
