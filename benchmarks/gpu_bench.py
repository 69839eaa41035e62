"""The GPU benchmark that fits a lease: planned against a deadline, rows dropped by plan.

    python benchmarks/gpu_bench.py --budget 330 --out /tmp/out     # on a GPU machine
    python benchmarks/gpu_bench.py --plan-only --budget 330         # the plan, anywhere, no GPU needed
    python benchmarks/gpu_bench.py --device cpu --frames 4 --sizes 64x36x4,96x54x2,128x72x2 --out /tmp/o
                                                                    # the same code end to end on a CPU
    python benchmarks/gpu_bench.py --merge OUT/results.json         # into benchmarks/RESULTS.md + results.json

Inputs made from vtest.avi (swscale bicubic, near-lossless x264): 480x270 at x4, 960x540 at x2 and
1920x1080 at x2 (to 3840x2160).  Rows per input: io_ceiling, bicubic, naive and pipeline for the
default model (espcn) and srresnet, on torch-cuda (and tensorrt where installed), each with end-to-end
fps, steady fps, start-up and what bounds it (``vidsr.bench``).  Then, each optional: the CLI's
start-up cold and warm against ``-m bicubic``, libx264 alone at the largest output size per preset
and threading, and model-only fps eager against ``torch.compile`` (``vidsr.bench_gpu``).

Every step has an estimate from its frames and a conservative speed; the plan keeps steps in
priority order while they fit in the time left, prints itself, and is made again after every step
with the speeds measured so far (``vidsr.bench_plan``).  All runs in this one process (no
start-up per row); the CLI rows are fresh processes by design.  ``results.json`` and
``RESULTS.md`` are rewritten in ``--out`` after every step, so an outer timeout still leaves what
was measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout's vidsr, installed or not

import torch  # noqa: E402

from vidsr.bench import (  # noqa: E402
    BENCH_ENCODE,
    BenchConfig,
    BenchRow,
    BenchRunner,
    RowSpec,
    add_ratios,
    bound_by,
    cpu_backends,
    gpu_backends,
    machine_info,
    make_bench_input,
    markdown_table,
)
from vidsr.bench_gpu import NO_EARLY_CUDA  # noqa: E402
from vidsr.bench_plan import Decision, Outcome, Step, format_plan, outcomes_table, run_plan  # noqa: E402

DATA = Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_SIZES = "480x270x4,960x540x2,1920x1080x2"
MODELS = ("espcn", "srresnet")  # the default model first
RESERVE_S = 8.0  # kept back from the plan for the last write-up and exit
FIRST_RUN_4K_IO_FPS = 21.8  # issue 23: the 4K-output io_ceiling on the first H200 run (960x540 x4)

# Speeds a first plan assumes on a GPU machine, per kind of step: output megapixels a second and
# fixed seconds.  About 0.6x the slowest row of each kind on the H200 run of 2026-12-04 18:40 UTC
# (benchmarks/RESULTS.md: io_ceiling 215-294 MP/s end to end, bicubic 268-330, naive espcn 48-65,
# naive srresnet 48-61, pipeline espcn 264-303, pipeline srresnet 221-291), so a lease's plan keeps
# what fits with room for a slower host.  TensorRT's fixed cost is an engine build.
PLAN_SPEEDS: dict[str, tuple[float, float]] = {
    "io_ceiling": (130.0, 1.5),
    "bicubic": (160.0, 3.0),
    "naive espcn": (30.0, 3.0),
    "naive srresnet": (28.0, 3.0),
    "pipeline espcn torch-cuda": (160.0, 6.0),
    "pipeline srresnet torch-cuda": (130.0, 8.0),
    "pipeline espcn tensorrt": (50.0, 120.0),
    "pipeline srresnet tensorrt": (40.0, 180.0),
    "inputs": (15.0, 3.0),  # input pixels: decode vtest.avi, resample, x264 crf 10
    # Per run: interpreter, imports, CUDA; the CLI's default preset.  Measured on the H200: about 10 s
    # a run of 48 frames to 3840x2160 (three runs in 29.8-31.0 s; the slowest, a cold one, 11.5 s),
    # planned at 12.6 s.
    "cli": (60.0, 6.0),
    "encode": (175.0, 5.0),  # libx264 alone at the output size (H200 host: 290 MP/s); fixed: making the frames
}
# max-autotune, eager and compiled, both shapes: 26.2 and 27.8 s on the H200 (the first run's 10-20 s a shape)
COMPILE_SECONDS = {"espcn": 45.0, "srresnet": 45.0}
FALLBACK_SPEED = (30.0, 10.0)
# Lower keeps first when time is short: the bars first, the yardsticks next, extras last.
PRIORITY = {
    "inputs": 0,
    "io_ceiling": 1,
    "pipeline espcn torch-cuda": 2,
    "naive espcn": 3,
    "bicubic": 4,
    "pipeline srresnet torch-cuda": 5,
    "naive srresnet": 6,
    "pipeline espcn tensorrt": 7,
    "pipeline srresnet tensorrt": 8,
    "cli": 10,
    "encode threads": 11,
    "encode presets": 12,
    "compile espcn": 13,
    "compile srresnet": 14,
}


@dataclass(frozen=True)
class BenchInput:
    width: int
    height: int
    scale: int

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def name(self) -> str:
        return f"vtest_{self.label}"

    @property
    def out_pixels(self) -> int:
        return self.width * self.height * self.scale**2


def parse_inputs(text: str) -> list[BenchInput]:
    """``480x270x4,960x540x2`` -> inputs (width, height, scale)."""
    inputs = []
    for item in text.split(","):
        try:
            w, h, s = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise SystemExit(f"--sizes: expected WIDTHxHEIGHTxSCALE such as 960x540x2, got {item!r}") from None
        inputs.append(BenchInput(w, h, s))
    return inputs


def kind_step(kind: str, key: str, order: int, frames: int, pixels: int, run: Callable | None, **kw) -> Step:
    """A step of ``kind`` with that kind's planned speed and priority."""
    rate, overhead = PLAN_SPEEDS.get(kind, FALLBACK_SPEED)
    return Step(
        key=key,
        kind=kind,
        priority=PRIORITY.get(kw.pop("priority_kind", kind), 20),
        order=order,
        frames=frames,
        pixels=pixels,
        overhead_s=kw.pop("overhead_s", overhead),
        rate_mpps=rate,
        run=run,
    )


