"""What picks a checkpoint (vidsr.train.validation), the bicubic-regret and steadiness losses and the light
discriminator."""

from __future__ import annotations

import math

import pytest
import torch

from vidsr.resample import resize
from vidsr.train.discriminator import Discriminator
from vidsr.train.losses import STEADY_NOISE, bicubic_regret, steadiness
from vidsr.train.validation import SRGAN_MIN_GAIN, selection_score


def test_a_row_below_bicubic_counts_twice_in_the_robust_score() -> None:
    even = {"bicubic-aa": 1.0, "bicubic": 0.2, "area": 0.9}
    losing = {"bicubic-aa": 1.3, "bicubic": -0.1, "area": 1.0}  # a higher mean, bought with a losing row
    assert sum(losing.values()) > sum(even.values())
    assert selection_score(even, 30.0, None, "robust-v3") == pytest.approx(0.7)
    assert selection_score(losing, 30.0, None, "robust-v3") == pytest.approx(2.2 / 3 - 0.1)
    assert selection_score(even, 30.0, None, "robust-v3") > selection_score(losing, 30.0, None, "robust-v3")
    assert selection_score(losing, 31.5, None, "protocol") == 31.5  # protocol runs: PSNR as ever


def test_srgan_is_picked_by_niqe_among_checkpoints_that_keep_the_protocol_gain() -> None:
    keeps = {"bicubic-aa": SRGAN_MIN_GAIN + 0.1}
    falls = {"bicubic-aa": SRGAN_MIN_GAIN - 0.3}
    assert selection_score(keeps, 0, 5.0, "protocol") > selection_score(keeps, 0, 5.5, "protocol")
    assert selection_score(keeps, 0, 5.5, "protocol") > selection_score(falls, 0, 4.0, "protocol")
    # Photos too small for NIQE: the latest checkpoint, as before NIQE picked.
    assert selection_score(keeps, 0, None, "protocol", gan=True, step=7) == 7.0
    assert math.isfinite(selection_score(falls, 0, 4.0, "protocol"))


def test_bicubic_regret_counts_only_patches_that_lose_to_bicubic() -> None:
    torch.manual_seed(0)
    hr = torch.rand(2, 1, 16, 16)
    lr = resize(hr, (8, 8), "bicubic", antialias=True)
    bicubic = resize(lr, (16, 16), "bicubic", antialias=False)
    assert bicubic_regret(hr.clone(), hr, lr) == 0.0  # perfect: no regret
    assert bicubic_regret(bicubic, hr, lr).item() == pytest.approx(0.0, abs=1e-7)  # a tie costs nothing
    worse = bicubic.clone()
    worse[1] += 0.1  # only the second patch loses, by 0.01 in MSE
    assert bicubic_regret(worse, hr, lr).item() == pytest.approx(0.01 / 2, rel=0.05)
    worse.requires_grad_(True)
    bicubic_regret(worse, hr, lr).backward()
    assert worse.grad[0].abs().sum() == 0 and worse.grad[1].abs().sum() > 0


def test_steadiness_is_how_far_the_answer_follows_the_noise_of_the_input() -> None:
    torch.manual_seed(0)
    lr = torch.full((2, 3, 16, 16), 0.5)
    identity = torch.nn.Identity()  # passes the noise on
    constant = lambda x: torch.zeros_like(x)  # noqa: E731 - answers the same whatever the noise
    assert steadiness(constant, lr, constant(lr)).item() == 0.0
    # The mean absolute value of N(0, s^2) is s x sqrt(2 / pi).
    follows = steadiness(identity, lr, identity(lr)).item()
    assert follows == pytest.approx(STEADY_NOISE * math.sqrt(2 / math.pi), rel=0.1)
    sr = lr.clone().requires_grad_(True)
    steadiness(identity, lr, sr).backward()
    assert sr.grad.abs().sum() > 0  # the clean answer takes the gradient too


@pytest.mark.parametrize("patch", [64, 96])
def test_the_pooled_discriminator_is_light_and_takes_any_patch(patch: int) -> None:
    light, paper = Discriminator(features=32, head="pooled"), Discriminator()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(light) * 10 < count(paper)
    logits, maps = light(torch.rand(2, 3, patch, patch), features=True)
    assert logits.shape == (2,) and len(maps) == 8
    with pytest.raises(ValueError, match="unknown discriminator head"):
        Discriminator(head="global")
