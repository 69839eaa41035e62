"""int8 calibration of a weights file: activation ranges measured on the inputs it was trained on.

The ranges go into the file's metadata (:data:`vidsr.backends.int8.METADATA_KEY`), its tensors
untouched, so the onnxruntime backend builds the same int8 graph on any machine without data.
The inputs are LR luma patches made from ``data`` by the file's own degradation recipe (its last
training run's), with the extra photo sources its runs used: what the network saw in training.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vidsr.backends.int8 import METADATA_KEY, Int8Calibration, calibrate, supports_int8
from vidsr.errors import InputError
from vidsr.models import build_model
from vidsr.models.weights import extra_photo_sources, read_metadata, rewrite_metadata, training_runs
from vidsr.train.data import PatchSampler, load_extra, load_folder

LR_SIDE = 96  # LR patch side, where the photos allow: large against the networks' receptive field
BATCH = 8


def calibration_batches(
    data: str | Path, scale: int, meta: dict, *, patches: int = 64, seed: int = 0
) -> tuple[list[torch.Tensor], str]:
    """LR luma batches for calibrating a network trained as ``meta`` says, and the source in words."""
    runs = training_runs(meta)
    recipe = (runs[-1].get("degradations") if runs else None) or "protocol"
    extra = extra_photo_sources(meta)
    images = load_folder(data) + [im for source in extra for im in load_extra(source)]
    if not images:
        raise InputError(f"no images to calibrate on in {data}")
    side = min(LR_SIDE, min(min(im.shape[-2:]) for im in images) // scale)  # small photos: smaller patches
    if side < 8:
        raise InputError(f"the photos in {data} are too small to calibrate on ({8 * scale} px or more needed)")
    sampler = PatchSampler(
        images,
        scale=scale,
        patch=side * scale,
        colour="y",
        seed=seed,
        degradations=recipe,
    )
    count = max(1, -(-patches // BATCH))
    batches = [sampler.batch(BATCH)[0] for _ in range(count)]
    photos = Path(data).name + "".join(f" + {source}" for source in extra)
    return batches, f"{count * BATCH} {recipe} LR luma patches ({side}px) of {photos}, seed {seed}, min/max"


def calibrate_weights(path: str | Path, data: str | Path, *, patches: int = 64, seed: int = 0) -> Int8Calibration:
    """Measure ``path``'s int8 ranges on ``data`` and write them into its metadata."""
    meta = read_metadata(path)
    model, scale = meta.get("model"), meta.get("scale")
    if not model or not scale:
        raise InputError(f"{path} does not say which model and scale it holds (no vidsr metadata)")
    loaded = build_model(str(model), int(scale), weights=Path(path))
    if not supports_int8(loaded):
        raise InputError(f"{model} ({Path(path).name}) has no int8 form: only the ReLU ESPCN family (robust) has")
    batches, source = calibration_batches(data, int(scale), meta, patches=patches, seed=seed)
    result = calibrate(loaded.module, batches, source)
    rewrite_metadata(path, {**meta, METADATA_KEY: result.to_dict()})
    return result
