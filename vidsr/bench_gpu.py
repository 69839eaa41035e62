"""What the GPU benchmark measures beside its rows (``benchmarks/run.py --budget``).

* :func:`cli_startup_rows`: ``vidsr upscale`` as a user runs it, in fresh processes: the defaults
  on a cold engine/compile cache, again on the warm one, and ``-m bicubic`` (issue 23's bars:
  start-up <= 10 s cold and <= 3 s warm; defaults >= 0.9 x bicubic); on a GPU also the warm defaults
  without :mod:`vidsr.cuda_setup` (``VIDSR_CUDA_SETUP=0``), what it saves.
* :func:`encode_rows`: libx264 alone at the output size (frames upscaled by pixel repeat, so no
  model and no decoding in the timing), per preset and threading.  PyAV opens every encoder with
  ``thread_type`` SLICE, and FFmpeg's libx264 wrapper turns that into x264's *sliced* threads
  (``b_sliced_threads``), not its frame threads: the rows say what each choice gives.
* :func:`compile_rows`: model-only fps, eager + CUDA graphs against ``torch.compile``
  (:func:`vidsr.backends.torch_cuda.prepare_module`), with what each costs before its first output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import torch

import vidsr
from vidsr.cuda_setup import SWITCH_ENV

# The CLI in a fresh interpreter, importing the same vidsr as this process (a checkout or not).
_CLI_CODE = "import sys; from vidsr.cli import main; sys.exit(main())"


# -- (a) start-up through the CLI --------------------------------------------------------------
def cli_env(engine_dir: Path) -> dict[str, str]:
    env = dict(os.environ, VIDSR_ENGINE_DIR=str(engine_dir))
    # Compiled kernels live in the engine dir unless this variable says otherwise: a cold run
    # must not find them elsewhere.
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    package_parent = str(Path(vidsr.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def cli_upscale(
    clip: Path,
    args: list[str],
    out: Path,
    engine_dir: Path,
    timeout_s: float,
    *,
    env: dict[str, str] | None = None,
    stderr_to: Path | None = None,
) -> dict[str, Any]:
    """``vidsr upscale CLIP ARGS --json -q`` in a fresh process: its summary, and the wall seconds.
    ``env``: variables to add; ``stderr_to``: where to keep what it printed there (an import log)."""
    cmd = [sys.executable, "-c", _CLI_CODE, "upscale", str(clip), *args, "-o", str(out), "--overwrite", "--json", "-q"]
    environ = {**cli_env(engine_dir), **(env or {})}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=timeout_s, check=False)
    wall = time.perf_counter() - started
    out.unlink(missing_ok=True)
    if stderr_to is not None:
        stderr_to.write_text(done.stderr)
    if done.returncode:
        raise RuntimeError(f"vidsr upscale {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
    summary = json.loads(done.stdout)
    summary["wall_s"] = round(wall, 2)
    return summary


def _bound_by(summary: dict[str, Any]) -> str:
    stages = summary.get("stage_seconds") or {}
    if not stages or not summary.get("seconds"):
        return ""
    stage, seconds = max(stages.items(), key=lambda item: item[1])
    return f"{stage} {seconds / summary['seconds']:.0%}"


# A warm start is measured three times (and the median judged): on the shared H200 host ten warm
# starts of one command ranged 3.1-4.3 s.
WARM_RUNS = 3
# vidsr.cuda_setup's A/B: the warm defaults without it (also startup_probe.py's)
NO_EARLY_CUDA_ENV = {SWITCH_ENV: "0"}
NO_EARLY_CUDA = f"defaults, {SWITCH_ENV}=0"


def cli_runs(cuda: bool) -> list[tuple[str, str, list[str], dict[str, str]]]:
    """(run, cache, arguments, environment) of each ``vidsr upscale``: the defaults cold, warm
    :data:`WARM_RUNS` times (on CUDA each followed by the same without the early CUDA set-up, so host
    drift falls on both alike), then ``-m bicubic`` warm as often."""
    warm = [("defaults", "warm", ["-s", "2"], {})]
    if cuda:
        warm.append((NO_EARLY_CUDA, "warm", ["-s", "2"], NO_EARLY_CUDA_ENV))
    return [
        ("defaults", "cold", ["-s", "2"], {}),
        *warm * WARM_RUNS,
        *[("-m bicubic", "warm", ["-m", "bicubic", "-s", "2"], {})] * WARM_RUNS,
    ]


def cli_startup_rows(clip: Path, work: Path, timeout_s: float, cuda: bool | None = None) -> list[dict[str, Any]]:
    """The runs of :func:`cli_runs` (``cuda``: whether PyTorch sees a GPU, by default) on a fresh
    engine dir, at x2."""
    engine_dir = work / "cli-engines"
    shutil.rmtree(engine_dir, ignore_errors=True)  # cold means nothing cached: no ONNX, no kernels
    engine_dir.mkdir(parents=True)
    rows = []
    for label, cache, args, env in cli_runs(torch.cuda.is_available() if cuda is None else cuda):
        summary = cli_upscale(clip, args, work / f"cli-{len(rows)}.mp4", engine_dir, timeout_s, env=env)
        variables = "".join(f"{name}={value} " for name, value in env.items())
        rows.append(
            {
                "command": f"{variables}vidsr upscale {clip.name} {' '.join(args)}",
                "run": label,
                "cache": cache,
                "backend": summary["backend"],
                "precision": summary["precision"],
                "frames": summary["frames_out"],
                "startup_s": summary.get("startup_s"),
                "steady_fps": summary.get("steady_fps"),
                "fps": summary["fps"],
                "wall_s": summary["wall_s"],
                "bound_by": _bound_by(summary),
                "stage_seconds": summary.get("stage_seconds"),
                "startup_phases": summary.get("startup_phases"),
            }
        )
    return rows


# -- (b) what bounds the encoder ---------------------------------------------------------------
@dataclass(frozen=True)
class EncoderSetting:
    preset: str
    thread_type: str  # "SLICE": PyAV's default, x264's sliced threads; "FRAME": x264's frame threads
    threads: int  # 0: x264 chooses (1.5 x cores for frame threads)

    @property
    def label(self) -> str:
        kind = "sliced (PyAV's default)" if self.thread_type == "SLICE" else "frame"
        return f"{self.preset}, {kind} threads, {self.threads or 'auto'}"


def encoder_settings(cores: int) -> list[EncoderSetting]:
    """The benchmark's encoder (veryfast) threaded three ways, then the presets either side of it."""
    return [
        EncoderSetting("veryfast", "SLICE", 0),
        EncoderSetting("veryfast", "FRAME", 0),
        EncoderSetting("veryfast", "FRAME", cores),
        EncoderSetting("faster", "FRAME", 0),
        EncoderSetting("ultrafast", "SLICE", 0),
        EncoderSetting("ultrafast", "FRAME", 0),
    ]


