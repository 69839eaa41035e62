"""The throughput benchmark, in one command: inputs made from vtest.avi, every stage, one report.

    python benchmarks/run.py --frames 120                    # a GPU machine (all backends found)
    python benchmarks/run.py --frames 8 --slow-frames 1      # a small CPU (what RESULTS.md holds now)

Inputs: vtest.avi resampled to 480x270 and 960x540 (swscale bicubic, near-lossless x264)
and vtest.avi itself (first N frames, remuxed, original MS-MPEG4).  For each input and
scale: io_ceiling, bicubic, and per model naive + pipeline (every available backend).
Writes ``benchmarks/results.json`` and ``benchmarks/RESULTS.md``.

On a CPU the same run also measures the CPU tables (``vidsr/bench_cpu.py``): model only per
engine, per frame against OpenCV's dnn_superres ESPCN, pre/post-processing beside the model,
model x encoder threads end to end, and ``vidsr upscale`` itself against bicubic and against the
vidsr of ``--before`` (a source tree, e.g. ``git archive <commit> | tar -x -C DIR``), all with the
paper-size ESPCN (the ``paper`` weights) unless a row says otherwise.

On a CPU, SRResNet costs about a minute per frame, so it runs on the smallest input only
and on ``--slow-frames`` frames (``--slow-sizes`` to change); every such row says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidsr.bench import (  # noqa: E402 - the checkout's vidsr, even when not installed
    BenchConfig,
    BenchRow,
    bench_input,
    load_for_bench,
    machine_info,
    make_bench_input,
    markdown_table,
)
from vidsr.upscaler import Upscaler  # noqa: E402

DATA = Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_SRC = DATA / "video" / "vtest.avi"
SIZES = {"480x270": (480, 270), "960x540": (960, 540), "vtest": None}
GPU_TARGETS = """\
| target (H100, FP16) | figure |
| --- | --- |
| srresnet x4, 480x270, model-only | >= 600 fps |
| espcn x4, 480x270, model-only | >= 5000 fps |
| end-to-end pipeline vs io_ceiling | >= 0.9 x |
| end-to-end pipeline vs naive | >= 10 x |"""


def cpu_precision_probe(iters: int = 2) -> dict[str, float]:
    """ESPCN x4 model-only fps on a 480x270 batch of 2, fp32 vs bf16: the torch-cpu precision decision."""
    out: dict[str, float] = {}
    loaded, _ = load_for_bench("espcn", 4)
    for precision in ("fp32", "bf16"):
        up = Upscaler(loaded=loaded, scale=4, backend="torch-cpu", precision=precision, tile_pixels=0)
        x = torch.rand(2, 1, 270, 480)
        up.run_model(x)
        started = time.perf_counter()
        for _ in range(iters):
            up.run_model(x)
        out[precision] = round(2 * iters / (time.perf_counter() - started), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=DEFAULT_SRC, help="the real clip to derive inputs from")
    p.add_argument("--frames", type=int, default=24, help="frames per row")
    p.add_argument("--slow-frames", type=int, default=None, help="frames for slow rows (srresnet on a CPU) [2]")
    p.add_argument("--slow-sizes", default="480x270", help="inputs srresnet runs on when on a CPU")
    p.add_argument("--models", default="espcn,srresnet")
    p.add_argument("--scales", default="2,4")
    p.add_argument("--sizes", default="480x270,960x540,vtest")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--work", type=Path, default=Path("/tmp/vidsr-bench"), help="where inputs are made and kept")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="folder for results.json and RESULTS.md")
    p.add_argument("--no-probe", action="store_true", help="skip the CPU fp32-vs-bf16 probe")
    p.add_argument("--render-only", action="store_true", help="rewrite RESULTS.md from results.json, measure nothing")
    p.add_argument("--no-cpu-tables", action="store_true", help="skip the CPU tables (model only, per frame, ...)")
    p.add_argument("--cli-frames", type=int, default=200, help="frames of vtest.avi for the threads and CLI tables")
    p.add_argument("--before", type=Path, help="a vidsr source tree to measure `vidsr upscale` before this change")
    args = p.parse_args(argv)
    if args.render_only:
        payload = json.loads((args.out / "results.json").read_text())
        rows = [BenchRow(**r) for r in payload["rows"]]
        (args.out / "RESULTS.md").write_text(render(payload, rows))
        print(f"wrote {args.out / 'RESULTS.md'} from {args.out / 'results.json'}")
        return 0

    gpu = args.device != "cpu" and torch.cuda.is_available()
    slow_models = set() if gpu else {"srresnet"}
    slow_frames = args.slow_frames or (args.frames if gpu else 2)
    slow_sizes = set(args.slow_sizes.split(","))
    models = tuple(args.models.split(","))
    scales = tuple(int(s) for s in args.scales.split(","))
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.time()
    rows: list[BenchRow] = []
    skipped: list[str] = []
    for label in args.sizes.split(","):
        size = SIZES[label]
        name = f"vtest_{label}" if size else "vtest"
        suffix = ".mp4" if size else args.src.suffix
        clip = make_bench_input(args.src, args.work / f"{name}_{args.frames}f{suffix}", args.frames, size)
        short = make_bench_input(args.src, args.work / f"{name}_{slow_frames}f{suffix}", slow_frames, size)
        run_models = tuple(m for m in models if m.partition(":")[0] not in slow_models or label in slow_sizes)
        skipped += [f"{m} on {label}" for m in models if m not in run_models]
        cfg = BenchConfig(models=run_models, scales=scales, device=args.device, model_iters=10 if gpu else 2)

        def frames_for(model: str, scale: int, clip=clip, short=short) -> Path:
            return short if model.partition(":")[0] in slow_models else clip

        def show(row: BenchRow) -> None:
            mfps = f"  model-only {row.model_fps:.2f}" if row.model_fps else ""
            print(
                f"{row.input:<10} x{row.scale} {row.stage:<10} {row.model:<9} {row.backend:<16} "
                f"{row.frames:>4} frames {row.fps:9.2f} fps{mfps}",
                flush=True,
            )

        rows += bench_input(clip, cfg, label=name, out_dir=args.work / "out", frames_for=frames_for, on_row=show)

    probe = None if gpu or args.no_probe else cpu_precision_probe()
    cpu_tables = None if gpu or args.no_cpu_tables else measure_cpu_tables(args)
    machine = machine_info()
    payload = {
        "command": command,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine,
        "frames": args.frames,
        "slow_frames": slow_frames,
        "skipped": skipped,
        "cpu_precision_probe_fps": probe,
        "load_average": _load(),
        "cpu_tables": cpu_tables,
        "rows": [r.to_dict() for r in rows],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(render(payload, rows))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'} in {payload['seconds']} s")
    return 0


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def paper(scale: int):
    """The paper-size ESPCN with its shipped weights (the issue's targets are stated for it)."""
    return lambda: load_for_bench("espcn", scale, "paper")[0]


def robust(scale: int):
    """The deeper ESPCN (8 convolutions of 48, ReLU, bicubic residual) with its shipped ``robust`` weights:
    what ``vidsr upscale`` runs when no model or weights are named."""
    return lambda: load_for_bench("espcn", scale, "robust")[0]


def measure_cpu_tables(args: argparse.Namespace) -> dict:
    """The CPU tables of RESULTS.md, in one run (see vidsr/bench_cpu.py)."""
    from vidsr import bench_cpu as bc

    print(f"CPU tables (load average {_load()})", flush=True)
    big = bc.frame_rgb(args.src)  # 768x576
    small = bc.frame_rgb(args.src, (480, 270))
    shapes = ((2, big), (4, small))
    tables: dict = {"load_before": _load()}

    def both_networks(table) -> list[dict]:
        """``table(build, label, height, width)`` for the paper and the robust ESPCN at x2 and x4."""
        nets = (("paper", paper), ("robust", robust))
        return [row for scale, rgb in shapes for label, net in nets for row in table(net(scale), label, *rgb.shape[:2])]

    tables["model_only"] = both_networks(bc.model_only_rows)
    print("  model only done", flush=True)
    tables["per_frame"] = [row for scale, rgb in shapes for row in bc.per_frame_rows(paper(scale), "paper", rgb)]
    tables["prepost"] = both_networks(bc.prepost_rows)
    print("  per frame and pre/post done", flush=True)
    cut = make_bench_input(args.src, args.work / f"vtest_{args.cli_frames}f{args.src.suffix}", args.cli_frames, None)
    tables["threads"] = bc.thread_rows(
        paper(2), "paper", cut, args.work / "out", (1, 2), (None, 1), suffixes=(cut.suffix, ".mp4")
    )
    print("  threads done", flush=True)
    commands = [
        (
            f"vidsr upscale {cut.name} -m espcn -s 2 --weights paper",
            [str(cut), "-m", "espcn", "-s", "2", "--weights", "paper"],
            None,
        ),
        (f"vidsr upscale {cut.name} -m bicubic -s 2", [str(cut), "-m", "bicubic", "-s", "2"], None),
        (
            f"vidsr upscale {cut.name} -m espcn -s 2 --weights paper --precision fp32",
            [str(cut), "-m", "espcn", "-s", "2", "--weights", "paper", "--precision", "fp32"],
            None,
        ),
        (f"vidsr upscale {cut.name} -s 2 (the default: espcn robust)", [str(cut), "-s", "2"], None),
        (f"vidsr upscale {cut.name} -s 2 --precision fp32", [str(cut), "-s", "2", "--precision", "fp32"], None),
        (
            f"vidsr upscale {cut.name} -m espcn -s 2 --weights paper --backend torch-cpu",
            [str(cut), "-m", "espcn", "-s", "2", "--weights", "paper", "--backend", "torch-cpu"],
            None,
        ),
    ]
    if args.before:
        old = args.before / "vidsr" / "models" / "weights" / "espcn_x2.safetensors"
        commands.append(
            (
                f"before: vidsr upscale {cut.name} -m espcn -s 2 (paper weights)",
                [str(cut), "-m", "espcn", "-s", "2", "--weights", str(old)],
                args.before,
            )
        )
    tables["cli"] = bc.cli_rows(commands, args.work / "out")
    print("  CLI done", flush=True)
    import precision  # benchmarks/precision.py, beside this file

    tables["precision"] = precision.measure(DATA, torch.get_num_threads())
    tables["load_after"] = _load()
    return tables


def _table(head: list[str], body: list[list]) -> list[str]:
    cell = lambda v: "–" if v is None or v == "" else str(v)  # noqa: E731
    return ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"] + [
        "| " + " | ".join(cell(v) for v in r) + " |" for r in body
    ]


