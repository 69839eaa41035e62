"""Every weights file shipped in the package loads, carries its metadata, and beats bicubic on a val image."""

from __future__ import annotations

import pytest
from conftest import data_path

from vidsr.evaluate import evaluate_images, load_rgb, module_upscaler
from vidsr.models import build_model
from vidsr.models.weights import SHIPPED_DIR, read_metadata

SHIPPED = sorted(SHIPPED_DIR.glob("*.safetensors"))
KEYS = {"architecture", "model", "scale", "recipe", "val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim", "val_set"}


def test_the_promised_weights_ship() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"espcn_x2", "espcn_x3", "espcn_x4"} <= names
    assert not any(n.startswith("srgan") for n in names)  # needs real VGG19 features to train


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_weights_load_and_beat_bicubic(path) -> None:
    meta = read_metadata(path)
    assert set(meta) >= KEYS
    model, scale = meta["model"], meta["scale"]
    assert path.stem == f"{model}_x{scale}"
    assert set(meta["recipe"]) >= {"steps", "patch", "batch", "lr", "loss", "seed", "data", "device", "seconds"}
    assert meta["val_set"] == "shared/data/val"
    assert meta["val_psnr"] > meta["bicubic_psnr"]
    loaded = build_model(model, scale)  # the shipped file, found by name
    assert loaded.weights == path
    # A 192x192 crop of one val image keeps this fast on a CPU.
    hr = load_rgb(data_path("val", "butterfly.png"))[:, 60:252, 120:312]
    result = evaluate_images([("butterfly", hr)], scale, module_upscaler(loaded.module, loaded.spec.colour))
    assert result.psnr > result.bicubic_psnr + 0.1
    assert result.ssim > result.bicubic_ssim
