"""``vidsr train`` and ``vidsr eval``: parse options, call :mod:`vidsr.train.loop` / :mod:`vidsr.evaluate`."""

from __future__ import annotations

from pathlib import Path

import click

from vidsr.cli.common import emit_json, handle_errors, sigterm_as_interrupt
from vidsr.cli.options import MODEL_NAMES

# vidsr.degrade.RECIPES, spelled out so the CLI starts without importing torch (a test keeps them equal).
RECIPE_NAMES = ("protocol", "robust-v1", "robust-v2", "robust-v3", "robust-v4", "robust-v5", "robust-v6")
# vidsr.train.data.EXTRA_SOURCES, likewise
EXTRA_SOURCES = ("scikit-image", "debian-wallpapers", "ubuntu-wallpapers", "ubuntu-flavours")

_SCALES = click.Choice(["2", "3", "4"])


@click.command()
@click.option("-m", "--model", "model_name", type=click.Choice(["espcn", "srresnet", "srgan"]), required=True)
@click.option("-s", "--scale", type=_SCALES, required=True, help="Upscaling factor.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder of HR images.")
@click.option("--val", type=click.Path(file_okay=False, path_type=Path), required=True, help="Validation images.")
@click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--patch", type=click.IntRange(min=0), default=0, help="HR crop side [24 x scale for espcn, 96 else].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--loss", type=click.Choice(["l1", "mse"]), default="l1", show_default=True, help="Pixel loss.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoint file [runs/MODEL_xSCALE.pt]; weights and log are written beside it.",
)
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Checkpoint to resume.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--val-every", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--val-crop", type=click.IntRange(min=0), default=0, help="Validate on centre crops of this side.")
@click.option(
    "--init",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Weights to start from: srgan's trained srresnet, or any fitting network (x2 body for x4).",
)
@click.option(
    "--vgg-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="srgan: torchvision VGG19 state dict, for the paper's VGG content loss "
    "[without: pixel L1 + discriminator feature matching].",
)
@click.option("--adv-weight", type=float, default=1e-3, show_default=True, help="srgan: adversarial loss weight.")
@click.option(
    "--fm-weight",
    type=float,
    default=0.1,
    show_default=True,
    help="srgan without --vgg-weights: feature-matching weight beside pixel L1.",
)
@click.option(
    "--disc-features", type=click.IntRange(min=8), default=64, show_default=True, help="srgan: discriminator width."
)
@click.option(
    "--disc-head",
    type=click.Choice(["paper", "pooled"]),
    default="paper",
    show_default=True,
    help="srgan: the paper's 6x6 dense head, or the mean over the patch (light, PatchGAN-like).",
)
@click.option(
    "--stop-at", type=click.IntRange(min=0), default=0, help="Checkpoint and stop after this step (resume later)."
)
@click.option(
    "--arch",
    default="",
    help="Architecture variant: espcn paper (the paper's 3 layers, default) or robust; "
    "srresnet/srgan paper (default) or lite.",
)
@click.option(
    "--degradations",
    type=click.Choice(RECIPE_NAMES),
    default="protocol",
    show_default=True,
    help="How LR is made: the paper's antialiased bicubic, or a random mix of blur, kernels, noise, JPEG, H.264 "
    "(robust-v2: milder tails; robust-v3/v4: v2 with 40%/50% of LR made without antialiasing; "
    "robust-v5: drawn as often as the degradation matrix's rows; robust-v6: v5, compression around JPEG 40 / CRF 28).",
)
@click.option(
    "--ema",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.0,
    help="Decay of a moving average of the weights that is validated and exported (e.g. 0.999) [0: off].",
)
@click.option(
    "--extra-photos",
    type=click.Choice(EXTRA_SOURCES),
    multiple=True,
    help="Also train on openly licensed photos of registry packages: scikit-image (its wheel's 9, CC0 or "
    "public domain), debian-wallpapers (22, fetched first by benchmarks/debian_photos.py), ubuntu-wallpapers "
    "(274, fetched first by benchmarks/ubuntu_photos.py) or ubuntu-flavours (469, fetched first by "
    "benchmarks/ubuntu_photos.py --source ubuntu-flavours).",
)
@click.option(
    "--hr-zoom",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Show each HR crop at a random size between this and 1x of its photo (a wider crop, antialiased "
    "down): more scales of the same photos. 1: off.",
)
@click.option(
    "--val-side",
    type=click.Choice(["selection", "all"]),
    default="selection",
    show_default=True,
    help="Which photos of --val pick the checkpoint (vidsr/split.py); the report side is for measuring only "
    "and cannot be chosen. all: every photo of a folder of your own.",
)
@click.option(
    "--regret-weight",
    type=click.FloatRange(min=0.0),
    default=0.0,
    help="Add this x the per-patch MSE above a bicubic upscale's (patches where the network loses) [0: off].",
)
@click.option(
    "--steady-weight",
    type=click.FloatRange(min=0.0),
    default=0.0,
    help="srgan: add this x how far the answer moves when the LR gets noise of 2/255 (a still scene's "
    "frame-to-frame noise): grain that does not flicker [0: off].",
)
@click.option(
    "--keep-validated",
    is_flag=True,
    help="Also write each validated step's weights as OUT.stepN.safetensors (to compare a GAN's checkpoints).",
)
@click.option(
    "--data-workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Draw batches ahead in this many processes (feeds a GPU); batch k then comes from seed (seed, k), "
    "the same for any count. 0: in the training process, one generator (earlier runs' way).",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="Mixed precision of the passes (weights stay float32). auto: fp16 on CUDA, fp32 on a CPU; bf16 "
    "steps 2.4x faster on a CPU with AMX (benchmarks/train_precision.py).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Checkpoint and stop after this many seconds (a GPU lease's end); --resume goes on.",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@handle_errors
@sigterm_as_interrupt()  # kill / a scheduler's stop checkpoints and closes the batch workers, as Ctrl-C does
def train(
    model_name: str,
    scale: str,
    out: Path | None,
    threads: int | None,
    time_limit: float | None,
    as_json: bool,
    quiet: bool,
    **opts,
):
    """Train MODEL on a folder of HR images; keep the best checkpoint by validation PSNR-Y."""
    import time

    import torch

    from vidsr.train.loop import TrainConfig
    from vidsr.train.loop import train as run_training

    if threads:
        torch.set_num_threads(threads)
    out = out or Path("runs") / f"{model_name}_x{scale}.pt"
    paths = {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.items()}
    config = TrainConfig(model=model_name, scale=int(scale), out=str(out), progress=not quiet, **paths)
    until = time.monotonic() + time_limit if time_limit else None
    result = run_training(config, until=until)
    payload = {
        "step": result.step,
        "best_step": result.best_step,
        "best_val_psnr": result.best_psnr,
        "checkpoint": str(result.checkpoint),
        "weights": str(result.weights) if result.weights else None,
        "log": str(result.log),
        "metadata": result.metadata,
    }
    if as_json:
        emit_json(payload)
        return
    if result.step < config.steps:
        click.echo(
            f"stopped {model_name} x{scale} at step {result.step} of {config.steps} (best val PSNR-Y "
            f"{result.best_psnr:.2f} dB); go on with --resume {result.checkpoint} and the same options"
        )
        return
    click.echo(f"trained {model_name} x{scale}: {result.step} steps, best val PSNR-Y {result.best_psnr:.2f} dB")
    if result.weights:
        meta = result.metadata
        click.echo(
            f"weights: {result.weights} ({meta['selected_on']['side']} photos of --val: {meta['val_psnr']:.2f} dB / "
            f"SSIM {meta['val_ssim']:.4f}; "
            f"bicubic {meta['bicubic_psnr']:.2f} dB / {meta['bicubic_ssim']:.4f})"
        )


@click.command(name="eval")
@click.argument("images", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-m", "--model", "model_name", type=click.Choice(MODEL_NAMES), required=True)
@click.option("-s", "--scale", type=_SCALES, required=True)
@click.option(
    "--weights",
    default=None,
    help="A weights file, or a shipped set's name (robust, large, cascade, paper) [the default set].",
)
@click.option(
    "--degradations",
    default=None,
    help="The degradation matrix instead of the protocol: 'all' or a comma list of "
    "bicubic-aa, bicubic, area, blur, jpeg, h264, noise.",
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--ensemble", is_flag=True, help="The model's self-ensemble, as `vidsr upscale --ensemble`.")
@click.option("--json", "as_json", is_flag=True, help="Print per-image (or per-row) and mean figures as JSON.")
@handle_errors
def evaluate(
    images: Path,
    model_name: str,
    scale: str,
    weights: str | None,
    degradations: str | None,
    device: str,
    ensemble: bool,
    as_json: bool,
) -> None:
    """PSNR/SSIM on Y of MODEL vs bicubic over a folder of HR IMAGES.

    The protocol of the SR literature: each image cropped to a multiple of the scale, LR made by
    Pillow's antialiased bicubic (8-bit), upscaled, converted to BT.601 studio-range Y (as MATLAB's
    rgb2ycbcr), `scale` pixels shaved from each border. With --degradations, the same photos with LR
    made each of those ways (see `vidsr.degrade`), beside bicubic and Lanczos, and the mean gain.
    """
    from vidsr.evaluate import MatrixResult, evaluate_folder

    result = evaluate_folder(
        images,
        model=model_name,
        scale=int(scale),
        weights=weights,
        device=device,
        degradations=degradations,
        ensemble=ensemble,
    )
    if as_json:
        emit_json(result.to_dict())
        return
    if isinstance(result, MatrixResult):
        _print_matrix(result)
        return
    width = max(len(i.name) for i in result.images)
    click.echo(f"{'image':<{width}}  {model_name + ' PSNR/SSIM':>22}  {'bicubic PSNR/SSIM':>22}")
    for i in result.images:
        click.echo(f"{i.name:<{width}}  {i.psnr:>13.2f} / {i.ssim:.4f}  {i.bicubic_psnr:>13.2f} / {i.bicubic_ssim:.4f}")
    click.echo(
        f"{'mean':<{width}}  {result.psnr:>13.2f} / {result.ssim:.4f}  "
        f"{result.bicubic_psnr:>13.2f} / {result.bicubic_ssim:.4f}"
    )


def _print_matrix(result) -> None:
    click.echo(f"{result.model} x{result.scale}: PSNR-Y (dB) / SSIM-Y by how the LR was made")
    header = f"{'LR made by':<12} {result.model:>16} {'bicubic':>16} {'lanczos':>16} {'gain':>7}"
    click.echo(header)
    for r in result.rows:
        click.echo(
            f"{r.degradation:<12} {r.psnr:>7.2f} / {r.ssim:.4f} {r.bicubic_psnr:>7.2f} / {r.bicubic_ssim:.4f} "
            f"{r.lanczos_psnr:>7.2f} / {r.lanczos_ssim:.4f} {r.gain:>+7.2f}"
        )
    mean = result.to_dict()["mean"]
    click.echo(
        f"{'mean':<12} {mean['psnr']:>7.2f} / {mean['ssim']:.4f} {mean['bicubic_psnr']:>7.2f} / "
        f"{mean['bicubic_ssim']:.4f} {mean['lanczos_psnr']:>7.2f} / {mean['lanczos_ssim']:.4f} "
        f"{result.mean_gain:>+7.2f}"
    )


@click.command()
@click.argument("weights", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder of HR photos (the training set): LR inputs are made from them by the file's own recipe.",
)
@click.option("--patches", type=click.IntRange(min=1), default=64, show_default=True, help="LR patches to measure on.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the measured ranges as JSON.")
@handle_errors
def calibrate(weights: Path, data: Path, patches: int, seed: int, as_json: bool) -> None:
    """Measure WEIGHTS' int8 activation ranges and store them in its metadata (tensors untouched).

    The onnxruntime backend then builds an int8 graph from them (the default on CPUs with VNNI;
    --precision int8 elsewhere).  Only the ReLU ESPCN family (the robust sets) has an int8 form.
    """
    from vidsr.train.calibrate import calibrate_weights

    result = calibrate_weights(weights, data, patches=patches, seed=seed)
    if as_json:
        emit_json({"weights": str(weights), **result.to_dict()})
        return
    click.echo(f"calibrated {weights}: {len(result.ranges)} ranges from {result.source}")