class GpuBench:
    """The run's state: inputs, one row runner per input, what was measured, where it is written."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.inputs = parse_inputs(args.sizes)
        self.device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        planning_for_gpu = self.device == "cuda" or args.plan_only
        self.backends = gpu_backends() if planning_for_gpu else cpu_backends()[:1]
        self.cfg = BenchConfig(models=MODELS, device=self.device, model_iters=10)
        self.clips: dict[str, Path] = {}
        self.runners: dict[str, BenchRunner] = {}
        self.rows: list[BenchRow] = []
        self.extras: dict[str, list] = {"cli_startup": [], "encode_4k": [], "compile": []}
        self.outcomes: list[Outcome] = []
        self.plan_text = ""
        self.started = time.time()
        self._machine: dict | None = None

    # -- the steps ------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        a = self.args
        in_pixels = sum(i.width * i.height for i in self.inputs)
        steps = [kind_step("inputs", "make inputs from vtest.avi", 0, a.frames, in_pixels, self.make_inputs)]
        order = 1
        for inp in self.inputs:
            for spec, frames in self.row_specs(inp):
                kind = self.row_kind(spec)
                key = f"{spec.stage} {spec.model + ' ' if spec.model != 'none' else ''}{inp.label} x{inp.scale}"
                key += f" {spec.backend}" if spec.backend else ""
                steps.append(kind_step(kind, key, order, frames, inp.out_pixels, self.row_runner(inp, spec)))
                order += 1
        big = max(reversed(self.inputs), key=lambda i: i.out_pixels)  # the largest output; the last on a tie
        out = f"{big.width * big.scale}x{big.height * big.scale}"
        from vidsr.bench_gpu import cli_runs

        runs = len(cli_runs(cuda=self.device == "cuda" or a.plan_only))
        steps.append(
            kind_step(
                "cli", f"CLI start-up: cold, warm, bicubic {big.label} x{big.scale}", 100,
                runs * a.cli_frames, big.out_pixels, lambda: self.cli(big), overhead_s=runs * PLAN_SPEEDS["cli"][1],
            )
        )  # fmt: skip
        from vidsr.bench_gpu import encoder_settings

        settings = encoder_settings(os.cpu_count() or 1)
        threads, presets = settings[:3], settings[3:]
        for n, (name, group) in enumerate((("encode threads", threads), ("encode presets", presets))):
            label = "veryfast threading" if n == 0 else "faster, ultrafast"
            steps.append(
                kind_step(
                    "encode", f"x264 alone at {out}: {label}", 101 + n, len(group) * a.encode_frames,
                    big.out_pixels, lambda big=big, group=group: self.encode(big, group), priority_kind=name,
                )
            )  # fmt: skip
        probe = self.inputs[min(1, len(self.inputs) - 1)]
        for n, model in enumerate(MODELS):
            steps.append(
                kind_step(
                    f"compile {model}", f"compile vs eager: {model} {probe.label} x{probe.scale}", 103 + n, 0, 0,
                    lambda m=model: self.compile(m, probe), overhead_s=COMPILE_SECONDS[model],
                )
            )  # fmt: skip
        return steps

    def row_specs(self, inp: BenchInput) -> list[tuple[RowSpec, int]]:
        """The rows of one input, in table order, with their frame counts (naive rows are shorter)."""
        a = self.args
        specs = [(RowSpec("io_ceiling", inp.scale), a.frames), (RowSpec("bicubic", inp.scale), a.frames)]
        for model in MODELS:
            specs.append((RowSpec("naive", inp.scale, model, max_frames=a.naive_frames), a.naive_frames))
            specs += [(RowSpec("pipeline", inp.scale, model, backend), a.frames) for backend in self.backends]
        return specs

    def row_kind(self, spec: RowSpec) -> str:
        if spec.stage == "pipeline":
            # Plans are for the GPU; a CPU dry run's backend plans at torch-cuda's speed.
            backend = spec.backend if spec.backend in ("torch-cuda", "tensorrt") else "torch-cuda"
            return f"pipeline {spec.model} {backend}"
        return f"naive {spec.model}" if spec.stage == "naive" else spec.stage

    # -- what the steps do ----------------------------------------------------------------
    def make_inputs(self) -> None:
        src, work = self.args.src, self.args.work
        for inp in self.inputs:
            dst = work / f"{inp.name}_{self.args.frames}f.mp4"
            self.clips[inp.label] = make_bench_input(src, dst, self.args.frames, (inp.width, inp.height))

    def row_runner(self, inp: BenchInput, spec: RowSpec) -> Callable[[], float | None]:
        def run() -> float | None:
            runner = self.runners.get(inp.label)
            if runner is None:
                clip = self.clips[inp.label]
                runner = BenchRunner(clip, self.cfg, label=inp.name, out_dir=self.args.work / "out")
                self.runners[inp.label] = runner
            row = runner.run(spec)
            free_gpu_memory()
            if row is None:
                return None
            self.rows.append(row)
            add_ratios(self.rows)
            return row.steady_fps or row.fps

        return run

    def cli(self, inp: BenchInput) -> None:
        from vidsr.bench_gpu import cli_startup_rows

        a = self.args
        clip = make_bench_input(
            a.src, a.work / f"{inp.name}_{a.cli_frames}f.mp4", a.cli_frames, (inp.width, inp.height)
        )
        self.extras["cli_startup"] = cli_startup_rows(clip, a.work, timeout_s=max(15.0, self.left_s()))

    def encode(self, inp: BenchInput, settings: list) -> float:
        from vidsr.bench_gpu import encode_rows

        rows = encode_rows(self.clips[inp.label], inp.scale, self.args.encode_frames, settings)
        self.extras["encode_4k"] += rows
        return min(r["fps"] for r in rows)  # the slowest setting: what the next encode step is planned at

    def compile(self, model: str, inp: BenchInput) -> None:
        from vidsr.bench_gpu import compile_rows

        engine_dir = self.args.work / f"compile-{model}"
        shutil.rmtree(engine_dir, ignore_errors=True)  # a cold compile: nothing cached
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(engine_dir / "inductor")
        device = torch.device(self.device)
        self.extras["compile"] += compile_rows(
            model, inp.scale, inp.width, inp.height, batch=8, iters=20, device=device, engine_dir=engine_dir
        )
        free_gpu_memory()

    # -- time and results -----------------------------------------------------------------
    def left_s(self) -> float:
        return self.args.until - time.time() - RESERVE_S

    def on_plan(self, decisions: list[Decision]) -> None:
        self.plan_text = format_plan(decisions, self.left_s())
        print(f"plan for the {self.left_s():.0f} s left, made again after every step:\n{self.plan_text}", flush=True)

    def on_outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        fps = f", {outcome.fps:.1f} fps" if outcome.fps else ""
        took = f" in {outcome.seconds:.1f} s (estimate {outcome.estimate_s:.1f}){fps}" if outcome.seconds else ""
        print(f"[{time.time() - self.started:6.1f} s] {outcome.key}: {outcome.status}{took}", flush=True)
        self.write()

    def payload(self) -> dict:
        a = self.args
        return {
            "kind": "gpu-plan",
            "command": "python benchmarks/gpu_bench.py " + " ".join(a.argv),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "machine": self.machine(),
            "device": self.device,
            "row_encoder": f"{BENCH_ENCODE.codec} {BENCH_ENCODE.preset} crf {BENCH_ENCODE.crf}",
            "frames": a.frames,
            "naive_frames": a.naive_frames,
            "cli_frames": a.cli_frames,
            "encode_frames": a.encode_frames,
            "inputs": [f"{i.label} x{i.scale}" for i in self.inputs],
            "plan_text": self.plan_text,
            "plan": [o.to_dict() for o in self.outcomes],
            "rows": [r.to_dict() for r in self.rows],
            **self.extras,
        }

    def machine(self) -> dict:
        if self._machine is None:
            self._machine = machine_info()
        return self._machine

    def write(self) -> None:
        out = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        payload = self.payload()
        (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
        (out / "RESULTS.md").write_text("\n".join(render_gpu(payload, heading="#")) + "\n")


def free_gpu_memory() -> None:
    """Rows keep nothing: graphs, pools and models of the last row go before the next one."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def warm_up(device: str) -> float:
    """CUDA's context and cuDNN's libraries, before anything is timed: seconds it took."""
    started = time.perf_counter()
    if device == "cuda":
        x = torch.rand(1, 1, 16, 16, device="cuda")
        torch.nn.functional.conv2d(x, torch.rand(1, 1, 3, 3, device="cuda"))
        torch.cuda.synchronize()
    return time.perf_counter() - started


