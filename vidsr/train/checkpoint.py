"""A training checkpoint small enough to commit, so a run can go on in another session.

    .venv/bin/python -m vidsr.train.checkpoint runs/srgan_x4.pt runs/srgan_x4.resume.pt

``runs/`` is git-ignored and each session starts from a fresh checkout, so a long CPU run (SRGAN's
adversarial fine-tuning) would start over every time.  The compact file keeps everything
``vidsr train --resume`` reads, with the weights, the RNG and sampler states exact, and only the
optimisers' moment estimates (two thirds of the bytes) stored as bfloat16: Adam's running means of
gradients and squared gradients need range, which bfloat16 keeps, not the last digits, and
``Optimizer.load_state_dict`` casts them back to float32.  A resumed run therefore follows the
uninterrupted one closely but not bit for bit.  The best validated weights so far are kept as
float16: they are exported through float16 anyway, so what ships is the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

OPTIMISERS = ("optimiser", "disc_opt")


def _moments_to_bf16(state: dict[str, Any]) -> dict[str, Any]:
    out = {"param_groups": state["param_groups"], "state": {}}
    for index, moments in state["state"].items():
        out["state"][index] = {
            key: value.to(torch.bfloat16) if key != "step" and value.is_floating_point() else value
            for key, value in moments.items()
        }
    return out


def compact(src: str | Path, dest: str | Path) -> tuple[int, int]:
    """Write ``src``'s checkpoint to ``dest`` with bfloat16 optimiser moments; returns (bytes before, after)."""
    checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    for key in OPTIMISERS:
        if key in checkpoint:
            checkpoint[key] = _moments_to_bf16(checkpoint[key])
    if checkpoint.get("best_state"):
        checkpoint["best_state"] = {
            key: value.half() if value.is_floating_point() else value for key, value in checkpoint["best_state"].items()
        }
    checkpoint["compact"] = True
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(dest)
    return Path(src).stat().st_size, dest.stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    before, after = compact(args.src, args.dest)
    print(f"{args.dest}: {after / 1e6:.1f} MB (from {before / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
