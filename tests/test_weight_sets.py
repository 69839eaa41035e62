"""Named weights sets, architecture configs carried in metadata, and `vidsr models` listing every set."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from vidsr.cli import cli
from vidsr.errors import ModelError
from vidsr.models import arch_config, build_model, build_module
from vidsr.models.espcn import ESPCN, ROBUST
from vidsr.models.weights import SHIPPED_DIR, init_from, save_weights, shipped_sets


def test_paper_set_is_the_papers_network() -> None:
    loaded = build_model("espcn", 4, weights="paper")
    assert loaded.weights == SHIPPED_DIR / "espcn_x4.paper.safetensors"
    convs = [m for m in loaded.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [(1, 64, 5), (64, 32, 3), (32, 16, 3)]


def test_default_is_the_first_shipped_set() -> None:
    sets = shipped_sets("espcn", 2)
    assert next(iter(sets)) == ("robust" if "robust" in sets else "paper")
    assert build_model("espcn", 2).weights == next(iter(sets.values()))


def test_a_missing_set_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match=r"the robust weights for srgan x4 do not ship \(shipped sets: paper\)"):
        build_model("srgan", 4, weights="robust")
    with pytest.raises(ModelError, match=r"--data \.\./shared/data/train --val \.\./shared/data/val"):
        build_model("srgan", 2)


def test_a_weights_file_rebuilds_its_own_architecture(tmp_path) -> None:
    net = build_module("espcn", 3, arch_config("espcn", "robust"))
    assert isinstance(net, ESPCN) and net.config == ROBUST
    path = tmp_path / "mine.safetensors"
    save_weights(net, path, {"architecture": "espcn", "scale": 3, "arch_config": arch_config("espcn", "robust")})
    loaded = build_model("espcn", 3, weights=path)
    assert loaded.module.config == ROBUST
    x = torch.rand(1, 1, 20, 24)
    torch.testing.assert_close(loaded.module(x), net.eval()(x))


def test_robust_espcn_adds_a_bicubic_upscale() -> None:
    net = build_module("espcn", 2, arch_config("espcn", "robust")).eval()
    for conv in net.body:
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.zeros_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
    x = torch.rand(1, 1, 10, 12)
    # With the residual branch silenced the network is exactly a bicubic upscale (PyTorch's, a = -0.75).
    want = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(net(x), want)
    assert net.receptive_radius == 8  # a 3x3 head and seven more 3x3 layers


def test_unknown_variant() -> None:
    with pytest.raises(ModelError, match="unknown espcn variant 'huge'"):
        arch_config("espcn", "huge")
    with pytest.raises(ModelError, match="unknown srresnet variant 'robust'; choose from paper, lite"):
        arch_config("srresnet", "robust")
    with pytest.raises(ModelError, match="bicubic has no architecture variants"):
        arch_config("bicubic", "lite")


def test_init_from_another_scale_loads_the_body(tmp_path) -> None:
    x2 = build_module("espcn", 2, arch_config("espcn", "robust"))
    path = tmp_path / "x2.safetensors"
    save_weights(x2, path, {})
    x4 = build_module("espcn", 4, arch_config("espcn", "robust"))
    loaded, left = init_from(x4, path)
    assert (loaded, left) == (14, 2)  # seven hidden convs' weights and biases; the x4 output conv differs
    torch.testing.assert_close(x4.body[0].weight, x2.body[0].weight)
    assert x4.body[-1].weight.shape[0] == 16


def test_models_lists_every_set_with_its_recipe() -> None:
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.output) if r["model"] == "espcn"]
    for scale in (2, 3, 4):
        mine = [r for r in rows if r["scale"] == scale]
        assert {r["weights"] for r in mine} == set(shipped_sets("espcn", scale))
        assert [r["default"] for r in mine] == [True] + [False] * (len(mine) - 1)
        assert all(r["trained"]["steps"] > 0 and r["val_psnr"] > r["bicubic_psnr"] for r in mine)
    text = CliRunner().invoke(cli, ["models"]).output
    assert "paper" in text and "trained on protocol" in text


def test_trained_on_names_the_recipe_and_every_photo_source_of_the_history() -> None:
    from vidsr.models.weights import trained_on

    assert trained_on({}) == "protocol"
    robust = {"degradations": {"name": "robust-v2"}}
    assert trained_on({**robust, "history": [{"steps": 10}, {"steps": 5}]}) == "robust-v2"
    first_stage_only = [{"extra_photos": ["scikit-image"]}, {"steps": 5}]
    assert trained_on({**robust, "history": first_stage_only}) == "robust-v2 + scikit-image photos"
    assert trained_on({"recipe": {"extra_photos": ["scikit-image"]}}) == "protocol + scikit-image photos"


def test_the_cascade_is_two_x2_networks_from_one_x2_file(tmp_path) -> None:
    """``--arch cascade --init x2.safetensors`` starts both passes from the x2 network; the trained
    file then rebuilds the cascade by its own metadata, and runs as the two passes in series."""
    x2 = build_module("srresnet", 2, arch_config("srresnet", "large") | {"blocks": 2})
    for param in x2.parameters():  # a network that is not bicubic, so the passes show in the output
        torch.nn.init.normal_(param, std=0.02)
    x2_path = tmp_path / "x2.safetensors"
    save_weights(x2, x2_path, {"architecture": "srresnet", "scale": 2})
    config = arch_config("srresnet", "cascade")
    config["config"]["blocks"] = 2
    cascade = build_module("srresnet", 4, config)
    assert init_from(cascade, x2_path) == (len(cascade.state_dict()), 0)
    x = torch.rand(1, 3, 10, 12)
    x2.eval()
    torch.testing.assert_close(cascade.eval()(x), x2(x2(x)))

    path = tmp_path / "cascade.safetensors"
    save_weights(cascade, path, {"architecture": "srresnet", "scale": 4, "arch_config": config})
    loaded = build_model("srresnet", 4, weights=path)
    assert loaded.module.config.cascade
    torch.testing.assert_close(loaded.module(x), cascade(x))


def test_the_cascade_is_x4_only() -> None:
    with pytest.raises(ValueError, match="x4 only"):
        build_module("srresnet", 2, arch_config("srresnet", "cascade"))


def test_a_mean_of_sets_is_the_mean_of_their_outputs(tmp_path) -> None:
    """``--weights large+cascade``: both shipped x4 sets, one module whose answer is the mean of theirs,
    its tiling overlap the wider member's radius; files and repeated or missing sets are refused."""
    sets = shipped_sets("srresnet", 4)
    if not {"large", "cascade"} <= set(sets):
        pytest.skip("the x4 large and cascade sets do not both ship")
    mean = build_model("srresnet", 4, weights="large+cascade")
    large, cascade = (build_model("srresnet", 4, weights=s) for s in ("large", "cascade"))
    x = torch.rand(1, 3, 20, 24)
    torch.testing.assert_close(mean.module(x), (large.module(x) + cascade.module(x)) / 2)
    assert mean.module.receptive_radius == max(large.module.receptive_radius, cascade.module.receptive_radius)
    assert mean.weights is None
    assert mean.metadata["mean_of"] == {"large": sets["large"].name, "cascade": sets["cascade"].name}
    with pytest.raises(ModelError, match="names a set twice"):
        build_model("srresnet", 4, weights="large+large")
    with pytest.raises(ModelError, match="the cascade weights for srresnet x2 do not ship"):
        build_model("srresnet", 2, weights="large+cascade")
    listed = [r for r in json.loads(CliRunner().invoke(cli, ["models", "--json"]).output) if "mean_of" in r]
    assert [(r["model"], r["scale"], r["weights"]) for r in listed] == [("srresnet", 4, "large+cascade")]
    # A name that is not all set names is a file's, whatever its "+".
    with pytest.raises(ModelError, match="large\\+mine"):
        build_model("srresnet", 4, weights=tmp_path / "large+mine")
