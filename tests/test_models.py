"""Model architectures, the registry and weights files."""

from __future__ import annotations

import os

import pytest
import torch

from vidsr.errors import ModelError
from vidsr.models import REGISTRY, build_model, get_spec
from vidsr.models.espcn import espcn
from vidsr.models.srresnet import SRResNetConfig, srresnet
from vidsr.models.weights import load_weights, read_metadata, save_weights


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_espcn_shapes_and_paper_layers(scale):
    model = espcn(scale=scale)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.out_channels) for c in convs] == [((5, 5), 64), ((3, 3), 32), ((3, 3), scale**2)]
    assert model(torch.rand(2, 1, 11, 13)).shape == (2, 1, 11 * scale, 13 * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_shapes(scale):
    model = srresnet(scale=scale, blocks=2).eval()
    assert model(torch.rand(1, 3, 9, 7)).shape == (1, 3, 9 * scale, 7 * scale)
    shuffles = [m.upscale_factor for m in model.modules() if isinstance(m, torch.nn.PixelShuffle)]
    assert shuffles == {2: [2], 3: [3], 4: [2, 2]}[scale]


def test_full_srresnet_is_the_paper_size():
    model = srresnet(scale=4)
    assert len(model.body) == 16
    assert model.head[0].kernel_size == (9, 9) and model.tail.kernel_size == (9, 9)
    assert 1.5e6 < sum(p.numel() for p in model.parameters()) < 1.6e6


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_lite_starts_as_bicubic_without_batch_norm(scale):
    model = srresnet(scale=scale, config="lite").eval()
    x = torch.rand(1, 3, 9, 7)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    # Zero output conv: the residual network is its bicubic branch (a convolution of the same
    # weights as interpolate's, summed in another order: equal to float rounding).
    torch.testing.assert_close(model(x), bicubic, atol=2e-6, rtol=0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    shuffles = [m.upscale_factor for m in model.modules() if isinstance(m, torch.nn.PixelShuffle)]
    assert shuffles == [scale] and len(model.body) == 8
    assert sum(p.numel() for p in model.parameters()) < 0.3 * sum(p.numel() for p in srresnet(scale=scale).parameters())


def test_registry_specs():
    assert get_spec("espcn").colour == "y" and get_spec("srresnet").colour == "rgb"
    assert get_spec("srgan").architecture == "srresnet"
    assert all(not REGISTRY[n].learned for n in ("bicubic", "lanczos", "bilinear", "nearest"))
    with pytest.raises(ModelError, match="unknown model 'edsr'"):
        get_spec("edsr")
    with pytest.raises(ModelError, match="espcn supports scales 2, 3, 4, not 8"):
        build_model("espcn", 8)
    with pytest.raises(ModelError, match="takes no weights"):
        build_model("bicubic", 2, weights="x.safetensors")


def test_weights_round_trip_with_metadata(tmp_path):
    model = espcn(scale=2)
    path = tmp_path / "w.safetensors"
    save_weights(
        model, path, {"architecture": "espcn", "scale": 2, "recipe": {"steps": 5}, "val_psnr": 33.1}, half=True
    )
    meta = read_metadata(path)
    assert meta["recipe"] == {"steps": 5} and meta["val_psnr"] == 33.1
    loaded = build_model("espcn", 2, weights=path)
    for key, value in model.state_dict().items():
        assert torch.allclose(loaded.module.state_dict()[key], value.half().float())
    assert not loaded.module.training


def test_weights_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        build_model("espcn", 2, weights=tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelError, match=r"cannot read weights .*junk\.safetensors"):
        build_model("espcn", 2, weights=junk)
    other = tmp_path / "srresnet.safetensors"
    save_weights(srresnet(scale=2, blocks=1), other, {})
    with pytest.raises(ModelError, match="do not fit espcn x2: tensors 6 missing"):
        load_weights(espcn(scale=2), other, arch="espcn", scale=2)


def test_pickle_weights_loaded_safely(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"model": espcn(scale=2).state_dict()}, path)
    assert build_model("espcn", 2, weights=path).weights == path

    marker = tmp_path / "pwned"

    class Evil:
        # Unpickling calls os.mkdir(marker): the folder exists afterwards iff the pickle's code ran.
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    evil = tmp_path / "evil.pth"
    torch.save({"model": Evil()}, evil)
    with pytest.raises(ModelError) as refused:
        build_model("espcn", 2, weights=evil)
    assert not marker.exists(), "loading the weights ran code from the pickle"
    assert str(refused.value).startswith(f"cannot read weights {evil}")


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_bicubic_phases_are_torch_bicubic_upscaling(scale, channels):
    """The residual's convolution + pixel shuffle is ``interpolate(bicubic)``, borders included,
    on sizes down to one pixel."""
    from vidsr.models.bicubic_residual import BicubicPhases

    phases = BicubicPhases(scale, channels)
    for h, w in ((13, 17), (1, 5), (2, 2)):
        x = torch.rand(2, channels, h, w, generator=torch.Generator().manual_seed(h * w))
        want = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        torch.testing.assert_close(torch.nn.functional.pixel_shuffle(phases(x), scale), want, atol=2e-6, rtol=0)
    assert not phases.state_dict()  # arithmetic, not weights: weights files are unchanged


@pytest.mark.parametrize(
    "build",
    [
        lambda: espcn(scale=2, config="robust"),
        lambda: srresnet(scale=2, config="lite", blocks=2),
        lambda: srresnet(scale=2, config=SRResNetConfig(batch_norm=False, residual=True), blocks=2),
    ],
    ids=["espcn-robust", "srresnet-shuffle", "srresnet-stages"],
)
def test_the_bicubic_residual_stays_full_precision_under_mixed_precision(build) -> None:
    """Under bfloat16 autocast (training) a network with the bicubic residual still outputs float32, and the
    bicubic part is exact: a fresh residual network is bicubic (zero output conv), to float32's digits, not
    bfloat16's 1/256, which outweighed a trained model's L1 error and turned its gradient's signs to noise."""
    net = build().eval()
    tail = getattr(net, "tail", None)
    if isinstance(tail, torch.nn.Conv2d):  # the stages layout's 9x9 tail: zeroed, as init zeroes the shuffle's conv
        torch.nn.init.zeros_(tail.weight)
        torch.nn.init.zeros_(tail.bias)
    x = torch.rand(2, net.bicubic.channels, 12, 10, generator=torch.Generator().manual_seed(3))
    bicubic = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    with torch.no_grad():
        plain = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(x)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(plain, bicubic, atol=2e-6, rtol=0)
    torch.testing.assert_close(mixed, bicubic, atol=2e-6, rtol=0)
