"""vidsr.ensemble and --ensemble: the eight turns of the input, each output turned back, averaged."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import make_clip

from vidsr.batch.options import UpscaleSettings
from vidsr.cli import cli
from vidsr.ensemble import TURNS, SelfEnsembled, self_ensemble
from vidsr.evaluate import module_upscaler
from vidsr.models.srresnet import srresnet
from vidsr.upscaler import Upscaler


def _frames(n: int = 2, height: int = 12, width: int = 20) -> torch.Tensor:
    return torch.rand(n, 1, height, width, generator=torch.Generator().manual_seed(3))


def test_every_turn_is_undone():
    """An identity model gives its input back through all eight turns, on a frame that is not square."""
    x = _frames()
    seen: list[torch.Tensor] = []

    def identity(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        return t

    torch.testing.assert_close(self_ensemble(identity, x), x, rtol=0, atol=1e-6)  # a wrong turn is off by ~0.5
    assert len(seen) == len(TURNS) == 8
    assert len({(tuple(t.shape), t.sum().item(), t[0, 0, 0, 0].item(), t[0, 0, -1, 0].item()) for t in seen}) == 8
    assert sum(tuple(t.shape[-2:]) == (20, 12) for t in seen) == 4  # half of them transposed


def test_flips_only_where_a_transposed_frame_would_not_fit():
    x = _frames()
    shapes: list[tuple[int, ...]] = []
    upsample = lambda t: shapes.append(tuple(t.shape)) or F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    out = self_ensemble(upsample, x, transpose=False)
    assert shapes == [(2, 1, 12, 20)] * 4
    # Nearest upsampling turns with its input, so its ensemble is itself.
    torch.testing.assert_close(out, F.interpolate(x, scale_factor=2, mode="nearest"), rtol=0, atol=0)


def test_a_cascade_ensembled_pass_by_pass_feeds_each_pass_the_last_ones_mean():
    torch.manual_seed(0)
    cascade = srresnet(scale=4, blocks=1, config="cascade").eval()
    with torch.no_grad():  # away from its start, where each pass is close to its (equivariant) bicubic
        for weight in cascade.parameters():
            weight.normal_(0.0, 0.05)
    x = torch.rand(1, 3, 6, 10, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        first = self_ensemble(cascade.passes[0], x)
        per_stage = SelfEnsembled(cascade, per_stage=True)(x)
        whole = SelfEnsembled(cascade)(x)
        torch.testing.assert_close(per_stage, self_ensemble(cascade.passes[1], first), rtol=0, atol=1e-6)
        torch.testing.assert_close(whole, self_ensemble(cascade, x), rtol=0, atol=1e-6)
    assert per_stage.shape == whole.shape == (1, 3, 24, 40)
    assert (per_stage - whole).abs().max() > 1e-4  # the two orders differ


def test_only_a_network_of_passes_is_ensembled_pass_by_pass():
    with pytest.raises(ValueError, match="no passes"):
        SelfEnsembled(srresnet(scale=2, blocks=1), per_stage=True)


def test_the_upscalers_ensemble_is_the_mean_of_the_model_on_each_turn():
    x = _frames(height=16, width=24)
    plain = Upscaler("espcn", 2, device="cpu", backend="torch-cpu")
    turned = Upscaler("espcn", 2, device="cpu", backend="torch-cpu", ensemble=True)
    expected = self_ensemble(plain._infer, x)
    torch.testing.assert_close(turned._infer(x), expected, rtol=0, atol=1e-6)
    assert (turned.run_model(x) - plain.run_model(x)).abs().max() > 1e-3  # the turns do disagree
    assert "self-ensemble of 8" in turned.describe()


def test_eval_measures_the_ensemble(tmp_path):
    lr = torch.rand(3, 10, 14, generator=torch.Generator().manual_seed(1))
    up = Upscaler("espcn", 2, device="cpu", backend="torch-cpu")
    plain = module_upscaler(up.loaded.module, "y")(lr)
    turned = module_upscaler(up.loaded.module, "y", ensemble=True)(lr)
    assert plain.shape == turned.shape == (20, 28)
    assert (plain - turned).abs().max() > 0.5  # 0..255 scale, 8-bit rounded


def test_batch_folders_begun_without_the_option_still_resume():
    assert "ensemble" not in UpscaleSettings().fingerprint()
    assert UpscaleSettings(ensemble=True).fingerprint()["ensemble"] is True


def test_upscale_with_ensemble_from_the_command_line(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=3, size=(32, 24))
    out = tmp_path / "c.x2.mp4"
    args = ["upscale", clip, "-s", "2", "--device", "cpu", "--ensemble", "--json", "-q", "--preset", "ultrafast"]
    result = CliRunner().invoke(cli, [str(a) for a in [*args, "-o", out]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["ensemble"] is True and summary["frames_out"] == 3 and out.is_file()