# -- the report -------------------------------------------------------------------------------
def render_gpu(payload: dict, heading: str = "##") -> list[str]:
    """The GPU run as markdown: machine, the rows, the plan, then each extra that ran."""
    m = payload["machine"]
    h2, h3 = heading, heading + "#"
    gpu = m.get("gpu") or "no GPU (a CPU dry run)"
    lines = [
        f"{h2} GPU run: {gpu}",
        "",
        f"Produced by `{payload['command']}` on {payload['date_utc']} UTC in {payload['seconds']:.0f} s.",
        "",
        f"* GPU: {gpu}" + (f", {m.get('gpu_memory_gib')} GiB, CUDA {m.get('cuda')}" if m.get("gpu") else "")
        + f", TensorRT {m.get('tensorrt') or 'absent'}",
        f"* CPU: {m['cpu']}, {m['cores']} cores; torch {m['torch']}, PyAV {m['pyav']} ({m['ffmpeg']}), "
        f"Python {m['python']}",
        f"* Inputs: vtest.avi resampled to {', '.join(payload['inputs'])}; {payload['frames']} frames a row "
        f"(naive rows the first {payload['naive_frames']}); every row encodes with {payload['row_encoder']}.",
        "* `steady fps`: frames a second after the first batch; `startup s`: from the row's start (before",
        "  its upscaler is built) to its first frame written; `bound by`: the stage with the most seconds",
        "  and its share of the row's wall time (stages overlap in threads); `/ io_ceiling` and `/ naive`",
        "  compare steady fps where both rows have it.",
        "",
    ]  # fmt: skip
    rows = [BenchRow(**r) for r in payload["rows"]]
    lines += [markdown_table(rows), ""] if rows else ["No rows were measured.", ""]
    lines += render_bars(payload, rows)
    lines += [f"{h3} The plan", "", outcomes_table([Outcome(**o) for o in payload["plan"]]), ""]
    lines += render_cli(payload["cli_startup"], h3)
    lines += render_encode(payload["encode_4k"], rows, h3)
    lines += render_compile(payload["compile"], h3)
    return lines


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render_bars(payload: dict, rows: list[BenchRow]) -> list[str]:
    """Issue 23's bars, row by row, from what ran."""
    ceilings = {(r.input, r.scale): r for r in rows if r.stage == "io_ceiling"}
    lines = []
    for r in rows:
        if r.stage != "pipeline":
            continue
        steady = r.steady_fps or r.fps
        parts = [f"steady {steady} fps"]
        if r.ratio_vs_io_ceiling is not None:
            parts.append(f"{r.ratio_vs_io_ceiling} x io_ceiling (>= 0.9: {_yes(r.ratio_vs_io_ceiling >= 0.9)})")
        if r.ratio_vs_naive is not None:
            parts.append(f"{r.ratio_vs_naive} x naive (>= 1: {_yes(r.ratio_vs_naive >= 1)})")
        if r.startup_s is not None:
            parts.append(f"start-up {r.startup_s} s")
        lines.append(f"* {r.model} {r.input} x{r.scale} {r.backend}: " + ", ".join(parts))
    for (name, scale), ceiling in ceilings.items():
        if ceiling.width * ceiling.height * scale * scale >= 3840 * 2160:
            pace = ceiling.steady_fps or ceiling.fps
            gain = pace / FIRST_RUN_4K_IO_FPS
            lines.append(
                f"* io_ceiling {name} x{scale} (4K output): {pace} fps, {gain:.2f} x the first run's "
                f"{FIRST_RUN_4K_IO_FPS} (>= 2: {_yes(gain >= 2)}); bound by {bound_by(ceiling) or '?'}"
            )
    return ["Issue 23's bars:", "", *lines, ""] if lines else []


