"""A compact checkpoint (bfloat16 optimiser moments) is small, and a run resumed from it goes on to the end."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import make_photos

from vidsr.models import arch_config
from vidsr.models.srresnet import srresnet
from vidsr.models.weights import read_metadata, save_weights
from vidsr.train.checkpoint import compact
from vidsr.train.loop import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # runs compared bit for bit


def test_srgan_resumes_from_a_compact_checkpoint(tmp_path: Path) -> None:
    data, val = make_photos(tmp_path / "train", 3, 64, 0), make_photos(tmp_path / "val", 1, 36, 1)
    init = tmp_path / "lite_x2.safetensors"
    save_weights(
        srresnet(scale=2, config="lite"),
        init,
        {"architecture": "srresnet", "scale": 2, "arch_config": arch_config("srresnet", "lite")},
    )
    config = TrainConfig(
        model="srgan", scale=2, data=str(data), val=str(val), out=str(tmp_path / "whole.pt"), steps=4, batch=2,
        patch=16, lr=1e-4, val_every=2, progress=False, init=str(init), val_side="all", disc_features=16,
        disc_head="pooled",
    )  # fmt: skip
    whole = train(config)
    staged = replace(config, out=str(tmp_path / "staged.pt"), stop_at=2)
    train(staged)
    before, after = compact(tmp_path / "staged.pt", tmp_path / "kept" / "resume.pt")
    assert after < 0.8 * before  # the moments halved; weights (the model twice: latest and best) kept
    kept = torch.load(tmp_path / "kept" / "resume.pt", weights_only=True)
    moments = next(iter(kept["disc_opt"]["state"].values()))
    assert moments["exp_avg"].dtype == torch.bfloat16 and kept["model"]["head.0.weight"].dtype == torch.float32
    assert kept["best_state"]["head.0.weight"].dtype == torch.float16  # exported through float16 anyway
    resumed = train(replace(staged, stop_at=0, resume=str(tmp_path / "kept" / "resume.pt")))
    assert resumed.step == 4 and resumed.weights is not None
    assert read_metadata(resumed.weights)["recipe"]["discriminator"] == {"features": 16, "head": "pooled"}
    a = torch.load(whole.checkpoint, weights_only=True)["model"]
    b = torch.load(resumed.checkpoint, weights_only=True)["model"]
    for key, value in a.items():  # close to the uninterrupted run, not bit for bit
        torch.testing.assert_close(b[key], value, atol=1e-4, rtol=1e-2)


def test_keep_validated_writes_every_validated_step(tmp_path: Path) -> None:
    data, val = make_photos(tmp_path / "train", 2, 48, 0), make_photos(tmp_path / "val", 1, 36, 1)
    config = TrainConfig(
        model="espcn", scale=2, data=str(data), val=str(val), out=str(tmp_path / "run.pt"), steps=4, batch=2,
        patch=16, val_every=2, progress=False, val_side="all", keep_validated=True,
    )  # fmt: skip
    train(config)
    kept = sorted(p.name for p in tmp_path.glob("run.step*.safetensors"))
    assert kept == ["run.step2.safetensors", "run.step4.safetensors"]
    assert read_metadata(tmp_path / "run.step2.safetensors")["step"] == 2
