"""Tiling: plans cover the frame with equal tiles, and stitched output equals untiled output."""

from __future__ import annotations

import itertools

import pytest
import torch

from vidsr.models import LoadedModel, get_spec
from vidsr.models.espcn import espcn
from vidsr.models.interpolation import Interpolation
from vidsr.tiling import RECEPTIVE_RADIUS, _cuts, overlap_for, plan_tiles, run_tiled
from vidsr.upscaler import Upscaler


def random_espcn(scale: int) -> LoadedModel:
    torch.manual_seed(0)
    return LoadedModel(get_spec("espcn"), scale, espcn(scale=scale).eval().requires_grad_(False))


def test_small_frame_is_not_tiled():
    assert plan_tiles(100, 100, 100 * 100, 4) is None


@pytest.mark.parametrize(
    ("h", "w", "budget", "overlap"), [(97, 131, 2000, 4), (540, 960, 200_000, 39), (33, 500, 900, 2)]
)
def test_plan_covers_frame_with_equal_overlapping_tiles(h, w, budget, overlap):
    plan = plan_tiles(h, w, budget, overlap)
    assert plan is not None and plan.count > 1
    assert plan.tile_h * plan.tile_w <= budget
    for starts, tile, size in ((plan.starts_y, plan.tile_h, h), (plan.starts_x, plan.tile_w, w)):
        assert starts[0] == 0 and starts[-1] + tile == size
        cuts = _cuts(starts, tile, size)
        assert cuts[0][0] == 0 and cuts[-1][1] == size
        for (_a0, a1), (b0, _b1) in itertools.pairwise(cuts):
            assert a1 == b0  # no gap, no double cover
        for start, (c0, c1) in zip(starts, cuts, strict=True):
            # Every kept pixel has `overlap` pixels of context inside its tile (or the frame edge).
            assert c0 == 0 or c0 - start >= overlap
            assert c1 == size or start + tile - c1 >= overlap


def test_plan_respects_profile_limits():
    plan = plan_tiles(576, 768, 10**9, 8, max_hw=(300, 1000))
    assert plan is not None and plan.tile_h <= 300 and plan.tile_w <= 768


def test_overlaps_cover_receptive_fields():
    assert overlap_for("espcn") >= RECEPTIVE_RADIUS["espcn"]
    assert overlap_for("unknown-arch") > 0


@pytest.mark.parametrize("scale", [2, 3])
def test_espcn_tiled_equals_untiled(scale):
    model = random_espcn(scale).module
    x = torch.rand(2, 1, 61, 83)
    plan = plan_tiles(61, 83, 900, overlap_for("espcn"))
    assert plan is not None and plan.count >= 4
    with torch.inference_mode():
        whole = model(x)
        tiled = run_tiled(model, x, scale, plan)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < 1e-5


@pytest.mark.parametrize("kernel", ["bicubic", "lanczos"])
def test_interpolation_tiled_equals_untiled(kernel):
    model = Interpolation(4, kernel)
    x = torch.rand(1, 3, 50, 70)
    plan = plan_tiles(50, 70, 700, overlap_for(kernel))
    assert plan is not None
    assert (run_tiled(model, x, 4, plan) - model(x)).abs().max().item() < 1e-5


def test_upscaler_tiles_over_budget_and_matches():
    loaded = random_espcn(2)
    whole = Upscaler(loaded=loaded, scale=2, backend="torch-cpu", tile_pixels=0)
    tiled = Upscaler(loaded=loaded, scale=2, backend="torch-cpu", tile_pixels=1500)
    x = torch.rand(1, 1, 70, 90)
    assert tiled._tile_plan(70, 90) is not None
    # Before quantisation: the raw float outputs agree; after it, so do the bytes.
    a, b = whole._call_backend(x), run_tiled(tiled._call_backend, x, 2, tiled._tile_plan(70, 90))
    assert (a - b).abs().max().item() < 1e-5
    assert torch.equal(whole.run_model(x), tiled.run_model(x))
