"""Does mixed-precision training pay on this CPU, and does it train the same network?  One training step
of a network in float32 and in ``vidsr train --precision bf16`` (bfloat16 autocast), on the same batches.

* speed: forward + backward + Adam seconds a step, float32 against bfloat16;
* agreement: the L1 loss and the cosine between the two gradients, for bfloat16 as vidsr runs it (the
  bicubic residual and the output sum in float32: ``BicubicPhases.add_to``) and with that sum in
  bfloat16 too (what plain autocast does), which rounds the output to bfloat16's step (1/256 near 1.0).

A trained network's L1 error is about that step, so the check is meant for a trained state (the
default: the x2 run of ``benchmarks/gpu_train.py``, from ``benchmarks/training``); a fresh network's
errors are large and every variant agrees.  Needs the training photos::

    python benchmarks/train_precision.py [--state FILE.resume.pt] [--data $VIDSR_DATA/train] [--threads 2]

Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATE = ROOT / "benchmarks" / "training" / "srresnet_x2_robust_large.resume.pt"


def rounded_output(model: torch.nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """The SRResNet shuffle layout's forward with the bicubic residual summed under autocast (plain AMP)."""
    head = model.head(lr)
    body = model.body_tail(model.body(head)) + head
    conv, shuffle = model.upsample
    return shuffle(conv(body) + model.bicubic(lr))


def gradient(model: torch.nn.Module, forward, lr: torch.Tensor, hr: torch.Tensor, bf16: bool):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = forward(lr)
    loss = (out.float() - hr).abs().mean()
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])


def step_seconds(model: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor, bf16: bool, repeats: int) -> float:
    optimiser = torch.optim.Adam(model.parameters(), lr=0.0)  # lr 0: the state under test does not move
    times = []
    for _ in range(repeats + 1):  # the first warms the kernels up
        began = time.perf_counter()
        gradient(model, model, lr, hr, bf16)
        optimiser.step()
        times.append(time.perf_counter() - began)
    return sorted(times[1:])[len(times[1:]) // 2]


def main(argv: list[str] | None = None) -> int:
    from vidsr.models import build_module, get_spec
    from vidsr.train.data import PatchSampler, load_folder
    from vidsr.train.loop import TrainConfig, network_config

    data_default = Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data")) / "train"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=STATE, help="a vidsr train checkpoint [the x2 large run's]")
    parser.add_argument("--data", type=Path, default=data_default, help="training photos [shared/data/train]")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [torch's default]")
    parser.add_argument("--batches", type=int, default=3, help="batches compared [3]")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    state = torch.load(args.state, map_location="cpu", weights_only=True)
    known = {k: v for k, v in state["config"].items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**known)
    model = build_module(config.model, config.scale, network_config(config))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})  # compact files keep float32 weights
    if getattr(model, "bicubic", None) is None or model.config.upsample != "shuffle":
        raise SystemExit("Error: the check needs a network with the bicubic residual in the shuffle layout")
    sampler = PatchSampler(
        load_folder(args.data),
        scale=config.scale,
        patch=config.hr_patch,
        colour=get_spec(config.model).colour,
        seed=1234,  # other batches than the run's own
        degradations=config.degradations,
    )
    batches = [sampler.batch(config.batch) for _ in range(args.batches)]
    print(
        f"{args.state.name}: step {state['step']}, {config.model} {config.arch or ''} x{config.scale}, "
        f"batch {config.batch} of {config.hr_patch} px, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print("| batch | L1 float32 | L1 bf16 (vidsr) | gradient cosine, bf16 (vidsr) | bf16, output summed in bf16 |")
    print("| --- | --- | --- | --- | --- |")
    cosine = torch.nn.functional.cosine_similarity
    for k, (lr, hr) in enumerate(batches):
        loss32, grad32 = gradient(model, model, lr, hr, bf16=False)
        loss16, grad16 = gradient(model, model, lr, hr, bf16=True)
        _, grad_rounded = gradient(model, partial(rounded_output, model), lr, hr, bf16=True)
        print(
            f"| {k} | {loss32:.5f} | {loss16:.5f} | {cosine(grad32, grad16, dim=0).item():.4f} | "
            f"{cosine(grad32, grad_rounded, dim=0).item():.4f} |"
        )
    lr, hr = batches[0]
    fp32, bf16 = (step_seconds(model, lr, hr, bf16, repeats=5) for bf16 in (False, True))
    print(f"seconds a step (median of 5): float32 {fp32:.3f}, bf16 {bf16:.3f}: {fp32 / bf16:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