def _pick(rows: list[dict], *keys: str) -> list[list]:
    return [[r.get(k) for k in keys] for r in rows]


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def render_cpu_tables(t: dict, m: dict) -> list[str]:
    from vidsr.bench_cpu import engine_label as bc_engine_label

    threads = m["torch_threads"]
    load = f"load average {t['load_before']} before, {t['load_after']} after"
    lines = [
        "## CPU tables",
        "",
        f"Measured in the same run ({load}; the machine is shared, so read the ratios within a table",
        "first). `paper` is the paper-size ESPCN (5x5-64, 3x3-32, 3x3-s², tanh) with the shipped `paper`",
        "weights, the network the issue's targets are stated for; `robust` is the deeper ESPCN (8 convolutions",
        "of 48, ReLU, in-graph bicubic global residual) with its shipped `robust` weights, the CLI's default.",
        "",
        f"### Model only: one luma frame, {threads} threads",
        "",
    ]
    lines += _table(
        ["network", "x", "input", "engine", "ms", "GFLOP / frame", "GFLOP/s", "max abs vs torch"],
        [
            [
                r["network"],
                r["scale"],
                r["input"],
                r["engine"],
                r["ms"],
                r["gflop"],
                r["gflops"],
                f"{r['max_abs_vs_torch']:.1e}",
            ]
            for r in t["model_only"]
        ],
    )
    lines += [
        "",
        "### Per frame: RGB in, RGB out",
        "",
        "`Upscaler.upscale_image` (colour conversion, the model on Y, chroma bicubic, rounding) beside OpenCV's",
        "`dnn_superres` `upsample` on the same frame (vtest.avi frame 0; 480x270 is it resized).",
        "",
    ]
    lines += _table(
        ["network", "x", "input", "engine", "ms / frame", "model ms", "OpenCV time / this", "note"],
        _pick(
            t["per_frame"], "network", "scale", "input", "engine", "frame_ms", "model_ms", "opencv_over_this", "note"
        ),
    )
    lines += [
        "",
        "### Pre/post-processing beside the model: video frames on auto's CPU engine",
        "",
        "`Upscaler.upscale_planes` on one yuv420p frame (8-bit planes in and out) against `run_model` alone,",
        "interleaved; the difference is colour handling, chroma resampling and quantisation (target: at most",
        "a quarter of the model's time).",
        "",
    ]
    lines += _table(
        ["network", "x", "input", "engine", "model ms", "frame ms", "pre/post ms", "pre/post / model"],
        _pick(
            t["prepost"],
            *("network", "scale", "input", "engine", "model_ms", "frame_ms", "prepost_ms", "prepost_over_model"),
        ),
    )
    lines += [
        "",
        "### Threads: model intra-op x encoder, end to end",
        "",
        f"`upscale_video` on the first {t['threads'][0]['frames']} frames of vtest.avi, ESPCN x2 (paper) on",
        "the engine auto picks here, each container's default encoder (AVI: mpeg4, MP4: libx264, its",
        "default preset); `auto` leaves the encoder's thread count to FFmpeg.",
        "",
    ]
    lines += _table(
        ["engine", "output", "model threads", "encoder threads", "frames", "fps"],
        _pick(t["threads"], "engine", "output", "model_threads", "encoder_threads", "frames", "fps"),
    )
    cli = t["cli"]
    lines += [
        "",
        "### `vidsr upscale`, end to end",
        "",
        "Each command in a fresh process, `--json -q`, fps from its summary (pipeline time; `wall s` adds",
        "start-up and the one-off ONNX export when not cached). `before:` rows run the vidsr of the commit",
        "before this work, from a source tree, in the same run.",
        "",
    ]
    lines += _table(
        ["command", "backend", "precision", "frames", "fps", "wall s"],
        [[f"`{r['command']}`", r["backend"], r.get("precision"), r["frames"], r["fps"], r["wall_s"]] for r in cli],
    )
    espcn, bicubic = cli[0]["fps"], cli[1]["fps"]
    before = next((r["fps"] for r in cli if r["command"].startswith("before:")), None)
    engine = bc_engine_label(cli[0]["backend"], cli[0]["precision"])
    x2_model = next(
        (r for r in t["model_only"] if r["network"] == "paper" and r["scale"] == 2 and r["engine"] == engine),
        None,
    )
    lines += [
        "",
        f"ESPCN x2 (paper) / bicubic x2: {_ratio(espcn, bicubic)} (target >= 0.25); "
        f"ESPCN x2 now / before: {_ratio(espcn, before)} (target >= 2.5).",
        "",
    ]
    if x2_model and bicubic:
        ceiling = 1000 / x2_model["ms"]
        lines += [
            f"The model alone bounds the first ratio: {x2_model['ms']} ms a 768x576 frame on {engine} (model-only",
            f"table) is at most {ceiling:.2f} fps with decoding and encoding free, {_ratio(ceiling, bicubic)} of "
            f"bicubic's {bicubic} fps;",
            f"0.25 needs {1000 / (0.25 * bicubic):.0f} ms a frame for everything.",
            "",
        ]
    lines += [
        "A load average far above the core count means other processes took most of the CPU: the",
        "absolute figures are then several times an idle machine's, and the multi-threaded engines",
        "(openvino, onnxruntime, OpenCV) lose more to the contention than single-threaded work does. The",
        "GFLOP/s targets (>= 100 on 2 threads) can only be judged on an idle machine.",
        "",
    ]
    if t.get("precision"):
        import precision

        lines += [
            "### Lower precisions: int8 and bf16 against fp32, model only",
            "",
            "`benchmarks/precision.py`, on one frame; fp32 is the onnxruntime graph (the fp32 default).",
            "int8 rows: vidsr's int8 graph (`vidsr/backends/int8.py`: uint8 activations from the ranges",
            "the weights file ships, 7-bit per-channel weights); bf16 rows: OpenVINO's bf16 inference",
            "precision on the fp32 graph; the paper ESPCN's `onnxruntime quantiser` rows (tanh: no int8",
            "form in vidsr) show why.  Quality on the full val set: the protocol's PSNR-Y, and for the",
            "robust ESPCN sets the mean gain over bicubic across the degradation matrix.  The bar: >= 1.5x",
            "faster and <= 0.05 dB PSNR-Y lost; `auto here`: what `--precision auto` runs on this CPU.",
            "",
        ]
        lines += _table(precision.HEAD, _pick(t["precision"], *precision.KEYS))
        lines += [""]
    return lines


def render(payload: dict, rows: list[BenchRow]) -> str:
    m = payload["machine"]
    gpu = m.get("gpu")
    where = f"GPU {gpu} ({m.get('gpu_memory_gib')} GiB, CUDA {m.get('cuda')}, TensorRT {m.get('tensorrt')})"
    lines = [
        "# Throughput benchmarks",
        "",
        f"Produced by `{payload['command']}` on {payload['date_utc']} UTC in {payload['seconds']:.0f} s.",
        "",
        "## Machine",
        "",
        f"* CPU: {m['cpu']}, {m['cores']} cores visible, torch threads {m['torch_threads']}, "
        f"capability {m['cpu_capability']}"
        + "".join(f", {flag.upper()} {'yes' if m[flag] else 'no'}" for flag in ("vnni", "bf16") if flag in m),
        f"* torch {m['torch']}, PyAV {m['pyav']} ({m['ffmpeg']}), Python {m['python']}"
        + "".join(f", {name} {v}" for name, v in m.get("runtimes", {}).items()),
        f"* {where if gpu else 'no GPU'}",
        "",
    ]
    gpu_run = payload.get("gpu")
    if gpu_run:
        lines += [
            f"GPU figures: the GPU section below, measured on {gpu_run['machine'].get('gpu') or 'no GPU'} on "
            f"{gpu_run['date_utc']} UTC (`benchmarks/gpu_bench.py`, run by `make gpu-check`).",
            "",
        ]
    elif not gpu:
        lines += [
            "**GPU figures are still to be measured.** This table is the CPU run only: no CUDA GPU and no",
            "TensorRT were available where it ran. Targets for the GPU run (same command with `--frames 120`):",
            "",
            GPU_TARGETS,
            "",
        ]
    lines += [
        "## How to read it",
        "",
        "* `io_ceiling`: decode + encode through the same threaded pipeline, the model replaced by a",
        "  pixel repeat on the CPU: the fastest any model can go here with this encoder",
        "  (libx264 veryfast crf 18, yuv420p, for every row).",
        "* `bicubic`: the bicubic baseline through the same pipeline, on the device.",
        "* `naive`: decode one frame, RGB, FP32 eager PyTorch at batch 1, encode; no threads, no overlap.",
        "* `opencv`: the same loop with OpenCV's dnn_superres ESPCN (`../shared/peers`, TF-ESPCN: the paper's",
        "  layer sizes) in place of vidsr; `/ opencv` is a pipeline row's fps over it.",
        "* `pipeline`: vidsr, per backend available. `model-only fps` is the backend alone on a batch",
        "  already on the device (no decode, no encode, no colour conversion).",
        "* `steady fps`: frames a second after the first batch; `startup s`: from the row's start (before its",
        "  upscaler is built) to its first frame written; `bound by`: the pipeline stage with the most seconds",
        "  and its share of the row's wall time (the stages overlap in threads). Rows measured before these",
        "  columns existed show `–`.",
        "* `/ io_ceiling` and `/ naive`: the row's steady fps divided by those rows' steady fps where both",
        "  have one, else end-to-end fps (same input and scale; same model for naive).",
        "* model `espcn:paper` runs the named weights set; plain `espcn` its default set. weights: the shipped",
        "  set that ran (`(default)`: what `vidsr upscale` picks); `random` = randomly initialised weights of",
        "  the same architecture where none ship (speed does not depend on weight values).",
        "* `/ opencv` compares like with like only for `espcn:paper` (OpenCV's ESPCN has the paper's layer",
        "  sizes); the default `robust` ESPCN is a deeper network (6x the FLOPs) that holds up on real footage.",
        f"* {payload['frames']} frames per row; slow rows (SRResNet on a CPU) use {payload['slow_frames']} frames"
        " and say so in the note.",
    ]
    if payload["skipped"]:
        lines.append(f"* Not run on this CPU (about a minute per frame or more): {', '.join(payload['skipped'])}.")
    lines.append("")
    if gpu_run:
        sys.path.insert(0, str(Path(__file__).parent))
        import gpu_bench  # benchmarks/gpu_bench.py, beside this file

        lines += gpu_bench.render_gpu(gpu_run)
    lines += ["## Results" + (" (the CPU run)" if gpu_run else ""), "", markdown_table(rows), ""]
    if payload.get("cpu_tables"):
        lines += render_cpu_tables(payload["cpu_tables"], m)
    if not gpu:
        lines += [
            "## Reading the CPU table",
            "",
            "* On a CPU the model is the bottleneck: pipeline fps tracks model-only fps and stays below",
            "  io_ceiling. `openvino` (the default where the CPU has VNNI or AVX512-BF16: int8 for calibrated",
            "  weights, else bf16), `onnxruntime` (the fp32 default) and `torch-cpu` (eager PyTorch, the",
            "  reference) run the same weights; their ratio is the runtime's and the precision's gain.",
            "* `/ naive` is mostly that gain too, little the overlap: on 2 cores the pipeline's decode and",
            "  encode threads compete with the model's threads for the same cores. Batching and Y-only",
            "  processing still help at x4, where naive converts and encodes full-size RGB.",
            "* Where the overlap pays is a GPU: the model leaves the CPU, which then only decodes and",
            "  encodes; that is what the targets above measure.",
            "",
        ]
    probe = payload.get("cpu_precision_probe_fps")
    if probe:
        lines += [
            "## torch-cpu precision: fp32 or bf16?",
            "",
            f"ESPCN x4, model only, 480x270 batch of 2 on this CPU: fp32 {probe['fp32']} fps, "
            f"bf16 {probe['bf16']} fps.",
            "Without AVX512-BF16/AMX PyTorch emulates bf16 convolution (an AVX2 CPU ran it 12x slower than",
            "fp32); with them bf16 can beat torch's fp32, but learned models run on openvino or onnxruntime",
            "by default (the model-only table), so torch-cpu, the reference, stays fp32 under `--precision auto`",
            "(`vidsr/backends/__init__.py`, `CPU_AUTO_DTYPE`); bf16 stays available with `--precision bf16`.",
            "",
        ]
    lines += [
        "## Caveats",
        "",
        "* 8 frames a row on 2 cores are noisy; run it with nothing else on the machine, and read",
        "  the ratios within one input and scale before the absolute figures.",
        "* GPU memory is PyTorch's allocator peak; a TensorRT engine's own memory is not in it.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
