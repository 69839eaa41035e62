"""Where `vidsr upscale`'s start-up goes, in fresh processes: a probe for the warm start-up bar.

    python benchmarks/startup_probe.py CLIP                 # on a GPU host (about 100 s at 1080p)
    python benchmarks/startup_probe.py CLIP --warm-runs 2   # shorter; works on a CPU too (CUDA parts skip)

Prints, and writes to ``--out`` (``startup_probe.txt``, ``importtime.txt``):

1. whether Python keeps PyTorch's bytecode here (``vidsr.bytecode``);
2. ``import torch`` and CUDA's set-up in a bare interpreter (no kept bytecode), twice;
3. ``vidsr upscale CLIP -s 2 --json`` on a fresh engine dir: once cold, ``--warm-runs`` times warm,
   once warm with ``VIDSR_BYTECODE_CACHE=0``, on CUDA ``--warm-runs`` times warm with
   ``VIDSR_CUDA_SETUP=0`` (no early context and cuDNN: ``vidsr.cuda_setup``'s A/B), ``--warm-runs``
   times with ``-m bicubic``, then once
   under ``-X importtime`` (``PYTHONPROFILEIMPORTTIME=1``; its import log to ``importtime.txt``);
   each with ``startup_s`` and its phases (model ready, input open, first frame), and the warm
   runs' median;
4. on CUDA, the default model's first call at the clip's size and batch 8, in a fresh process for
   each of cuDNN autotuning on/off and CUDA graphs on/off (what the first frame waits for).

The H200 figures in the README's GPU throughput section (2026-12-04) came from this probe's steps.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout's vidsr, installed or not

from vidsr.bench_gpu import NO_EARLY_CUDA_ENV, cli_env, cli_upscale  # noqa: E402
from vidsr.cuda_setup import SWITCH_ENV  # noqa: E402

IMPORT_TORCH = "import time; t = time.perf_counter(); import torch; print(f'{time.perf_counter() - t:.2f}')"
CUDA_SETUP = (
    "import time; import torch; t = time.perf_counter(); torch.zeros(1, device='cuda'); "
    "torch.cuda.synchronize(); print(f'{time.perf_counter() - t:.2f}')"
)
FIRST_CALL = r"""
import sys, time
import torch
from vidsr.upscaler import Upscaler
height, width, autotune, graphs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
up = Upscaler("espcn", 2, device="cuda")
torch.backends.cudnn.benchmark = autotune
if not graphs:
    up.backend.graphs = None
x = torch.rand(8, 1, height, width, device="cuda")
torch.cuda.synchronize()
t = time.perf_counter(); up.run_model(x); torch.cuda.synchronize(); first = time.perf_counter() - t
t = time.perf_counter()
for _ in range(10):
    up.run_model(x)
torch.cuda.synchronize()
print(f"first call {first:.3f} s, then {80 / (time.perf_counter() - t):.0f} fps")
"""


class Probe:
    def __init__(self, out: Path, engines: Path, timeout_s: float = 600) -> None:
        self.out, self.engines, self.timeout_s = out, engines, timeout_s
        self.log = (out / "startup_probe.txt").open("w")

    def say(self, *parts: object) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        print(line, file=self.log, flush=True)

    def python(self, code: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-c", code, *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=cli_env(self.engines), timeout=self.timeout_s)

    def upscale(self, label: str, clip: Path, args: list[str], **kwargs) -> float | None:
        """One ``vidsr upscale`` in a fresh process (``vidsr.bench_gpu.cli_upscale``): its start-up."""
        try:
            summary = cli_upscale(clip, args, self.out / "probe.mp4", self.engines, self.timeout_s, **kwargs)
        except RuntimeError as exc:
            self.say(f"{label}: {exc}")
            return None
        self.say(f"{label}: startup {summary['startup_s']} s {summary['startup_phases']} on {summary['backend']}")
        return summary["startup_s"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", type=Path)
    p.add_argument("--out", type=Path, default=Path("/tmp/vidsr-startup-probe"))
    p.add_argument("--warm-runs", type=int, default=4)
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vidsr-probe-engines-") as engines:  # cold means a fresh one each run
        return run_probe(a, Probe(a.out, Path(engines)))


def run_probe(a: argparse.Namespace, probe: Probe) -> int:

    spec = importlib.util.find_spec("torch")
    cached = Path(importlib.util.cache_from_source(spec.origin))
    kept = f"bytecode beside it {cached.is_file()}, dont_write_bytecode {sys.dont_write_bytecode}"
    probe.say(f"PyTorch {spec.origin}: {kept}")
    for _ in range(2):
        probe.say("bare import torch:", probe.python(IMPORT_TORCH).stdout.strip(), "s")
    cuda = probe.python("import torch; print(torch.cuda.is_available())").stdout.strip() == "True"
    if cuda:
        for _ in range(2):
            probe.say("CUDA set-up after import:", probe.python(CUDA_SETUP).stdout.strip(), "s")

    probe.upscale("cold", a.clip, ["-s", "2"])
    warm = [probe.upscale(f"warm {i + 1}", a.clip, ["-s", "2"]) for i in range(a.warm_runs)]
    probe.upscale("warm, VIDSR_BYTECODE_CACHE=0", a.clip, ["-s", "2"], env={"VIDSR_BYTECODE_CACHE": "0"})
    unset = [
        probe.upscale(f"warm, {SWITCH_ENV}=0 {i + 1}", a.clip, ["-s", "2"], env=NO_EARLY_CUDA_ENV)
        for i in range(a.warm_runs if cuda else 0)
    ]  # the A/B of vidsr.cuda_setup (a GPU's alone)
    bicubic = [probe.upscale(f"bicubic {i + 1}", a.clip, ["-m", "bicubic", "-s", "2"]) for i in range(a.warm_runs)]
    for name, runs in (("warm", warm), (f"warm, {SWITCH_ENV}=0", unset), ("bicubic", bicubic)):
        runs = sorted(r for r in runs if r is not None)
        if runs:
            probe.say(f"{name}: median {statistics.median(runs):.3f} s of {len(runs)} ({runs[0]}-{runs[-1]})")
    importtime = {"env": {"PYTHONPROFILEIMPORTTIME": "1"}, "stderr_to": a.out / "importtime.txt"}  # -X importtime
    probe.upscale("warm, -X importtime", a.clip, ["-s", "2"], **importtime)

    if cuda:
        with av.open(str(a.clip)) as container:
            height, width = container.streams.video[0].height, container.streams.video[0].width
        for autotune in "10":
            for graphs in "10":
                done = probe.python(FIRST_CALL, str(height), str(width), autotune, graphs)
                result = done.stdout.strip() or done.stderr.strip()[-300:]
                probe.say(f"first call, cuDNN autotuning {autotune}, CUDA graphs {graphs}: {result}")
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"probe done in {time.perf_counter() - started:.0f} s")
    sys.exit(code)
