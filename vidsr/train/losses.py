"""Training objectives: pixel loss for PSNR models, a content + adversarial loss for SRGAN.

SRGAN's content loss is the paper's VGG19 feature distance when ImageNet VGG19
weights are given (``--vgg-weights``); vidsr cannot download them, so without them
it is pixel L1 plus discriminator feature matching (Salimans et al. 2016, as in
pix2pixHD): the distance between the discriminator's activations on the output
and on the real image.  The discriminator is trained on exactly the difference
between real and super-resolved textures, so its features are a learned
perceptual metric that needs nothing from outside.
"""

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
    """Content + ``adv_weight`` x adversarial (-log D(G(LR))).

    Content: with ``vgg``, Ledig et al.'s VGG5,4 feature MSE; without, pixel L1 +
    ``fm_weight`` x the mean L1 distance of the discriminator's block activations.
    """

    def __init__(self, vgg: nn.Module | None, adv_weight: float = 1e-3, fm_weight: float = 0.1) -> None:
        super().__init__()
        self.vgg = vgg
        self.adv_weight = adv_weight
        self.fm_weight = fm_weight

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, disc: nn.Module) -> dict[str, torch.Tensor]:
        if self.vgg is not None:
            fake_logits = disc(sr)
            with torch.no_grad():
                target = self.vgg(hr) * VGG_RESCALE
            content = F.mse_loss(self.vgg(sr) * VGG_RESCALE, target)
        else:
            fake_logits, fake_maps = disc(sr, features=True)
            with torch.no_grad():
                _, real_maps = disc(hr, features=True)
            matching = torch.stack([F.l1_loss(f, r) for f, r in zip(fake_maps, real_maps, strict=True)]).mean()
            content = F.l1_loss(sr, hr) + self.fm_weight * matching
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        return {"loss": content + self.adv_weight * adversarial, "content": content, "adversarial": adversarial}


def bicubic_regret(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """How far each patch's MSE lies above that of a bicubic upscale of its LR, zero where the network
    does better; the batch mean.

    Added to the pixel loss (``--regret-weight``), it weighs more the patches where the network loses
    to bicubic.  On aliased LR those are the ones it over-sharpens: the pixel loss alone averages them
    with the many patches where sharpening pays, and the matrix's aliased row ends below bicubic.
    """
    from vidsr.resample import resize

    with torch.no_grad():
        bicubic = resize(lr.float(), tuple(hr.shape[-2:]), "bicubic", antialias=False)
        floor = (bicubic - hr).pow(2).flatten(1).mean(1)
    own = (sr - hr).pow(2).flatten(1).mean(1)
    return F.relu(own - floor).mean()


# Frame-to-frame noise of a still scene in 8-bit video (sensor and codec): what a steady network may not answer.
STEADY_NOISE = 2.0 / 255.0


def steadiness(model: nn.Module, lr: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
    """Mean L1 between ``sr`` (``model``'s answer to ``lr``) and its answer to ``lr`` plus Gaussian noise of
    :data:`STEADY_NOISE`.

    A GAN's invented grain is a function of the input's finest detail, so two frames of a still scene that
    differ only by noise get different grain: flicker.  Penalising the difference asks for grain that
    follows the picture, not the noise; both answers take the gradient.
    """
    noisy = (lr + STEADY_NOISE * torch.randn_like(lr)).clamp(0.0, 1.0)
    return F.l1_loss(model(noisy).float(), sr)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: real HR patches are 1, super-resolved ones 0."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake
