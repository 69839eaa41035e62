"""``vidsr export-onnx``, ``vidsr build-engine`` and ``vidsr bench``: the GPU tooling.

Heavy imports (torch, TensorRT) happen inside the commands, so ``vidsr --help`` stays fast
and never touches TensorRT.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from vidsr.cli.common import debug_option, emit_json, handle_errors
from vidsr.cli.options import MODEL_NAMES

LEARNED = ["espcn", "srresnet", "srgan"]  # tests/test_cli_options.py checks this against the registry


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """``WxH`` -> (height, width), the order shapes use."""
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 960x540, got {value!r}") from None
    if w < 1 or h < 1:
        raise click.BadParameter(f"sizes must be positive, got {value!r}")
    return h, w


def _load(model: str, scale: int, weights: Path | None, random_weights: bool):
    from vidsr.bench import load_for_bench
    from vidsr.models import build_model

    if random_weights:
        if weights is not None:
            raise click.UsageError("--random-weights and --weights exclude each other")
        return load_for_bench(model, scale)[0]
    return build_model(model, scale, weights=weights)


model_options = [
    click.option("-m", "--model", type=click.Choice(LEARNED), default="espcn", show_default=True),
    click.option("-s", "--scale", type=click.IntRange(2, 4), default=4, show_default=True),
    click.option("--weights", type=click.Path(path_type=Path), help="Weights file [default: the shipped weights]."),
    click.option(
        "--random-weights", is_flag=True, help="Random weights of the architecture (speed tests before training)."
    ),
]


def _with_model_options(fn):
    for option in reversed(model_options):
        fn = option(fn)
    return fn


@click.command("export-onnx")
@_with_model_options
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="ONNX file to write.")
@click.option("--opset", type=click.IntRange(17, 23), default=18, show_default=True)
@click.option("--check/--no-check", default=True, show_default=True, help="Compare with PyTorch in onnxruntime.")
@debug_option
@handle_errors
def export_onnx(
    model: str, scale: int, weights: Path | None, random_weights: bool, output: Path, opset: int, check: bool
) -> None:
    """Export a model to ONNX with dynamic batch, height and width."""
    from vidsr.backends.onnx_export import export_onnx as export
    from vidsr.backends.onnx_export import verify_onnx

    loaded = _load(model, scale, weights, random_weights)
    export(loaded, output, opset=opset)
    click.echo(f"wrote {output} ({model} x{scale}, opset {opset}, dynamic batch/height/width)", err=True)
    if check:
        try:
            error = verify_onnx(loaded, output)
        except ImportError:
            click.echo("onnxruntime not installed: skipped the numerical check", err=True)
            return
        click.echo(f"onnxruntime vs PyTorch: max abs error {error:.2e} over 2 batch sizes x 2 frame sizes", err=True)


@click.command("build-engine")
@_with_model_options
@click.option("--precision", type=click.Choice(["fp16", "fp32"]), default="fp16", show_default=True)
@click.option("--opt-batch", type=click.IntRange(1, 256), help="Batch TensorRT tunes for [default: per model].")
@click.option("--max-batch", type=click.IntRange(1, 256), help="Largest batch [default: per model].")
@click.option("--opt-size", callback=_size, help="Input frame size tuned for, WxH [default: per model].")
@click.option(
    "--max-size", callback=_size, help="Largest input frame, WxH; larger ones are tiled [default: per model]."
)
@click.option(
    "--engine-dir",
    type=click.Path(path_type=Path),
    envvar="VIDSR_ENGINE_DIR",
    help="Engine cache [default: engines/ in a checkout, else ~/.cache/vidsr/engines].",
)
@click.option("--force", is_flag=True, help="Rebuild even when a current engine is cached.")
@click.option("--json", "as_json", is_flag=True, help="Print the engine path and its key as JSON.")
@debug_option
@handle_errors
def build_engine(
    model: str,
    scale: int,
    weights: Path | None,
    random_weights: bool,
    precision: str,
    opt_batch: int | None,
    max_batch: int | None,
    opt_size: tuple[int, int] | None,
    max_size: tuple[int, int] | None,
    engine_dir: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Build (or find in the cache) the TensorRT engine for a model, ahead of time."""
    from dataclasses import replace

    from vidsr.backends.engine_cache import EngineCache, default_build_options
    from vidsr.backends.tensorrt import prepare_engine

    loaded = _load(model, scale, weights, random_weights)
    options = default_build_options(loaded.spec.architecture, precision)
    changes = {
        k: v
        for k, v in {"opt_batch": opt_batch, "max_batch": max_batch, "opt_hw": opt_size, "max_hw": max_size}.items()
        if v is not None
    }
    if changes:
        if "max_batch" in changes and "opt_batch" not in changes:
            changes["opt_batch"] = min(options.opt_batch, changes["max_batch"])
        if "max_hw" in changes and "opt_hw" not in changes:
            changes["opt_hw"] = tuple(min(a, b) for a, b in zip(options.opt_hw, changes["max_hw"], strict=True))
        options = replace(options, **changes)

    def say(message: str) -> None:
        click.echo(f"build-engine: {message}", err=True)

    prepared = prepare_engine(loaded, options=options, cache=EngineCache(engine_dir), progress=say, force=force)
    key, paths, built = prepared.key, prepared.paths, prepared.built
    if as_json:
        emit_json({"engine": str(paths.engine), "built": built, "sidecar": str(paths.sidecar), "key": key.to_dict()})
    else:
        click.echo(f"{'built' if built else 'cached'}: {paths.engine}")


