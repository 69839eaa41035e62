"""Every weights file shipped in the package loads, carries its metadata, and beats bicubic on a val image."""

from __future__ import annotations

import pytest
from conftest import data_path

from vidsr.degrade import matrix_rows
from vidsr.evaluate import evaluate_images, evaluate_matrix, load_rgb, module_upscaler
from vidsr.models import build_model
from vidsr.models.weights import SHIPPED_DIR, WEIGHT_SETS, read_metadata, shipped_sets
from vidsr.niqe import mean_niqe
from vidsr.split import RULE, side_of

SHIPPED = sorted(SHIPPED_DIR.glob("*.safetensors"))
KEYS = {"architecture", "model", "scale", "recipe", "val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim", "val_set"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_set_says_which_photos_picked_it_and_which_report_on_it(path) -> None:
    """Issue 24: figures a set was not tuned on.  ``benchmarks/quality.py --stamp`` writes the report side's
    figures; a set trained since the split records the selection photos that picked its checkpoint."""
    meta = read_metadata(path)
    reported = meta["reported_on"]
    assert (reported["side"], reported["rule"]) == ("report", RULE)
    assert reported["images"] and all(side_of(name) == "report" for name in reported["images"])
    figures = meta["report"]
    assert set(figures) >= {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "matrix", "niqe", "s3"}
    if "selected_on" in meta:  # trained since the split
        selected = meta["selected_on"]
        assert selected["side"] == "selection" and selected["rule"] == RULE
        assert not set(selected["images"]) & set(reported["images"])


def test_the_promised_weights_ship() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"espcn_x2.paper", "espcn_x3.paper", "espcn_x4.paper", "srresnet_x2.paper", "srresnet_x4.paper"} <= names
    assert all(n.split(".")[1] in WEIGHT_SETS for n in names)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_weights_load_and_beat_bicubic(path) -> None:
    meta = read_metadata(path)
    assert set(meta) >= KEYS
    model, scale = meta["model"], meta["scale"]
    weight_set = path.stem.split(".")[1]
    assert path.stem == f"{model}_x{scale}.{weight_set}"
    recipe = meta.get("degradations", {"name": "protocol"})["name"]
    if weight_set == "paper":
        assert recipe == "protocol"
    else:
        assert recipe.startswith("robust-"), recipe
    assert set(meta["recipe"]) >= {"steps", "patch", "batch", "lr", "loss", "seed", "data", "device", "seconds"}
    assert meta["val_set"] == "shared/data/val"
    assert meta["val_psnr"] > meta["bicubic_psnr"]
    loaded = build_model(model, scale, weights=weight_set)  # the shipped file, found by its set's name
    assert loaded.weights == path
    # A 192x192 crop of one val image keeps this fast on a CPU.
    hr = load_rgb(data_path("val", "butterfly.png"))[:, 60:252, 120:312]
    result = evaluate_images([("butterfly", hr)], scale, module_upscaler(loaded.module, loaded.spec.colour))
    assert result.psnr > result.bicubic_psnr + 0.1
    if model != "srgan":  # SRGAN gives up fidelity for texture on purpose; test_srgan_* measure what it is for
        assert result.ssim > result.bicubic_ssim


@pytest.mark.parametrize("model", ["espcn", "srresnet"])
@pytest.mark.parametrize("scale", [2, 4])
def test_the_default_weights_hold_up_on_every_row_of_the_matrix(model, scale) -> None:
    """What `vidsr upscale -m MODEL` uses without --weights is no worse than bicubic (within 0.1 dB)
    on any row, and far better than the paper-protocol weights on their worst row (aliased LR).

    The shipped metadata holds the full-val figures (benchmarks/QUALITY.md); the matrix is also
    recomputed here, independently of them, on 160x160 crops of two photos, for both sets, with a
    margin for the smaller sample.  (The +0.5 dB mean is checked on the metadata's full-val figures.)
    """
    loaded = build_model(model, scale)
    meta = read_metadata(loaded.weights)
    if not meta.get("degradations", {}).get("name", "").startswith("robust-"):
        pytest.skip(f"the default {model} x{scale} weights are not the robust set yet ({loaded.weights.name})")
    assert meta["matrix"]["worst_gain"] >= -0.1
    assert meta["matrix"]["mean_gain"] >= 0.5, meta["matrix"]
    images = [(name, load_rgb(data_path("val", name))[:, 40:200, 40:200]) for name in ("butterfly.png", "leuvenA.png")]
    paper = build_model(model, scale, weights="paper")
    colour = loaded.spec.colour
    results = {
        m.weights.name: evaluate_matrix(images, scale, module_upscaler(m.module, colour), matrix_rows("all"))
        for m in (loaded, paper)
    }
    robust, protocol = results[loaded.weights.name], results[paper.weights.name]
    assert robust.worst_gain >= -0.2, robust.summary()
    assert protocol.worst_gain < -0.5  # the failure the robust set exists for: aliased LR
    assert robust.worst_gain > protocol.worst_gain + 0.5, (robust.summary(), protocol.summary())
    if model == "espcn":  # the 3-layer paper ESPCN also loses on average; SRResNet's paper set does not
        assert robust.mean_gain > protocol.mean_gain + 0.1, (robust.summary(), protocol.summary())


def test_srgan_is_more_natural_than_the_srresnet_it_came_from() -> None:
    """What SRGAN is for, measured without a reference: on textured val photos its x4 outputs score a
    lower (more natural) NIQE than the SRResNet it was fine-tuned from (QUALITY.md has the full set)."""
    if "paper" not in shipped_sets("srgan", 4):
        pytest.skip("no srgan x4 weights ship")
    names = ("building.png", "fruits.png", "squirrel_cls.png", "baboon.png")
    images = [(n, load_rgb(data_path("val", n))) for n in names]
    scores = {
        model: mean_niqe(images, 4, module_upscaler(build_model(model, 4, weights="paper").module, "rgb"))
        for model in ("srresnet", "srgan")
    }
    assert scores["srgan"] < scores["srresnet"] - 0.03, scores
