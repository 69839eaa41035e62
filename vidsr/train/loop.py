"""The training loop behind ``vidsr train``: one function, options in a frozen dataclass.

* Periodic validation on the selection side of the val photos only (:mod:`vidsr.split`;
  the report side is never looked at here); the checkpoint with the best score of
  :mod:`vidsr.train.validation` is kept, in the checkpoint and as
  ``<out>.best.safetensors``: PSNR-Y for protocol runs, the matrix's mean gain with
  losing rows counted twice for robust runs, NIQE for SRGAN.
* Checkpoints hold the model, optimiser(s), AMP scaler, step, elapsed seconds,
  the RNG states (torch, numpy, python) and the patch sampler's state, so a
  resumed run continues exactly as an uninterrupted run of the same seed would.
  Ctrl-C writes a checkpoint before stopping, and so does a run that reaches its
  ``until`` (a GPU lease's end): both resume where they stopped.
* ``data_workers`` > 0 draws the batches ahead in that many processes
  (:class:`vidsr.train.data.ParallelPatchSampler`), for a GPU that steps faster than
  one core degrades patches; the batches then depend on the seed, not on the count.
* ``precision``: mixed precision (autocast; the weights and Adam stay float32), float16
  with loss scaling on CUDA by default, bfloat16 by choice (``bf16``: 2.4x the float32
  steps a second on a CPU with AMX: ``benchmarks/train_precision.py``).  The networks'
  bicubic residual and the output sum stay float32 under it
  (:meth:`vidsr.models.bicubic_residual.BicubicPhases.add_to`); a network without that
  residual has its output rounded to the autocast type.
* The learning rate is a pure function of the step (cosine decay), so nothing
  about the schedule has to be restored.
* At the end the best weights are written as ``<out stem>.safetensors`` (fp16)
  with the metadata ``vidsr models`` reads, measured on the whole selection photos
  (``benchmarks/quality.py`` measures the report side).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsr.backends.int8 import METADATA_KEY as INT8_KEY
from vidsr.backends.int8 import calibrate, quantised_layers
from vidsr.degrade import MATRIX, RECIPES, describe_recipe
from vidsr.errors import InputError, ModelError
from vidsr.evaluate import evaluate_images, evaluate_matrix, list_images, load_rgb, module_upscaler
from vidsr.models import arch_config, build_module, get_spec
from vidsr.models.weights import init_from, load_weights, read_metadata, save_weights, training_runs
from vidsr.split import SplitRecord, on_side
from vidsr.train.calibrate import calibration_batches
from vidsr.train.data import EXTRA_SOURCES, ParallelPatchSampler, PatchSampler, load_extra, load_folder
from vidsr.train.losses import SRGANGeneratorLoss, bicubic_regret, discriminator_loss, pixel_loss, steadiness
from vidsr.train.validation import make_valset, validate

TRAINABLE = ("espcn", "srresnet", "srgan")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def restore_scaler(scaler: torch.amp.GradScaler, state: dict[str, Any]) -> None:
    """Go on with a checkpoint's loss scale.  A checkpoint from a CPU or a bf16 run has none (its scaler
    was off), and an enabled scaler refuses that empty state: it then starts from its initial scale."""
    if state and scaler.is_enabled():
        scaler.load_state_dict(state)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of ``precision`` on ``device``; None: float32 throughout."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run.  ``patch`` is the HR crop side (a multiple of ``scale``)."""

    model: str
    scale: int
    data: str
    val: str
    out: str
    steps: int = 20000
    batch: int = 16
    patch: int = 0  # 0: 24 x scale for espcn, 96 for the SRResNet family (the paper's crops)
    lr: float = 1e-3
    lr_min_factor: float = 0.01  # cosine decay from lr to lr x this over the run
    loss: str = "l1"
    seed: int = 0
    device: str = "cpu"
    resume: str | None = None
    val_every: int = 1000
    val_crop: int = 0  # >0: validate during training on centre crops of this side (final figures use full images)
    init: str | None = None  # srgan: trained srresnet weights to start from
    vgg_weights: str | None = None  # srgan: torchvision-format VGG19 state dict
    adv_weight: float = 1e-3
    fm_weight: float = 0.1  # srgan without VGG: weight of discriminator feature matching beside pixel L1
    disc_features: int = 64  # srgan: the discriminator's first width (the paper's 64)
    disc_head: str = "paper"  # srgan: "paper" or "pooled" (vidsr.train.discriminator)
    stop_at: int = 0  # >0: checkpoint and stop after this step, as an interruption would (resumable)
    progress: bool = True
    arch: str = ""  # architecture variant (espcn: "paper" or "robust"); "" is the family's default
    degradations: str = "protocol"  # the LR recipe of vidsr.degrade: "protocol", "robust-v1", "robust-v2"
    # >0: the decay of an exponential moving average of the weights, which is what is validated, kept as
    # the best checkpoint and exported: it averages out the step-to-step noise of Adam at a high learning rate.
    ema: float = 0.0
    # Registry packages whose openly licensed photos join ``data`` (vidsr.train.data.EXTRA_SOURCES).
    extra_photos: tuple[str, ...] = ()
    # <1: each HR crop shows its photo at a random size between this and 1x (vidsr.train.data.PatchSampler).
    hr_zoom: float = 1.0
    # Which photos of ``val`` may steer the run (vidsr.split): checkpoint picking and the exported figures
    # use the selection side only, so the report side stays a fair test; "all" for a folder of one's own.
    val_side: str = "selection"
    # >0: add this x the per-patch excess of MSE over bicubic's (vidsr.train.losses.bicubic_regret).
    regret_weight: float = 0.0
    # srgan, >0: add this x how far its answer moves when the LR gets a little noise (losses.steadiness).
    steady_weight: float = 0.0
    # Also write each validated step's weights (<out>.step<N>.safetensors): for choosing among a GAN's
    # checkpoints by what validation does not measure (flicker on the selection clips).
    keep_validated: bool = False
    # >0: draw the batches ahead in this many worker processes, batch k from a generator seeded by (seed, k);
    # 0: one generator in the training process (the runs before it existed).  A checkpoint resumes only in its
    # own kind: the two draw different patches.
    data_workers: int = 0
    # The arithmetic of the forward and backward passes (the weights and Adam stay float32): "auto" is
    # float16 autocast with loss scaling on CUDA and float32 on a CPU; "bf16" bfloat16 autocast (CPUs with
    # AMX or AVX512-BF16, where it steps 2.4x faster than float32; recent GPUs); "fp16" with loss scaling
    # (CUDA's way, anywhere: a CPU runs it to check that path, slowly); "fp32".
    precision: str = "auto"

    @property
    def hr_patch(self) -> int:
        if self.patch:
            return self.patch
        return 24 * self.scale if self.model == "espcn" else 96

    def check(self) -> None:
        if self.model not in TRAINABLE:
            raise ModelError(f"cannot train {self.model!r}; trainable models are {', '.join(TRAINABLE)}")
        spec = get_spec(self.model)
        if self.scale not in spec.scales:
            raise ModelError(f"{self.model} supports scales {', '.join(map(str, spec.scales))}, not {self.scale}")
        if self.steps < 1 or self.batch < 1 or self.val_every < 1:
            raise InputError("--steps, --batch and the validation interval must be positive")
        if self.hr_patch % self.scale:
            raise InputError(f"--patch {self.hr_patch} is not a multiple of the scale {self.scale}")
        if self.model == "srgan" and self.init is None:
            raise ModelError("srgan fine-tunes a trained srresnet: pass its weights with --init")
        if self.steady_weight and self.model != "srgan":
            raise InputError("--steady-weight is for srgan: it damps the grain a GAN invents, frame to frame")
        if self.data_workers < 0:
            raise InputError(f"--data-workers {self.data_workers} must be 0 or more")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown --precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if not 0.0 < self.hr_zoom <= 1.0:
            raise InputError(f"--hr-zoom {self.hr_zoom} must be in (0, 1]")
        if not 0.0 <= self.ema < 1.0:
            raise InputError(f"--ema {self.ema} must be in [0, 1)")
        if self.degradations not in RECIPES:
            raise InputError(f"unknown degradation recipe {self.degradations!r}; choose from {', '.join(RECIPES)}")
        arch_config(self.model, self.arch)  # refuses an unknown variant
        if self.arch == "cascade" and self.scale != 4:
            raise ModelError(f"--arch cascade is x4 only (two x2 passes), not x{self.scale}")
        if self.val_side not in ("selection", "all"):  # picking on the report side would leak it
            raise InputError(f"--val-side {self.val_side!r}: choose selection or all (report is never picked on)")
        unknown = [s for s in self.extra_photos if s not in EXTRA_SOURCES]
        if unknown:
            raise InputError(f"unknown extra photo source {unknown[0]!r}; choose from {', '.join(EXTRA_SOURCES)}")


