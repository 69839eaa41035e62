"""Tiling: plans cover the frame with equal tiles, and stitched output equals untiled output.

The receptive radius each architecture is tiled with is checked against a measurement on the
built model (how far the output's derivative with respect to one input pixel is nonzero, see
:func:`measured_radius`), not against the table it comes from; stitched output is then compared
with untiled output on tiles that keep exactly that much context.  The comparisons run in
float64: a convolution may sum in another order for another input size, which costs ~1e-16
there, while a pixel of missing context costs ~1e-3, so a 1e-12 bound tells the two apart with
room to spare.
"""

from __future__ import annotations

import copy
import itertools
from functools import cache

import pytest
import torch

from vidsr.models import LoadedModel, get_spec
from vidsr.models.espcn import espcn
from vidsr.models.interpolation import Interpolation
from vidsr.models.mean import ModelMean
from vidsr.models.srresnet import srresnet
from vidsr.tiling import TilePlan, _cuts, overlap_for, plan_tiles, run_tiled
from vidsr.upscaler import Upscaler

LEARNED = ("espcn", "srresnet")
SCALES = (2, 3, 4)
ROUNDING = 1e-12  # float64 summation-order differences, far below the effect of missing context


def random_espcn(scale: int) -> LoadedModel:
    torch.manual_seed(0)
    return LoadedModel(get_spec("espcn"), scale, espcn(scale=scale).eval().requires_grad_(False))


@cache
def built(arch: str, scale: int) -> torch.nn.Module:
    """The architecture as the registry builds it, randomly initialised, in float64 eval mode."""
    torch.manual_seed(0)
    spec = get_spec(arch)
    return spec.builder(scale=scale).double().eval().requires_grad_(False)


def channels(arch: str) -> int:
    return get_spec(arch).channels


def measured_radius(module: torch.nn.Module, scale: int, chans: int, seed: int = 0) -> int:
    """How many LR pixels, each side, one input pixel reaches, whatever CPU kernels run.

    The derivative of the output with respect to the middle pixel of a strip (forward mode, no
    difference of two nearly equal outputs) on a copy of ``module`` whose parameters are redrawn
    positive, each convolution's weights summing to 1 per output, on a positive input: every path
    through the network then carries a positive product and no two can cancel, so an output pixel
    has a nonzero derivative exactly when some path reaches it (the farthest ones at ~1e-41 for
    SRResNet, far above float64's underflow).  The strip widens until the reach stops short of its
    ends.  Interpolation kernels (fixed taps, no parameters) are measured as they are: linear, so
    the derivative is the kernel itself."""
    probe = copy.deepcopy(module).double().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in probe.parameters():
            param.copy_(0.5 + 0.5 * torch.rand(param.shape, generator=gen, dtype=param.dtype))
            if param.dim() == 4:  # a convolution's weights: an average, so activations stay O(1) (tanh unsaturated)
                param.div_(param.sum(dim=(1, 2, 3), keepdim=True))
    width = 97
    while True:
        x = 0.5 + torch.rand(1, chans, 1, width, dtype=torch.float64, generator=gen)
        mid = width // 2
        tangent = torch.zeros_like(x)
        tangent[..., mid] = 1.0
        with torch.no_grad():
            _, change = torch.func.jvp(probe, (x,), (tangent,))
        hit = torch.nonzero(change.abs().amax(dim=(0, 1, 2))).flatten()
        first, last = int(hit.min()) // scale, int(hit.max()) // scale
        if first > 0 and last < width - 1:
            return max(mid - first, last - mid)
        width = 2 * width + 1


def tight_plan(height: int, width: int, context: int, axis: int) -> TilePlan:
    """Two tiles along ``axis`` (0: rows, 1: columns) cut in the middle, each keeping exactly
    ``context`` input pixels beyond the cut; the other axis whole."""
    size = (height, width)[axis]
    assert size % 2 == 0 and size // 2 > context
    tile = size // 2 + context
    starts = (0, size - tile)
    if axis == 0:
        return TilePlan(tile, width, starts, (0,))
    return TilePlan(height, tile, (0,), starts)


def assert_stitched_equal(tiled: torch.Tensor, whole: torch.Tensor) -> None:
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < ROUNDING


def test_small_frame_is_not_tiled():
    assert plan_tiles(100, 100, 100 * 100, 4) is None


