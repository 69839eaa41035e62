"""Training on the robust degradation mix: what the weights file records, and that it loads as trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_photos

from vidsr.backends.int8 import calibration_of
from vidsr.errors import InputError
from vidsr.models import build_model
from vidsr.models.espcn import ROBUST
from vidsr.models.weights import read_metadata, save_weights
from vidsr.train.data import PatchSampler, load_folder
from vidsr.train.loop import TrainConfig, train


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    return make_photos(tmp_path / "train", 2, 48, 0), make_photos(tmp_path / "val", 1, 40, 1)


def test_robust_sampler_degrades_each_patch_its_own_way(data) -> None:
    images = load_folder(data[0])
    robust = PatchSampler(images, scale=2, patch=16, colour="y", seed=4, degradations="robust-v1")
    protocol = PatchSampler(images, scale=2, patch=16, colour="y", seed=4)
    lr_r, hr_r = robust.batch(8)
    lr_p, hr_p = protocol.batch(8)
    assert torch.equal(hr_r, hr_p)  # the same crops: the recipe changes only how LR is made
    assert lr_r.shape == lr_p.shape == (8, 1, 8, 8)
    assert not torch.equal(lr_r, lr_p)
    again = PatchSampler(images, scale=2, patch=16, colour="y", seed=4, degradations="robust-v1")
    assert torch.equal(again.batch(8)[0], lr_r)  # reproducible from the seed


def test_robust_run_records_its_recipe_history_and_matrix(data, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = TrainConfig(
        model="espcn",
        arch="robust",
        degradations="robust-v1",
        scale=2,
        data=str(data[0]),
        val=str(data[1]),
        out=str(tmp_path / "run" / "r.pt"),
        steps=4,
        batch=2,
        patch=16,
        val_every=2,
        progress=False,
        val_side="all",
    )
    result = train(config)
    meta = read_metadata(result.weights)
    assert meta["arch_config"]["config"]["features"] == list(ROBUST.features)
    assert meta["degradations"]["name"] == "robust-v1" and meta["degradations"]["compress_p"] == 0.4
    assert [h["steps"] for h in meta["history"]] == [4]
    assert set(meta["matrix"]["rows"]) == {"bicubic-aa", "bicubic", "area", "blur", "jpeg", "h264", "noise"}
    # Both the best checkpoint's weights and the exported file rebuild the robust network.
    for path in (result.weights, result.checkpoint.with_suffix(".best.safetensors")):
        assert build_model("espcn", 2, weights=path).module.config == ROBUST
    # The exported file carries its int8 ranges, measured on the run's own recipe (tests/test_int8.py).
    assert calibration_of(build_model("espcn", 2, weights=result.weights)) is not None
    assert meta["int8"]["source"].startswith("64 robust-v1 LR luma patches")
    # A second run that starts from the first carries the first one's history (and says it zoomed).
    follow = train(
        TrainConfig(
            **{**config.__dict__, "init": str(result.weights), "out": str(tmp_path / "run2" / "r.pt"), "hr_zoom": 0.75}
        )
    )
    history = read_metadata(follow.weights)["history"]
    assert [h["init"] for h in history] == [None, "r.safetensors"]
    assert [h.get("hr_zoom") for h in history] == [None, 0.75]


def test_hr_zoom_shows_photos_at_a_random_smaller_size() -> None:
    # A ramp rising 0.5 a pixel across the photo: a crop shown at s x its size (s in [zoom, 1]) rises
    # 0.5 / s a pixel, along whichever axis its flip and rotation left it.
    ramp = torch.arange(400, dtype=torch.float32).mul(0.5).round().to(torch.uint8).expand(3, 400, 400).contiguous()

    def rise_per_pixel(zoom: float) -> torch.Tensor:
        hr = PatchSampler([ramp], scale=4, patch=32, colour="rgb", seed=0, zoom=zoom).batch(64)[1] * 255.0
        rise = hr.diff(dim=-1).abs().mean(dim=(1, 2, 3)) + hr.diff(dim=-2).abs().mean(dim=(1, 2, 3))
        return rise / 0.5  # 1 / s

    assert torch.allclose(rise_per_pixel(1.0), torch.ones(64), atol=0.05)  # off: the photo's own size
    zoomed = rise_per_pixel(0.5)
    assert zoomed.min() > 0.95 and zoomed.max() < 2.1  # never upscaled, never below half size
    assert zoomed.max() > 1.6 and (zoomed > 1.2).float().mean() > 0.4  # and spread over the range
    with pytest.raises(InputError, match="hr-zoom"):
        TrainConfig(model="espcn", scale=2, data=".", val=".", out="x.pt", hr_zoom=0.0).check()


def test_weights_that_record_only_their_recipe_pass_it_on_as_history(data, tmp_path: Path) -> None:
    """The first shipped sets were trained in one run and record a ``recipe`` but no ``history``; a
    fine-tune from one of them must still say where it started."""
    torch.set_num_threads(1)
    config = TrainConfig(
        model="espcn", scale=2, data=str(data[0]), val=str(data[1]), out=str(tmp_path / "a" / "p.pt"),
        steps=2, batch=2, patch=16, val_every=2, progress=False, seed=7, val_side="all",
    )  # fmt: skip
    first = train(config).weights
    recipe_only = tmp_path / "recipe_only.safetensors"
    metadata = {k: v for k, v in read_metadata(first).items() if k != "history"}
    save_weights(build_model("espcn", 2, weights=first).module, recipe_only, metadata)
    follow = train(TrainConfig(**{**config.__dict__, "init": str(recipe_only), "out": str(tmp_path / "b" / "p.pt")}))
    history = read_metadata(follow.weights)["history"]
    assert [(h["seed"], h["init"]) for h in history] == [(7, None), (7, "recipe_only.safetensors")]