def render_cli(cli: list[dict], h3: str) -> list[str]:
    if not cli:
        return []
    lines = [
        f"{h3} Start-up through the CLI",
        "",
        "Each `vidsr upscale ... --json -q` in a fresh process with a fresh engine dir (`VIDSR_ENGINE_DIR`):",
        "the defaults cold, then warm, then `-m bicubic` (warm runs repeated, their median judged);",
        "`startup s` counts from the process's start.",
        "",
        "| command | cache | backend | precision | frames | startup s | start-up phases s | steady fps | fps | wall s"
        " | bound by |",
        "| --- | --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in cli:
        phases = ", ".join(f"{name} {s}" for name, s in (r.get("startup_phases") or {}).items()) or None
        cells = [f"`{r['command']}`", r["cache"], r["backend"], r["precision"], r["frames"], r["startup_s"], phases]
        cells += [r["steady_fps"], r["fps"], r["wall_s"], r["bound_by"] or "–"]
        lines.append("| " + " | ".join("–" if c is None else str(c) for c in cells) + " |")

    def median_of(run: str, cache: str, key: str) -> tuple[float, list[float]] | None:
        values = sorted(r[key] for r in cli if (r["run"], r["cache"]) == (run, cache) and r[key] is not None)
        return (statistics.median(values), values) if values else None

    cold = median_of("defaults", "cold", "startup_s")
    warm = median_of("defaults", "warm", "startup_s")
    lines.append("")
    if cold:
        lines.append(f"* cold start-up {cold[0]} s (<= 10: {_yes(cold[0] <= 10)})")
    if warm:
        spread = f" of {len(warm[1])} ({warm[1][0]}-{warm[1][-1]})" if len(warm[1]) > 1 else ""
        lines.append(f"* warm start-up {warm[0]:.3f} s{spread} (<= 3: {_yes(warm[0] <= 3)})")
    ours, theirs = (median_of(run, "warm", "steady_fps") for run in ("defaults", "-m bicubic"))
    if ours and theirs:
        ratio = ours[0] / theirs[0]
        lines.append(f"* defaults / bicubic, steady (medians): {ratio:.2f} (>= 0.9: {_yes(ratio >= 0.9)})")
    without = median_of(NO_EARLY_CUDA, "warm", "startup_s")
    if warm and without:
        lines.append(
            f"* warm start-up without the early CUDA set-up (`VIDSR_CUDA_SETUP=0`, runs alternated with the"
            f" defaults'): {without[0]:.3f} s median of {len(without[1])}; `vidsr.cuda_setup` saved"
            f" {without[0] - warm[0]:.3f} s"
        )
    return [*lines, ""]


def render_encode(encode: list[dict], rows: list[BenchRow], h3: str) -> list[str]:
    if not encode:
        return []
    size, frames = encode[0]["output"], encode[0]["frames"]
    lines = [
        f"{h3} What bounds the 4K io_ceiling: libx264 alone at {size}",
        "",
        f"{frames} frames upscaled by pixel repeat, made before the timing; the encoder alone, flushed, crf 18.",
        "PyAV opens encoders with sliced threads (its `thread_type` SLICE becomes x264's `sliced-threads`);",
        "`frame` is x264's own frame threading; threads `auto` lets x264 choose.",
        "",
        "| preset | threading | threads | fps |",
        "| --- | --- | --- | ---: |",
    ]
    lines += [f"| {r['preset']} | {r['threading']} | {r['threads']} | {r['fps']} |" for r in encode]
    big = [r for r in rows if r.stage == "io_ceiling" and f"{r.width * r.scale}x{r.height * r.scale}" == size]
    for r in big:
        stages = ", ".join(f"{k} {v}" for k, v in (r.stage_seconds or {}).items())
        lines += ["", f"The io_ceiling row at {size} ({r.input} x{r.scale}, {r.seconds} s): {stages or 'no stages'}."]
    return [*lines, ""]


def render_compile(compile: list[dict], h3: str) -> list[str]:
    if not compile:
        return []
    lines = [
        f"{h3} Does torch.compile pay?",
        "",
        "Model-only fps on a batch already on the device, and what each costs before its first output",
        "(building, compiling and autotuning on a cold cache, graph capture).",
        "",
        "| model | x | input | batch | mode | compiled | startup s | model-only fps |",
        "| --- | --- | --- | ---: | --- | --- | ---: | ---: |",
    ]
    for r in compile:
        cells = [r["model"], r["scale"], r["input"], r["batch"], r["mode"], r["compiled"], r["startup_s"]]
        lines.append("| " + " | ".join(str(c) for c in [*cells, r["model_fps"]]) + " |")
    return [*lines, ""]


# -- into benchmarks/ -------------------------------------------------------------------------
def merge(gpu_results: Path, into: Path) -> None:
    """The GPU run's results.json into ``into``/results.json (key ``gpu``) and RESULTS.md re-rendered
    with its GPU section (``benchmarks/run.py`` renders it)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import run  # benchmarks/run.py, beside this file

    payload = json.loads((into / "results.json").read_text())
    payload["gpu"] = json.loads(gpu_results.read_text())
    (into / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    rows = [BenchRow(**r) for r in payload["rows"]]
    (into / "RESULTS.md").write_text(run.render(payload, rows))
    print(f"merged {gpu_results} into {into / 'results.json'} and {into / 'RESULTS.md'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=330.0, help="seconds from now for everything [330]")
    p.add_argument("--until", type=float, help="an absolute deadline (time.time()); wins over --budget")
    p.add_argument("--plan-only", action="store_true", help="print the plan and exit (no GPU needed)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"inputs as WxHxSCALE [{DEFAULT_SIZES}]")
    p.add_argument("--frames", type=int, default=90, help="frames a row [90]")
    p.add_argument("--naive-frames", type=int, help="frames a naive row [half of --frames]")
    p.add_argument("--cli-frames", type=int, default=48, help="frames of each CLI start-up run [48]")
    p.add_argument("--encode-frames", type=int, default=60, help="frames of each encoder-alone run [60]")
    p.add_argument("--src", type=Path, default=DATA / "video" / "vtest.avi")
    p.add_argument("--work", type=Path, default=Path("/tmp/vidsr-gpu-bench"), help="clips and outputs")
    p.add_argument("--out", type=Path, default=Path("/tmp/vidsr-gpu-check"), help="results.json and RESULTS.md")
    p.add_argument("--merge", type=Path, metavar="RESULTS_JSON", help="merge a GPU run into benchmarks/ and exit")
    p.add_argument("--into", type=Path, default=ROOT / "benchmarks", help="where --merge writes [benchmarks/]")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.naive_frames = args.naive_frames or max(1, args.frames // 2)
    if args.until is None:
        args.until = time.time() + args.budget
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge:
        merge(args.merge, args.into)
        return 0
    bench = GpuBench(args)
    steps = bench.steps()
    if args.plan_only:
        from vidsr.bench_plan import Estimator, choose

        left = bench.left_s()
        print(f"plan for {left:.0f} s ({RESERVE_S:.0f} s of the budget kept for the write-up):")
        print(format_plan(choose(steps, left, Estimator()), left))
        return 0
    print(f"gpu-bench: {bench.device}, warm-up {warm_up(bench.device):.1f} s; {bench.left_s():.0f} s for the plan")
    args.work.mkdir(parents=True, exist_ok=True)
    run_plan(steps, bench.left_s, on_plan=bench.on_plan, on_outcome=bench.on_outcome)
    bench.write()
    print(f"gpu-bench: wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