@dataclass(frozen=True)
class TrainResult:
    step: int
    best_step: int
    best_psnr: float
    checkpoint: Path
    weights: Path | None  # the exported fp16 weights with metadata (None when stopped early)
    log: Path
    metadata: dict[str, Any]


def lr_at(config: TrainConfig, step: int) -> float:
    """Cosine decay from ``lr`` to ``lr * lr_min_factor`` over ``steps``."""
    floor = config.lr * config.lr_min_factor
    return floor + 0.5 * (config.lr - floor) * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))


def _paths(config: TrainConfig) -> tuple[Path, Path, Path, Path]:
    out = Path(config.out)
    return out, out.with_suffix(".jsonl"), out.with_suffix(".best.safetensors"), out.with_suffix(".safetensors")


def val_images(config: TrainConfig) -> list[Path]:
    """The photos of ``config.val`` this run may look at: its ``val_side`` of the split (vidsr.split)."""
    images = on_side(list_images(config.val), config.val_side)
    if not images:
        raise InputError(
            f"no photo of {config.val} is on the {config.val_side} side of the split (vidsr/split.py); "
            "--val-side all validates on every photo of a folder of your own"
        )
    return images


def run_of_checkpoint(path: str | Path) -> tuple[TrainConfig, dict[str, Any]]:
    """The options a run's checkpoint (``RUN.pt``) was trained with, and the checkpoint: what a later export of
    weights derived from that run (a picked step, a blend, a soup) records as its recipe."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    saved = checkpoint["config"]
    options = {f.name: saved[f.name] for f in fields(TrainConfig) if f.name in saved}
    options["extra_photos"] = tuple(options.get("extra_photos", ()))
    return TrainConfig(**options), checkpoint


def selected_on(config: TrainConfig) -> SplitRecord:
    """What the weights record about the photos that picked them."""
    return SplitRecord(_short_path(config.val), config.val_side, tuple(p.name for p in val_images(config)))


def _rng_state() -> dict[str, Any]:
    # numpy's legacy state holds an array; stored as a tensor so weights_only loading accepts it.
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _short_path(path: str) -> str:
    # Metadata names the data by its last three parts ("shared/data/train"), not this machine's layout.
    return "/".join(Path(path).resolve().parts[-3:])


def _history(config: TrainConfig) -> list[dict[str, Any]]:
    """The runs the weights came from, oldest first: those of the ``--init`` weights, if they say, then this one."""
    if config.init and Path(config.init).suffix == ".safetensors":
        return training_runs(read_metadata(config.init))
    return []


def network_config(config: TrainConfig) -> dict[str, Any]:
    """The architecture trained: ``--arch`` when given, else that of the ``--init`` weights (same family), else
    the family's default; so ``srgan --init srresnet_lite.safetensors`` fine-tunes the network it is given."""
    if not config.arch and config.init and Path(config.init).suffix == ".safetensors":
        meta = read_metadata(config.init)
        if meta.get("architecture") == get_spec(config.model).architecture and "arch_config" in meta:
            return meta["arch_config"]
    return arch_config(config.model, config.arch)