def repeated_frames(clip: Path, scale: int, count: int) -> list[av.VideoFrame]:
    """The first ``count`` frames of ``clip`` upscaled by pixel repeat (swscale POINT) to yuv420p:
    the encoder's input at the output size, made before any timing starts."""
    frames = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width = stream.codec_context.width * scale // 2 * 2
        height = stream.codec_context.height * scale // 2 * 2
        for frame in container.decode(stream):
            frames.append(frame.reformat(width=width, height=height, format="yuv420p", interpolation="POINT"))
            if len(frames) == count:
                break
    return frames


def encode_fps(frames: list[av.VideoFrame], setting: EncoderSetting, crf: int = 18) -> float:
    """libx264 alone on ``frames`` (no muxer, no decoding), flushed: frames a second."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
    ctx.thread_type = setting.thread_type
    ctx.thread_count = setting.threads
    ctx.options = {"preset": setting.preset, "crf": str(crf)}
    started = time.perf_counter()
    for i, frame in enumerate(frames):
        frame.pts = i
        ctx.encode(frame)
    ctx.encode(None)
    return len(frames) / (time.perf_counter() - started)


def encode_rows(clip: Path, scale: int, count: int, settings: list[EncoderSetting]) -> list[dict[str, Any]]:
    frames = repeated_frames(clip, scale, count)
    size = f"{frames[0].width}x{frames[0].height}"
    return [
        {
            "output": size,
            "frames": len(frames),
            "preset": s.preset,
            "threading": s.thread_type.lower(),
            "threads": s.threads or "auto",
            "setting": s.label,
            "fps": round(encode_fps(frames, s), 2),
        }
        for s in settings
    ]


# -- (c) does torch.compile pay ----------------------------------------------------------------
def _model_runner(loaded: Any, device: torch.device, compile: bool, engine_dir: Path) -> tuple[Any, torch.dtype, bool]:
    """What ``vidsr upscale`` runs on ``device`` (torch-cuda: fp16, channels-last, CUDA graphs), with
    or without compile; on a CPU (a dry run) the module from the same ``prepare_module``, fp32."""
    if device.type == "cuda":
        from vidsr.backends.torch_cuda import TorchCudaBackend

        backend = TorchCudaBackend(loaded, device, torch.float16, compile=compile, engine_dir=engine_dir)
        return backend, torch.float16, backend.compiled
    from vidsr.backends.torch_cuda import prepare_module

    module, compiled = prepare_module(loaded, compile, engine_dir)
    return torch.inference_mode()(module), torch.float32, compiled


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_rows(
    model: str, scale: int, width: int, height: int, *, batch: int, iters: int, device: torch.device, engine_dir: Path
) -> list[dict[str, Any]]:
    """Model-only fps of ``model`` on a ``batch`` of ``width`` x ``height``, eager + CUDA graphs and
    compiled, each with its start-up: building it and the first call (compile, autotune, capture)."""
    from vidsr.bench import load_for_bench

    rows = []
    for compile in (False, True):
        loaded, weights = load_for_bench(model, scale)
        started = time.perf_counter()
        run, dtype, compiled = _model_runner(loaded, device, compile, engine_dir)
        x = torch.rand(batch, loaded.spec.channels, height, width, device=device, dtype=dtype)
        run(x)
        _sync(device)
        startup = time.perf_counter() - started
        run(x)  # CUDA graphs: the first call warms up, the second captures
        _sync(device)
        timed = time.perf_counter()
        for _ in range(iters):
            run(x)
        _sync(device)
        fps = batch * iters / (time.perf_counter() - timed)
        rows.append(
            {
                "model": model,
                "scale": scale,
                "input": f"{width}x{height}",
                "batch": batch,
                "mode": ("compiled" if compile else "eager") + (" + CUDA graphs" if device.type == "cuda" else ""),
                "compiled": compiled,
                "weights": weights,
                "startup_s": round(startup, 3),
                "model_fps": round(fps, 1),
            }
        )
        del run, x
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows
