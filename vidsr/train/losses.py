"""Training objectives: pixel loss for PSNR models, VGG content + adversarial loss for SRGAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.errors import ModelError

PIXEL_LOSSES = ("l1", "mse")
# The paper rescales VGG feature maps by 1/12.75 so the content loss is on the scale of an MSE on pixels.
VGG_RESCALE = 1.0 / 12.75


def pixel_loss(name: str) -> nn.Module:
    if name == "l1":
        return nn.L1Loss()
    if name == "mse":
        return nn.MSELoss()
    raise ModelError(f"unknown loss {name!r}; choose from {', '.join(PIXEL_LOSSES)}")


class SRGANGeneratorLoss(nn.Module):
    """Ledig et al.'s perceptual loss: VGG5,4 content MSE + ``adv_weight`` x adversarial (-log D(G(LR)))."""

    def __init__(self, vgg: nn.Module, adv_weight: float = 1e-3) -> None:
        super().__init__()
        self.vgg = vgg
        self.adv_weight = adv_weight

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = self.vgg(hr) * VGG_RESCALE
        content = F.mse_loss(self.vgg(sr) * VGG_RESCALE, target)
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        return {"loss": content + self.adv_weight * adversarial, "content": content, "adversarial": adversarial}


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: real HR patches are 1, super-resolved ones 0."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake
