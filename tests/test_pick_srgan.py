"""Network interpolation and benchmarks/pick_srgan.py's rule: what ships as the SRGAN, picked on the selection side."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import load_script, tiny_kept_run
from safetensors.torch import load_file

from vidsr.errors import ModelError
from vidsr.models.espcn import espcn
from vidsr.models.weights import interpolate_states, read_metadata


@pytest.fixture(scope="module")
def picker():
    yield load_script("pick_srgan", "pick_srgan_benchmark")
    sys.modules.pop("pick_srgan_benchmark", None)


def test_interpolation_runs_from_the_parent_to_the_tuned_network() -> None:
    torch.manual_seed(0)
    tuned, parent = espcn(scale=2).state_dict(), espcn(scale=2).state_dict()
    for alpha, expected in ((1.0, tuned), (0.0, parent)):
        blend = interpolate_states(tuned, parent, alpha)
        assert all(torch.equal(blend[k], expected[k]) for k in tuned)
    quarter = interpolate_states(tuned, parent, 0.25)
    for key in tuned:
        assert torch.allclose(quarter[key], 0.25 * tuned[key] + 0.75 * parent[key])
        assert quarter[key].dtype == torch.float32


def test_interpolation_refuses_networks_that_do_not_match() -> None:
    x2 = espcn(scale=2).state_dict()
    with pytest.raises(ModelError, match="differ in shape"):
        interpolate_states(x2, espcn(scale=3).state_dict(), 0.5)
    with pytest.raises(ModelError, match="differ in 1 tensors"):
        interpolate_states(x2, dict(list(x2.items())[:-1]), 0.5)
    with pytest.raises(ModelError, match="outside"):
        interpolate_states(x2, x2, 1.5)


def _figures(gain: float, niqe: float, flicker: float = 1.0) -> dict:
    return {"gain": gain, "niqe": niqe, "tdiff": {"box.mp4": flicker, "tree.avi": 3 * flicker}}


def test_the_rule_takes_the_most_faithful_candidate_that_is_clearly_more_natural(picker) -> None:
    reference = _figures(2.0, 6.3)
    results = {
        "gan": _figures(1.5, 4.3),  # the most natural: v1's pick
        "gan@0.6": _figures(1.8, 5.2),  # more faithful, still 1.0 below the reference's NIQE
        "gan@0.3": _figures(2.0, 5.7),  # as faithful as the reference, not natural enough
        "shimmers": _figures(1.9, 5.0, flicker=1.06),  # more than 5 % more flicker on a clip
        "blurred": _figures(0.6, 4.0),  # below the minimum gain
    }
    judged = {name: picker.judge(figures, reference) for name, figures in results.items()}
    assert [name for name, r in judged.items() if r["eligible"]] == ["gan", "gan@0.6"]
    assert not judged["shimmers"]["flicker_ok"] and judged["gan@0.3"]["flicker_ok"]
    assert picker.pick(judged) == "gan@0.6"
    assert picker.pick({k: v for k, v in judged.items() if k not in ("gan", "gan@0.6")}) is None


def test_where_bicubic_looks_more_natural_than_the_srresnet_the_gan_must_beat_bicubic(picker) -> None:
    """Rule v3 (x2: bicubic's NIQE below the SRResNet's): the margin is taken from the lower of the two."""
    reference, bicubic_niqe = _figures(2.0, 6.1), 5.8
    assert picker.judge(_figures(1.5, 4.7), reference, bicubic_niqe)["eligible"]  # 1.1 below bicubic
    assert not picker.judge(_figures(1.5, 4.7), reference, 5.6)["eligible"]  # only 0.9 below bicubic
    assert picker.judge(_figures(1.5, 4.7), reference)["eligible"]  # x4's case: bicubic does not bind


def test_a_blend_exports_with_its_run_and_its_interpolation_in_the_recipe(picker, tmp_path: Path) -> None:
    tiny_kept_run(tmp_path)
    step2, step4 = tmp_path / "run.step2.safetensors", tmp_path / "run.step4.safetensors"
    assert picker.split_blend(f"{step4}@0.25") == (step4, 0.25)
    assert picker.split_blend(str(step4)) == (step4, None)

    dest = tmp_path / "pick.safetensors"
    picker.export_step(f"{step4}@0.25", step2, dest)
    meta = read_metadata(dest)
    assert meta["recipe"]["interpolation"] == {
        "alpha": 0.25,
        "with": "run.step2.safetensors",
        "method": "ESRGAN network",
    }
    assert meta["history"][-1] == meta["recipe"] and meta["recipe"]["steps"] == 4
    expected = interpolate_states(load_file(str(step4)), load_file(str(step2)), 0.25)
    shipped = load_file(str(dest))
    assert all(torch.equal(shipped[k], expected[k].half()) for k in expected)
    assert isinstance(meta["val_psnr"], float)  # measured on the blend that ships