def _loss_name(config: TrainConfig) -> str:
    regret = f"+{config.regret_weight:g}xbicubic-regret" if config.regret_weight else ""
    if config.model != "srgan":
        return config.loss + regret
    content = "vgg54" if config.vgg_weights else f"l1+{config.fm_weight:g}xfeature-matching"
    steady = f"+{config.steady_weight:g}xsteadiness" if config.steady_weight else ""
    return f"{content}+{config.adv_weight:g}xadversarial{regret}{steady}"


def export_metadata(
    config: TrainConfig,
    seconds: float,
    final: Any,
    steps_done: int,
    matrix: Any = None,
    selected_step: int | None = None,
) -> dict[str, Any]:
    spec = get_spec(config.model)
    recipe = {
        "steps": steps_done,
        "patch": config.hr_patch,
        "batch": config.batch,
        "lr": config.lr,
        "loss": _loss_name(config),
        "seed": config.seed,
        "data": _short_path(config.data),
        "device": config.device,
        "seconds": round(seconds, 1),
        "degradations": config.degradations,
        "init": Path(config.init).name if config.init else None,
    }
    if config.ema:
        recipe["ema"] = config.ema
    if config.model == "srgan":
        recipe["discriminator"] = {"features": config.disc_features, "head": config.disc_head}
    if config.extra_photos:
        recipe["extra_photos"] = list(config.extra_photos)
    if config.hr_zoom < 1.0:
        recipe["hr_zoom"] = config.hr_zoom
    if config.data_workers:  # batch k seeded by (seed, k): other patches than one generator draws
        recipe["batch_seeds"] = "per batch"
    if config.precision != "auto":
        recipe["precision"] = config.precision
    if selected_step is not None and selected_step != steps_done:
        recipe["selected_step"] = selected_step  # the weights are the best validation checkpoint, not the last
    meta = {
        "architecture": spec.architecture,
        "arch_config": network_config(config),
        "model": config.model,
        "scale": config.scale,
        "recipe": recipe,
        "degradations": describe_recipe(config.degradations),
        "history": [*_history(config), recipe],
        "val_psnr": round(final.psnr, 4),
        "val_ssim": round(final.ssim, 5),
        "bicubic_psnr": round(final.bicubic_psnr, 4),
        "bicubic_ssim": round(final.bicubic_ssim, 5),
        "val_set": _short_path(config.val),
        # The checkpoint was picked, and the figures above measured, on these photos only.
        "selected_on": selected_on(config).to_dict(),
    }
    if matrix is not None:
        meta["matrix"] = matrix.summary()
    return meta