@pytest.mark.parametrize(
    ("h", "w", "budget", "overlap"), [(97, 131, 2000, 4), (540, 960, 200_000, 40), (33, 500, 900, 2)]
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


@pytest.mark.parametrize("arch", LEARNED)
def test_tiling_overlap_is_the_measured_receptive_radius(arch):
    radii = {s: measured_radius(built(arch, s), s, channels(arch)) for s in SCALES}
    # One overlap serves every scale: the largest radius, and no more (more context costs compute).
    assert overlap_for(arch) == max(radii.values()), radii


@pytest.mark.parametrize(
    ("family", "config"), [("espcn", "paper"), ("espcn", "robust"), ("srresnet", "paper"), ("srresnet", "lite")]
)
def test_variants_state_their_measured_radius(family, config):
    """A network that states its own radius (every ESPCN and SRResNet variant) is tiled with it: it
    must be right, for any weights (three draws)."""
    build = espcn if family == "espcn" else srresnet
    for scale in SCALES:
        module = build(scale=scale, config=config).eval().requires_grad_(False)
        for seed in range(3):
            measured = measured_radius(module, scale, channels(family), seed)
            assert overlap_for(family, module) == measured, (config, scale, seed)


@pytest.mark.parametrize("blocks", [2, 16])
def test_the_cascade_states_its_measured_radius(blocks):
    """Two x2 passes in series: the second's reach, in its own pixels, adds half as many input pixels."""
    module = srresnet(scale=4, blocks=blocks, config="cascade").eval().requires_grad_(False)
    assert overlap_for("srresnet", module) == measured_radius(module, 4, 3)


def test_a_mean_of_networks_states_its_widest_members_radius():
    """``--weights large+cascade``: the mean reaches as far as its widest member, and says so."""
    members = [srresnet(scale=4, blocks=2, config=c).eval().requires_grad_(False) for c in ("large", "cascade")]
    for one_pass in members[1].passes:  # output convs start at zero (exactly bicubic): draw them
        torch.nn.init.normal_(one_pass.upsample[0].weight, std=0.05)
    mean = ModelMean(members, max(overlap_for("srresnet", m) for m in members))
    assert overlap_for("srresnet", mean) == measured_radius(mean, 4, 3) == overlap_for("srresnet", members[1])


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear", "lanczos", "nearest"])
def test_interpolation_overlap_covers_the_kernel(kernel):
    # Published supports: bilinear 1, bicubic 2, Lanczos-3 3, nearest 0 input pixels each side.
    published = {"bilinear": 1, "bicubic": 2, "lanczos": 3, "nearest": 0}[kernel]
    for scale in SCALES:
        assert measured_radius(Interpolation(scale, kernel), scale, 1) == published
    assert overlap_for(kernel) >= published


def test_unknown_architecture_gets_a_default_overlap():
    assert overlap_for("unknown-arch") > 0


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("arch", LEARNED)
def test_tiled_equals_untiled_with_just_enough_context(arch, scale):
    """Tiles keeping exactly ``overlap_for(arch)`` pixels of context stitch to the untiled output
    (to float64 rounding); with a third of it they do not (the comparison can tell).

    Only the perturbation measurement pins the last pixel of SRResNet's radius: its outermost
    ten or so of 40 pixels reach the output at float64 rounding level (measured ~1e-16 beyond
    30), so no output comparison can tell 39 from 40."""
    module, radius = built(arch, scale), overlap_for(arch)
    side = 2 * radius + 8
    # Every kernel is square, so rows behave as columns; SRResNet in float64 is slow: columns only.
    for axis in (0, 1) if arch == "espcn" else (1,):
        shape = (side, 4) if axis == 0 else (4, side)
        x = torch.rand(1, channels(arch), *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(axis))
        with torch.inference_mode():
            whole = module(x)
            tiled = run_tiled(module, x, scale, tight_plan(*shape, radius, axis))
            short = run_tiled(module, x, scale, tight_plan(*shape, radius // 3, axis))
        assert_stitched_equal(tiled, whole)
        assert (short - whole).abs().max().item() > 1e-6


@pytest.mark.parametrize("scale", [2, 3])
def test_espcn_planned_tiles_equal_untiled(scale):
    model = built("espcn", scale)
    x = torch.rand(2, 1, 61, 83, dtype=torch.float64)
    plan = plan_tiles(61, 83, 900, overlap_for("espcn"))
    assert plan is not None and plan.count >= 4
    with torch.inference_mode():
        assert_stitched_equal(run_tiled(model, x, scale, plan), model(x))


@pytest.mark.parametrize("kernel", ["bicubic", "lanczos"])
def test_interpolation_tiled_equals_untiled(kernel):
    model = Interpolation(4, kernel)
    x = torch.rand(1, 3, 50, 70, dtype=torch.float64)
    plan = plan_tiles(50, 70, 700, overlap_for(kernel))
    assert plan is not None
    assert_stitched_equal(run_tiled(model, x, 4, plan), model(x))


def test_upscaler_tiles_over_budget_and_matches():
    loaded = random_espcn(2)
    whole = Upscaler(loaded=loaded, scale=2, backend="torch-cpu", tile_pixels=0)
    tiled = Upscaler(loaded=loaded, scale=2, backend="torch-cpu", tile_pixels=1500)
    x = torch.rand(1, 1, 70, 90)
    plan = tiled._tile_plan(70, 90)
    assert plan is not None and plan.count > 1 and whole._tile_plan(70, 90) is None
    # The backend runs float32: agreement to float32 rounding (missing context would cost ~1e-3).
    difference = (whole.run_model(x) - tiled.run_model(x)).abs().max().item()
    assert difference < 1e-5
