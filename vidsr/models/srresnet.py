"""SRResNet, the SRGAN generator (Ledig et al., CVPR 2017), and a lighter variant of the same family.

``srresnet`` is this network trained on pixel loss; ``srgan`` is the same network
fine-tuned with a perceptual and an adversarial loss.  Two configurations (a
weights file names its own under ``arch_config``, so ``build_model`` builds the
network that fits it):

* ``paper``: a 9x9 head, 16 residual blocks of 64 channels with batch norm and
  PReLU, a long skip, PixelShuffle x2 stages (one x3 stage for scale 3), a 9x9 tail.
* ``lite``: what a 2-core CPU can train in an hour and run on video: 8 residual
  blocks of 48 channels without batch norm (EDSR found it only costs there), a
  3x3 head, and one convolution to ``3 x scale^2`` channels and one PixelShuffle
  in place of the upsampling stages and the 9x9 tail, which run at 4x and 16x
  the pixels at x4 and cost more than the whole body.  Its output is added to a
  bicubic upscale of the input (a global residual, as VDSR), so it starts as
  bicubic and learns only the missing detail.  About a sixth of the paper's FLOPs.
* ``large``: ``lite``'s design at the paper's size, 16 blocks of 64 channels (EDSR's
  baseline shape): the capacity a GPU can train, about 3.5x ``lite``'s FLOPs.
* ``cascade`` (x4 only): two ``large`` x2 networks in series, each with its own bicubic
  residual.  The second runs on the first's 2x output, so it costs four times the first:
  about 5x ``large``'s FLOPs at x4, for the capacity a single x4 pass at the input's
  resolution lacks.  It starts from the x2 ``large`` weights in both passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.models.bicubic_residual import BicubicPhases


@dataclass(frozen=True)
class SRResNetConfig:
    """The shape of an SRResNet-family network."""

    features: int = 64
    blocks: int = 16
    batch_norm: bool = True
    head_kernel: int = 9
    upsample: Literal["stages", "shuffle"] = "stages"  # paper's conv+shuffle stages and 9x9 tail, or one shuffle
    residual: bool = False  # add a bicubic upscale of the input to the output
    cascade: bool = False  # x4 as two x2 networks of this shape in series

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SRResNetConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def receptive_radius(self) -> int:
        """Low-resolution pixels each output pixel depends on, each side."""
        body = self.head_kernel // 2 + 2 * self.blocks + 1  # every body conv is 3x3
        if self.upsample == "shuffle":
            return body + 1  # the output conv; the bicubic residual reaches only 2
        # The stage convs and the 9x9 tail run at 1x..scale x: under 3 LR pixels together at every scale.
        return body + 3


PAPER = SRResNetConfig()
LITE = SRResNetConfig(features=48, blocks=8, batch_norm=False, head_kernel=3, upsample="shuffle", residual=True)
LARGE = SRResNetConfig(features=64, blocks=16, batch_norm=False, head_kernel=3, upsample="shuffle", residual=True)
CASCADE = replace(LARGE, cascade=True)
CONFIGS = {"paper": PAPER, "lite": LITE, "large": LARGE, "cascade": CASCADE}
_FACTORS = {2: [2], 3: [3], 4: [2, 2]}


class ResidualBlock(nn.Module):
    def __init__(self, features: int, batch_norm: bool = True) -> None:
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(features)) if batch_norm else nn.Identity
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1),
            norm(),
            nn.PReLU(features),
            nn.Conv2d(features, features, 3, padding=1),
            norm(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _upsample_stages(scale: int, features: int) -> list[nn.Module]:
    stages: list[nn.Module] = []
    for f in _FACTORS[scale]:
        stages += [nn.Conv2d(features, features * f * f, 3, padding=1), nn.PixelShuffle(f), nn.PReLU(features)]
    return stages


class SRResNet(nn.Module):
    def __init__(self, scale: int, channels: int = 3, config: SRResNetConfig = PAPER) -> None:
        super().__init__()
        if scale not in _FACTORS:
            raise ValueError(f"SRResNet supports scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.config = config
        self.receptive_radius = config.receptive_radius
        f = config.features
        self.head = nn.Sequential(
            nn.Conv2d(channels, f, config.head_kernel, padding=config.head_kernel // 2), nn.PReLU(f)
        )
        self.body = nn.Sequential(*(ResidualBlock(f, config.batch_norm) for _ in range(config.blocks)))
        self.body_tail = nn.Sequential(
            nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f) if config.batch_norm else nn.Identity()
        )
        if config.upsample == "stages":
            self.upsample = nn.Sequential(*_upsample_stages(scale, f))
            self.tail: nn.Module = nn.Conv2d(f, channels, 9, padding=4)
        else:
            self.upsample = nn.Sequential(nn.Conv2d(f, channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
            self.tail = nn.Identity()
        self.bicubic = BicubicPhases(scale, channels) if config.residual else None
        if not config.batch_norm:
            self._init_without_norm()

    def _init_without_norm(self) -> None:
        # Without batch norm nothing rescales the residual stream: each block's last conv
        # starts small so eight blocks add up to a modest change, and with the bicubic
        # residual a zero output conv starts the network as exactly bicubic.
        for block in self.body:
            block.body[3].weight.data.mul_(0.1)
        if self.config.residual:
            last = self.upsample[0]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        body = self.body_tail(self.body(head)) + head
        if self.bicubic is None:
            return self.tail(self.upsample(body))
        if self.config.upsample == "shuffle":
            # One pixel shuffle for both: the residual's phases join the output conv's before it.
            conv, shuffle = self.upsample
            return shuffle(self.bicubic.add_to(conv(body), x))
        phases = F.pixel_unshuffle(self.tail(self.upsample(body)), self.scale)
        return F.pixel_shuffle(self.bicubic.add_to(phases, x), self.scale)


class Cascade(nn.Module):
    """x4 as two x2 SRResNets in series (``config.cascade``): the second pass upscales the first's output."""

    scale = 4

    def __init__(self, config: SRResNetConfig) -> None:
        super().__init__()
        one_pass = replace(config, cascade=False)
        self.config = config
        self.passes = nn.ModuleList([SRResNet(2, config=one_pass), SRResNet(2, config=one_pass)])
        # The second pass's reach, in its own (2x) pixels, is half as many input pixels.
        radius = one_pass.receptive_radius
        self.receptive_radius = radius + -(-radius // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for one_pass in self.passes:
            x = one_pass(x)
        return x


def srresnet(
    *, scale: int, blocks: int | None = None, config: SRResNetConfig | dict[str, Any] | str = PAPER
) -> SRResNet | Cascade:
    """SRResNet / SRGAN generator for RGB at ``scale`` (2, 3 or 4); ``config`` a name, dict or config,
    ``blocks`` overrides its number of residual blocks (small networks for tests)."""
    if isinstance(config, str):
        config = CONFIGS[config]
    elif isinstance(config, dict):
        config = SRResNetConfig.from_dict(config)
    if blocks is not None:
        config = replace(config, blocks=blocks)
    if config.cascade:
        if scale != 4:
            raise ValueError(f"the cascade SRResNet is x4 only (two x2 passes), not x{scale}")
        return Cascade(config)
    return SRResNet(scale, config=config)