def export_weights(
    config: TrainConfig,
    state: dict[str, torch.Tensor],
    dest: Path,
    seconds: float,
    steps: int,
    selected_step: int | None = None,
) -> dict[str, Any]:
    """Write ``state`` as fp16 safetensors with metadata measured, from the fp16 weights, on the run's side of
    the val split (the selection side: the report side is measured by benchmarks/quality.py, never here):
    the protocol's PSNR/SSIM and every row of the degradation matrix."""
    spec = get_spec(config.model)
    module = build_module(config.model, config.scale, network_config(config))
    # Measure what ships: round-trip through fp16 first.
    module.load_state_dict({k: v.half().to(v.dtype) if v.is_floating_point() else v for k, v in state.items()})
    module.to(config.device).eval()
    images = [(p.name, load_rgb(p)) for p in val_images(config)]
    upscale = module_upscaler(module, spec.colour, config.device)
    final = evaluate_images(images, config.scale, upscale, model=config.model)
    matrix = evaluate_matrix(images, config.scale, upscale, list(MATRIX.values()), model=config.model)
    meta = export_metadata(config, seconds, final, steps, matrix, selected_step)
    if quantised_layers(module):  # the int8 graph's ranges, measured on the inputs this run trained on
        batches, source = calibration_batches(config.data, config.scale, meta)
        meta[INT8_KEY] = calibrate(module.cpu(), batches, source).to_dict()
    save_weights(module, dest, meta, half=True)
    return meta


def train(
    config: TrainConfig,
    *,
    on_validation: Callable[[dict[str, Any]], None] | None = None,
    until: float | None = None,
) -> TrainResult:
    """Train ``config.model`` and return where the checkpoint, log and weights are.

    ``until``: a ``time.monotonic()`` reading after which the run checkpoints and stops at the end of
    the step in progress, resumable like ``stop_at`` (no validation is added, so the resumed run
    validates at the same steps as an uninterrupted one)."""
    from tqdm import tqdm

    config.check()
    spec = get_spec(config.model)
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but torch sees no CUDA GPU")
    ckpt_path, log_path, best_path, weights_path = _paths(config)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)

    _seed_everything(config.seed)
    model = build_module(config.model, config.scale, network_config(config))
    if config.init and config.model == "srgan":
        load_weights(model, config.init, arch=spec.architecture, scale=config.scale)
    elif config.init:
        # Any trained network of the same shape, e.g. the x2 body for an x4 run: what fits is loaded.
        init_from(model, config.init)
    model.to(device).train()
    sampler: PatchSampler | ParallelPatchSampler = PatchSampler(
        load_folder(config.data) + [im for source in config.extra_photos for im in load_extra(source)],
        scale=config.scale,
        patch=config.hr_patch,
        colour=spec.colour,
        seed=config.seed,
        degradations=config.degradations,
        zoom=config.hr_zoom,
    )
    if config.data_workers:
        sampler = ParallelPatchSampler(
            sampler, size=config.batch, workers=config.data_workers, pin_memory=device.type == "cuda"
        )
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    averaged = None
    if config.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
    evaluated = averaged.module if averaged is not None else model  # what is validated and exported
    amp_dtype = autocast_dtype(config.precision, device)
    use_amp = amp_dtype is not None
    # Loss scaling keeps float16's small gradients from flushing to zero; bfloat16 has float32's range.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    disc = disc_opt = gen_loss = None
    criterion = pixel_loss(config.loss)
    if config.model == "srgan":
        from vidsr.train.discriminator import Discriminator
        from vidsr.train.vgg import load_vgg19

        vgg = load_vgg19(config.vgg_weights).to(device) if config.vgg_weights else None
        gen_loss = SRGANGeneratorLoss(vgg, config.adv_weight, config.fm_weight)
        disc = Discriminator(features=config.disc_features, head=config.disc_head).to(device).train()
        disc_opt = torch.optim.Adam(disc.parameters(), lr=config.lr)

    step, seconds = 0, 0.0
    best = {"psnr": -math.inf, "ssim": 0.0, "step": 0, "score": -math.inf}
    best_state: dict[str, torch.Tensor] | None = None
    if config.resume:
        ckpt = _load_checkpoint(config.resume)
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimiser"])
        restore_scaler(scaler, ckpt["scaler"])
        if disc is not None:
            disc.load_state_dict(ckpt["disc"])
            disc_opt.load_state_dict(ckpt["disc_opt"])
        if averaged is not None and "ema" in ckpt:  # a run without --ema resumed with it starts its average here
            averaged.load_state_dict(ckpt["ema"])
        sampler.load_state_dict(ckpt["sampler"])
        _set_rng_state(ckpt["rng"])
        step, seconds, best, best_state = ckpt["step"], ckpt["seconds"], ckpt["best"], ckpt["best_state"]
        best.setdefault("score", -math.inf)  # a checkpoint from before the score: the next validation is kept

    def save_checkpoint() -> None:
        payload = {
            "config": asdict(replace(config, resume=None)),
            "step": step,
            "seconds": seconds,
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "scaler": scaler.state_dict(),
            "sampler": sampler.state_dict(),
            "rng": _rng_state(),
            "best": best,
            "best_state": best_state,
        }
        if averaged is not None:
            payload["ema"] = averaged.state_dict()
        if disc is not None:
            payload["disc"] = disc.state_dict()
            payload["disc_opt"] = disc_opt.state_dict()
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(payload, tmp)
        tmp.replace(ckpt_path)  # an interrupted save never leaves a half checkpoint

    valset = make_valset(
        val_images(config), config.scale, config.val_crop, config.degradations, niqe=config.model == "srgan"
    )
    # What `--weights run.best.safetensors` needs to rebuild this network.
    arch_meta = {
        "architecture": spec.architecture,
        "arch_config": network_config(config),
        "model": config.model,
        "scale": config.scale,
    }
    last = config.stop_at if 0 < config.stop_at < config.steps else config.steps
    bar = tqdm(total=config.steps, initial=step, disable=not config.progress, desc=f"{config.model} x{config.scale}")
    running: list[float] = []
    started = time.perf_counter()
    try:
        while step < last:
            lr_now = lr_at(config, step)
            for group in optimiser.param_groups:
                group["lr"] = lr_now
            lr_img, hr_img = sampler.batch(config.batch)
            lr_img, hr_img = lr_img.to(device, non_blocking=True), hr_img.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                sr = model(lr_img)
                if disc is None:
                    loss = criterion(sr.float(), hr_img)
                else:
                    parts = gen_loss(sr.float(), hr_img, disc)
                    loss = parts["loss"]
                if config.regret_weight:
                    loss = loss + config.regret_weight * bicubic_regret(sr.float(), hr_img, lr_img)
                if config.steady_weight:
                    loss = loss + config.steady_weight * steadiness(model, lr_img, sr.float())
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            if disc is not None:
                for group in disc_opt.param_groups:
                    group["lr"] = lr_now
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    d_loss = discriminator_loss(disc(hr_img), disc(sr.detach()))
                disc_opt.zero_grad(set_to_none=True)
                scaler.scale(d_loss).backward()
                scaler.step(disc_opt)
            scaler.update()
            if averaged is not None:
                averaged.update_parameters(model)
            step += 1
            running.append(loss.item())
            bar.update(1)
            if step % config.val_every == 0 or step == last:
                seconds += time.perf_counter() - started
                started = time.perf_counter()
                val = validate(
                    evaluated,
                    spec.colour,
                    valset,
                    config.scale,
                    device,
                    config.degradations,
                    gan=disc is not None,
                    step=step,
                )
                if val.score > best["score"]:
                    best = {"psnr": val.psnr, "ssim": val.ssim, "step": step, "score": val.score}
                    best_state = {k: v.detach().cpu().clone() for k, v in evaluated.state_dict().items()}
                    save_weights(evaluated, best_path, {**arch_meta, "step": step})
                if config.keep_validated:
                    save_weights(
                        evaluated, ckpt_path.with_suffix(f".step{step}.safetensors"), {**arch_meta, "step": step}
                    )
                record = {
                    "step": step,
                    "loss": float(np.mean(running)),
                    **val.record(),
                    "best_psnr": best["psnr"],
                    "best_score": best["score"],
                    "best_step": best["step"],
                    "lr": lr_now,
                    "seconds": round(seconds, 1),
                }
                running.clear()
                with log_path.open("a") as log:
                    log.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{record['loss']:.4f}", psnr=f"{val.psnr:.2f}", score=f"{val.score:.3f}")
                if on_validation:
                    on_validation(record)
                save_checkpoint()
                started = time.perf_counter()
            if until is not None and step < last and time.monotonic() >= until:
                seconds += time.perf_counter() - started
                save_checkpoint()
                break
    except KeyboardInterrupt:
        seconds += time.perf_counter() - started
        save_checkpoint()
        raise
    finally:
        bar.close()
        sampler.close()

    meta: dict[str, Any] = {}
    exported = None
    if step >= config.steps and best_state is not None:
        meta = export_weights(config, best_state, weights_path, seconds, step, best["step"])
        exported = weights_path
    return TrainResult(step, best["step"], best["psnr"], ckpt_path, exported, log_path, meta)


def _load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        # Only tensors and plain containers: weights_only refuses anything that could run code.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc}") from None


__all__ = ["TRAINABLE", "TrainConfig", "TrainResult", "lr_at", "train"]