@click.command("bench")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--models", default="espcn,srresnet", show_default=True, help="Comma-separated models.")
@click.option("-s", "--scale", "scales", type=click.IntRange(2, 4), multiple=True, help="Repeatable [default: 2, 4].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--backend", "backends", multiple=True, help="Backends for the pipeline rows [default: all that work].")
@click.option("--frames", type=click.IntRange(1), help="Use the first N frames of INPUT [default: all].")
@click.option("--batch", "batch_size", type=click.IntRange(1, 256), help="Frames per model call.")
@click.option(
    "--stages", default="io_ceiling,bicubic,naive,pipeline", show_default=True, help="Comma-separated stages."
)
@click.option("--json", "as_json", is_flag=True, help="Rows as JSON on stdout (with the machine).")
@debug_option
@handle_errors
def bench(
    input_path: Path,
    models: str,
    scales: tuple[int, ...],
    device: str,
    backends: tuple[str, ...],
    frames: int | None,
    batch_size: int | None,
    stages: str,
    as_json: bool,
) -> None:
    """Throughput of INPUT through io_ceiling, bicubic, naive and vidsr's pipeline.

    Each row gives end-to-end fps, steady fps (after the first batch), start-up seconds and the
    stage that bounds it; ``--json`` adds the seconds of every stage."""
    from vidsr.bench import STAGES, BenchConfig, bench_input, machine_info, make_bench_input, markdown_table

    wanted = tuple(s.strip() for s in stages.split(",") if s.strip())
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise click.BadParameter(
            f"unknown stage {unknown[0]!r}; choose from {', '.join(STAGES)}", param_hint="--stages"
        )
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    for name in names:
        if name not in MODEL_NAMES:
            raise click.BadParameter(
                f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}", param_hint="--models"
            )
    cfg = BenchConfig(
        models=names, scales=scales or (2, 4), device=device, backends=backends or None, batch_size=batch_size
    )
    with tempfile.TemporaryDirectory(prefix="vidsr-bench-") as tmp:
        work = Path(tmp)
        src = input_path
        if frames is not None:
            src = make_bench_input(
                input_path, work / f"{input_path.stem}.first{frames}{input_path.suffix}", frames, None
            )

        def show(row) -> None:
            if not as_json:
                steady = f", steady {row.steady_fps:.2f}" if row.steady_fps else ""
                click.echo(
                    f"bench: {row.stage:<10} {row.model:<9} x{row.scale} {row.backend:<14} {row.fps:9.2f} fps{steady}",
                    err=True,
                )

        rows = bench_input(src, cfg, label=input_path.name, out_dir=work, stages=wanted, on_row=show)
    if as_json:
        emit_json({"machine": machine_info(), "rows": [r.to_dict() for r in rows]})
    else:
        click.echo(markdown_table(rows))
