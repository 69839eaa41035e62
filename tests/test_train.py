"""Training: the loss goes down, resume == uninterrupted, the SRGAN losses, and the CLI on tiny data."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import load_script, make_photos

import vidsr.train.loop as loop_module
from vidsr.errors import InputError, ModelError
from vidsr.models import arch_config
from vidsr.models.srresnet import srresnet
from vidsr.models.weights import read_metadata, save_weights
from vidsr.train.data import PatchSampler
from vidsr.train.discriminator import Discriminator
from vidsr.train.loop import TrainConfig, train
from vidsr.train.losses import SRGANGeneratorLoss, discriminator_loss
from vidsr.train.vgg import RELU5_4, VGGFeatures, load_vgg19, vgg19_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # runs compared bit for bit


@pytest.fixture
def tiny_data(tmp_path: Path) -> tuple[Path, Path]:
    return make_photos(tmp_path / "train", 3, 64, 0), make_photos(tmp_path / "val", 1, 36, 1)


def _config(data: tuple[Path, Path], out: Path, **kw) -> TrainConfig:
    base = {"model": "espcn", "steps": 6, "batch": 4, "patch": 16, "lr": 3e-3, "val_every": 3, "progress": False}
    base["val_side"] = "all"  # one photo, whichever side of the split its name falls on
    return TrainConfig(scale=2, data=str(data[0]), val=str(data[1]), out=str(out), **{**base, **kw})


def test_a_few_steps_lower_the_loss(tiny_data, tmp_path: Path) -> None:
    result = train(_config(tiny_data, tmp_path / "run.pt", steps=60, val_every=20))
    records = [json.loads(line) for line in result.log.read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40, 60]
    assert records[-1]["loss"] < 0.6 * records[0]["loss"]
    assert result.weights is not None and result.weights.is_file()
    meta = read_metadata(result.weights)
    assert meta["architecture"] == "espcn" and meta["scale"] == 2
    assert set(meta["recipe"]) - {"selected_step"} == {
        *("steps", "patch", "batch", "lr", "loss", "seed", "data", "device", "seconds"),
        *("degradations", "init"),
    }
    assert meta["recipe"]["steps"] == 60
    # The weights are the best validation checkpoint; the recipe says which step when it is not the last.
    assert meta["recipe"].get("selected_step", 60) == result.best_step
    for key in ("val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim"):
        assert isinstance(meta[key], float)
    assert result.checkpoint.with_suffix(".best.safetensors").is_file()


class Recorder:
    """What a run drew: every (LR, HR) batch the sampler handed out, in order, and the numbers a
    validation callback took from the global generators (torch, numpy, random)."""

    def __init__(self, monkeypatch) -> None:
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.draws: list[tuple[int, list[float]]] = []
        recorder = self

        class RecordingSampler(PatchSampler):
            def batch(self, size: int):
                lr, hr = super().batch(size)
                recorder.batches.append((lr.clone(), hr.clone()))
                return lr, hr

        monkeypatch.setattr(loop_module, "PatchSampler", RecordingSampler)

    def on_validation(self, record: dict) -> None:
        # Stands in for any consumer of the global generators (dropout, augmentation, a callback
        # that samples): the loop promises they continue after a resume as if never stopped.
        self.draws.append((record["step"], [torch.rand(1).item(), float(np.random.rand()), random.random()]))


def _run(config: TrainConfig, monkeypatch, *, interrupt_at: int = 0) -> Recorder:
    recorder = Recorder(monkeypatch)

    def callback(record: dict) -> None:
        recorder.on_validation(record)
        if record["step"] == interrupt_at:
            raise KeyboardInterrupt  # Ctrl-C: the checkpoint is written on the way out

    if interrupt_at:
        with pytest.raises(KeyboardInterrupt):
            train(config, on_validation=callback)
    else:
        train(config, on_validation=callback)
    return recorder


@pytest.mark.parametrize("model", ["espcn", "srresnet"])
def test_resume_draws_the_same_patches_and_reaches_the_same_weights(model, tiny_data, tmp_path, monkeypatch):
    """Stopped after step 3 of 6 and resumed, a run draws the same patches (by the sampler's own
    API, whatever makes the LR side), sees the same global random numbers and ends with the same
    weights and optimiser state as an uninterrupted run."""
    kw = {"model": model, "batch": 2} if model == "srresnet" else {"model": model}
    whole = _config(tiny_data, tmp_path / "whole.pt", **kw)
    a = _run(whole, monkeypatch)
    cut = _config(tiny_data, tmp_path / "cut.pt", **kw)
    first = _run(cut, monkeypatch, interrupt_at=3)
    assert torch.load(tmp_path / "cut.pt", weights_only=True)["step"] == 3
    second = _run(replace(cut, resume=str(tmp_path / "cut.pt")), monkeypatch)

    assert len(a.batches) == 6 and len(first.batches) == 3 and len(second.batches) == 3
    for i, ((lr_a, hr_a), (lr_b, hr_b)) in enumerate(zip(a.batches, first.batches + second.batches, strict=True)):
        assert torch.equal(hr_a, hr_b) and torch.equal(lr_a, lr_b), f"batch {i + 1} differs"
    assert [s for s, _ in a.draws] == [3, 6]
    assert first.draws + second.draws == a.draws

    ckpt_a = torch.load(tmp_path / "whole.pt", weights_only=True)
    ckpt_b = torch.load(tmp_path / "cut.pt", weights_only=True)
    assert ckpt_a["step"] == ckpt_b["step"] == 6
    for key, value in ckpt_a["model"].items():
        assert torch.equal(value, ckpt_b["model"][key]), key
    for index, state in ckpt_a["optimiser"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, ckpt_b["optimiser"]["state"][index][name]), (index, name)
    assert ckpt_a["best"] == ckpt_b["best"]


def test_stop_at_then_resume_equals_an_uninterrupted_run(tiny_data, tmp_path: Path) -> None:
    whole = train(_config(tiny_data, tmp_path / "whole.pt"))
    staged = _config(tiny_data, tmp_path / "staged.pt", stop_at=3)
    assert train(staged).weights is None
    assert torch.load(tmp_path / "staged.pt", weights_only=True)["step"] == 3
    final = train(replace(staged, stop_at=0, resume=str(tmp_path / "staged.pt")))
    a = torch.load(whole.checkpoint, weights_only=True)
    c = torch.load(final.checkpoint, weights_only=True)
    assert a["step"] == c["step"] == 6
    for key, value in a["model"].items():
        assert torch.equal(value, c["model"][key]), key


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_resumes_a_float32_checkpoint_and_records_itself(tiny_data, tmp_path: Path, precision) -> None:
    """A float32 run's checkpoint goes on in mixed precision: bfloat16, as a CPU session with AMX carries a
    run begun elsewhere, or float16 with loss scaling, CUDA's way (here on the CPU), whose enabled scaler
    starts afresh from the float32 run's empty one.  The loss still falls; the weights' recipe says it."""
    config = _config(tiny_data, tmp_path / "run.pt", arch="robust", steps=60, val_every=20, stop_at=20)
    train(config)
    result = train(replace(config, stop_at=0, resume=str(tmp_path / "run.pt"), precision=precision))
    records = [json.loads(line) for line in result.log.read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40, 60]
    assert records[-1]["loss"] < records[0]["loss"]
    assert read_metadata(result.weights)["recipe"]["precision"] == precision
    scaler = torch.load(result.checkpoint, weights_only=True)["scaler"]
    assert bool(scaler) == (precision == "fp16")  # float16 saves its loss scale; bfloat16 needs none


def test_train_precision_benchmark_reads_a_run_and_compares_the_gradients(tiny_data, tmp_path, capsys) -> None:
    config = _config(tiny_data, tmp_path / "run.pt", model="srresnet", arch="lite", batch=2, patch=32, stop_at=2)
    train(config)
    bench = load_script("train_precision")
    try:
        args = ["--state", str(tmp_path / "run.pt"), "--data", str(tiny_data[0]), "--batches", "2", "--threads", "1"]
        assert bench.main(args) == 0
    finally:
        sys.modules.pop("train_precision", None)
    out = capsys.readouterr().out
    rows = [[float(cell) for cell in line.split("|")[1:-1]] for line in out.splitlines() if line[:3] in ("| 0", "| 1")]
    assert len(rows) == 2, out
    for _, loss32, loss16, cosine, _ in rows:
        assert loss16 == pytest.approx(loss32, rel=0.01)
        assert cosine > 0.99  # bfloat16 as vidsr trains in it follows float32's gradient
    assert "seconds a step (median of 5): float32" in out


def test_precision_is_checked_and_a_scaler_goes_on_from_its_own_state_only(tiny_data, tmp_path) -> None:
    with pytest.raises(InputError, match="unknown --precision"):
        _config(tiny_data, tmp_path / "x.pt", precision="int8").check()
    with pytest.raises(ModelError, match="--arch cascade is x4 only"):
        _config(tiny_data, tmp_path / "x.pt", model="srresnet", arch="cascade").check()
    replace(_config(tiny_data, tmp_path / "x.pt", model="srresnet", arch="cascade"), scale=4).check()
    fresh = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    loop_module.restore_scaler(fresh, torch.amp.GradScaler("cpu", enabled=False).state_dict())
    assert fresh.get_scale() == 1024.0
    saved = torch.amp.GradScaler("cpu", enabled=True, init_scale=4.0)
    saved.scale(torch.ones(()))  # a scaler's state exists once it has scaled a loss
    loop_module.restore_scaler(fresh, saved.state_dict())
    assert fresh.get_scale() == 4.0


def test_vgg19_layout_matches_torchvision() -> None:
    features = vgg19_features()
    assert len(features) == 37
    convs = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert isinstance(features[RELU5_4], torch.nn.ReLU) and isinstance(features[RELU5_4 + 1], torch.nn.MaxPool2d)
    assert len(VGGFeatures(features).features) == RELU5_4 + 1


def test_srgan_losses_follow_the_paper() -> None:
    """Ledig et al. (2017) eq. 5-6 and the discriminator's cross-entropy, written out by hand:
    VGG19 relu5_4 maps (torchvision's features[:36]) of ImageNet-normalised images, rescaled by
    1/12.75, mean squared difference; adversarial -log D(G(x)); D: -log D(real) - log(1 - D(fake))."""
    torch.manual_seed(0)
    features = vgg19_features()
    loss_fn = SRGANGeneratorLoss(VGGFeatures(features), adv_weight=1e-3)
    disc = Discriminator()
    hr = torch.rand(2, 3, 32, 32)
    sr = (hr + 0.1 * torch.randn_like(hr)).requires_grad_(True)
    fake_logits = disc(sr)
    parts = loss_fn(sr, hr, disc)

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        phi_sr, phi_hr = (features[:36]((x.detach() - mean) / std).double() / 12.75 for x in (sr, hr))
        content = ((phi_sr - phi_hr) ** 2).mean().item()
        d_fake = torch.sigmoid(fake_logits.double())
        adversarial = -torch.log(d_fake).mean().item()
        d_real = torch.sigmoid(disc(hr).double())
        d_loss = (-torch.log(d_real).mean() - torch.log(1.0 - d_fake).mean()).item()
    assert content > 0 and adversarial > 0
    assert parts["content"].item() == pytest.approx(content, rel=1e-4)
    assert parts["adversarial"].item() == pytest.approx(adversarial, rel=1e-5)
    assert parts["loss"].item() == pytest.approx(content + 1e-3 * adversarial, rel=1e-4)
    assert discriminator_loss(disc(hr), disc(sr.detach())).item() == pytest.approx(d_loss, rel=1e-5)
    parts["loss"].backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert loss_fn(hr, hr, disc)["content"].item() == 0.0


def test_srgan_content_without_vgg_is_l1_plus_feature_matching() -> None:
    """Without VGG19: L1(sr, hr) + w x mean over the discriminator's 8 blocks of L1(D_k(sr), D_k(hr)),
    with the activations taken by hand, after each LeakyReLU."""
    torch.manual_seed(0)
    disc = Discriminator().eval()  # batch norm on running statistics: the same maps in both passes
    loss_fn = SRGANGeneratorLoss(None, adv_weight=1e-3, fm_weight=0.25)
    hr = torch.rand(2, 3, 32, 32)
    sr = (hr + 0.1 * torch.randn_like(hr)).requires_grad_(True)
    parts = loss_fn(sr, hr, disc)

    def maps(x):
        out = []
        for layer in disc.body:
            x = layer(x)
            if isinstance(layer, torch.nn.LeakyReLU):
                out.append(x)
        return out

    with torch.no_grad():
        pairs = list(zip(maps(sr.detach()), maps(hr), strict=True))
        matching = sum((a - b).abs().mean().item() for a, b in pairs) / len(pairs)
        content = (sr.detach() - hr).abs().mean().item() + 0.25 * matching
        adversarial = -torch.log(torch.sigmoid(disc(sr.detach()).double())).mean().item()
    assert len(pairs) == 8 and matching > 0
    assert parts["content"].item() == pytest.approx(content, rel=1e-4)
    assert parts["loss"].item() == pytest.approx(content + 1e-3 * adversarial, rel=1e-4)
    parts["loss"].backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert loss_fn(hr, hr, disc)["content"].item() == 0.0


def test_missing_vgg_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no VGG19 weights given.*--vgg-weights"):
        load_vgg19(None)
    with pytest.raises(ModelError, match=r"VGG19 weights .*nope.pth do not exist"):
        load_vgg19(tmp_path / "nope.pth")
    # A torchvision-format state dict loads.
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in vgg19_features().state_dict().items()}, path)
    assert isinstance(load_vgg19(path), VGGFeatures)


def test_srgan_trains_from_srresnet_with_given_vgg(tiny_data, tmp_path: Path) -> None:
    init = tmp_path / "srresnet_x2.safetensors"
    save_weights(srresnet(scale=2), init, {"architecture": "srresnet", "scale": 2})
    vgg = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in vgg19_features().state_dict().items()}, vgg)
    config = _config(tiny_data, tmp_path / "gan.pt", model="srgan", steps=2, val_every=2, batch=2, lr=1e-4)
    with pytest.raises(ModelError, match="--init"):
        train(config)
    result = train(replace(config, init=str(init), vgg_weights=str(vgg)))
    assert result.step == 2
    meta = read_metadata(result.weights)
    assert meta["architecture"] == "srresnet" and meta["recipe"]["loss"] == "vgg54+0.001xadversarial"
    assert "disc" in torch.load(result.checkpoint, weights_only=True)


def test_srgan_without_vgg_fine_tunes_the_network_it_is_given(tiny_data, tmp_path: Path) -> None:
    init = tmp_path / "lite_x2.safetensors"
    lite = srresnet(scale=2, config="lite")
    save_weights(lite, init, {"architecture": "srresnet", "scale": 2, "arch_config": arch_config("srresnet", "lite")})
    config = _config(tiny_data, tmp_path / "gan.pt", model="srgan", steps=4, val_every=2, batch=2, lr=1e-4)
    result = train(replace(config, init=str(init)))
    meta = read_metadata(result.weights)
    assert meta["arch_config"] == arch_config("srresnet", "lite")
    assert meta["recipe"]["loss"] == "l1+0.1xfeature-matching+0.001xadversarial"
    # PSNR does not pick a GAN's checkpoint: the last validation's weights are the ones kept.
    assert result.best_step == 4
    steady = train(replace(config, init=str(init), steady_weight=0.5, out=str(tmp_path / "steady.pt")))
    assert read_metadata(steady.weights)["recipe"]["loss"].endswith("+0.001xadversarial+0.5xsteadiness")
    with pytest.raises(InputError, match="--steady-weight is for srgan"):
        train(replace(config, model="srresnet", steady_weight=0.5))


def test_cli_train_then_eval(tiny_data, tmp_path: Path) -> None:
    from vidsr.cli.main import cli

    data, val = tiny_data
    runner = CliRunner()
    out = tmp_path / "cli.pt"
    args = ["train", "--model", "espcn", "--scale", "2", "--data", str(data), "--val", str(val)]
    result = runner.invoke(
        cli,
        [
            *args,
            "--steps",
            "4",
            "--batch",
            "2",
            "--patch",
            "16",
            "--val-every",
            "2",
            "--out",
            str(out),
            "--quiet",
            "--json",
            "--threads",
            "1",
            "--val-side",
            "all",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    weights = Path(payload["weights"])
    assert weights == out.with_suffix(".safetensors") and weights.is_file()
    assert payload["step"] == 4 and payload["metadata"]["model"] == "espcn"

    result = runner.invoke(cli, ["eval", str(val), "--model", "espcn", "--scale", "2", "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("mean")
    result = runner.invoke(cli, ["eval", str(val), "-m", "bicubic", "-s", "2", "--json"])
    report = json.loads(result.stdout)
    assert report["psnr"] == report["bicubic_psnr"] and len(report["images"]) == 1

    result = runner.invoke(cli, [*args[:2], "srgan", *args[3:], "--out", str(tmp_path / "g.pt")])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: srgan fine-tunes a trained srresnet: pass its weights with --init"
    result = runner.invoke(
        cli,
        [
            "eval",
            str(tmp_path / "train"),
            "--model",
            "espcn",
            "--scale",
            "2",
            "--weights",
            str(tmp_path / "missing.safetensors"),
        ],
    )
    assert result.exit_code == 1
    assert "Error: weights file" in result.stderr and "does not exist" in result.stderr


def test_ema_is_what_is_validated_kept_and_resumed(tiny_data, tmp_path: Path) -> None:
    """With --ema the best checkpoint and the export are the moving average, not the last step's weights,
    and a run stopped and resumed keeps the same average as an uninterrupted one."""
    whole = train(_config(tiny_data, tmp_path / "whole.pt", ema=0.5, val_every=6))
    ckpt = torch.load(whole.checkpoint, weights_only=True)
    average = {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    assert int(ckpt["ema"]["n_averaged"]) == 6
    assert ckpt["best"]["step"] == 6
    for key, value in ckpt["best_state"].items():
        assert torch.equal(value, average[key]), key
    assert any(not torch.equal(ckpt["model"][k], average[k]) for k in average)  # an average, not a copy
    assert read_metadata(whole.weights)["recipe"]["ema"] == 0.5

    staged = _config(tiny_data, tmp_path / "staged.pt", ema=0.5, val_every=6, stop_at=3)
    train(staged)
    final = train(replace(staged, stop_at=0, resume=str(tmp_path / "staged.pt")))
    resumed = torch.load(final.checkpoint, weights_only=True)
    for key, value in ckpt["ema"].items():
        assert torch.equal(value, resumed["ema"][key]), key


def test_extra_photos_are_the_packaged_ones_and_join_the_training_set(tiny_data, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("skimage.data")
    from vidsr.train import data as data_module

    images = data_module.load_extra("scikit-image")
    assert len(images) == len(data_module.SKIMAGE_PHOTOS) == 9
    assert all(im.dtype == torch.uint8 and im.shape[0] == 3 and min(im.shape[1:]) >= 128 for im in images)
    with pytest.raises(InputError, match="unknown extra photo source"):
        data_module.load_extra("imagenet")
    with pytest.raises(InputError, match="unknown extra photo source"):
        _config(tiny_data, tmp_path / "bad.pt", extra_photos=("imagenet",)).check()

    seen: list[int] = []
    real_sampler = loop_module.PatchSampler

    def counting_sampler(images, **kw):
        seen.append(len(images))
        return real_sampler(images, **kw)

    monkeypatch.setattr(loop_module, "PatchSampler", counting_sampler)
    result = train(_config(tiny_data, tmp_path / "x.pt", steps=2, val_every=2, extra_photos=("scikit-image",)))
    assert seen == [3 + 9]  # the folder's three photos and the package's nine
    assert read_metadata(result.weights)["recipe"]["extra_photos"] == ["scikit-image"]
