"""Pick the SRGAN checkpoint to ship, on the selection side only: naturalness, fidelity and flicker.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pick_srgan.py runs/srgan_x4.step*.safetensors \
        [--reference srresnet:paper] [--json picks.json] [--export runs/srgan_x4_pick.safetensors]

The rule, fixed before run 2's figures were seen: among the candidates whose protocol gain over
bicubic on the selection photos is at least ``SRGAN_MIN_GAIN`` (0.7 dB; the bar is 0.5 on photos
nobody picked on) and whose temporal-difference error on every selection clip (``box.mp4``,
``tree.avi``; :mod:`vidsr.temporal`) is at most :data:`FLICKER_MARGIN` above that of the SRResNet it
was fine-tuned from, the lowest NIQE on the selection photos ships.  NIQE alone would pick the
checkpoint with the most invented texture, which is also the one that shimmers most on video.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.temporal import read_frames  # noqa: E402
from vidsr.evaluate import evaluate_images, list_images, load_rgb, module_upscaler, protocol_lr  # noqa: E402
from vidsr.metrics import luma_255, mod_crop  # noqa: E402
from vidsr.models import build_model  # noqa: E402
from vidsr.models.weights import read_metadata  # noqa: E402
from vidsr.niqe import niqe  # noqa: E402
from vidsr.split import on_side, side_of  # noqa: E402
from vidsr.temporal import temporal_score  # noqa: E402
from vidsr.train.validation import SRGAN_MIN_GAIN  # noqa: E402

FLICKER_MARGIN = 0.05  # at most 5 % more temporal-difference error than the SRResNet it came from
CLIPS = ("box.mp4", "tree.avi")
SCALE = 4


def _load(item: str):
    if Path(item).is_file():
        return build_model(read_metadata(item)["model"], SCALE, weights=item)
    model, _, weight_set = item.partition(":")
    return build_model(model, SCALE, weights=weight_set)


def measure(item: str, photos, clips) -> dict:
    loaded = _load(item)
    upscale = module_upscaler(loaded.module, loaded.spec.colour)
    protocol = evaluate_images(photos, SCALE, upscale, model=loaded.spec.name)
    natural = float(np.mean([niqe(upscale(protocol_lr(hr, SCALE)).numpy()) for _, hr in photos]))
    flicker = {}
    for name, (lrs, originals) in clips.items():
        outputs = [upscale(lr).numpy() for lr in lrs]
        flicker[name] = temporal_score(outputs, originals, shave=SCALE).tdiff_error
    return {"gain": protocol.psnr - protocol.bicubic_psnr, "niqe": natural, "tdiff": flicker}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+")
    parser.add_argument("--reference", default="srresnet:paper", help="the SRResNet the candidates came from")
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "data" / "video")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--export", type=Path, default=None, help="write the pick here with its run's full metadata (a step file)"
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    assert all(side_of(c) == "selection" for c in CLIPS)  # the rule may only look at the selection side

    photos = [(p.name, mod_crop(load_rgb(p), SCALE)) for p in on_side(list_images(args.val), "selection")]
    clips = {}
    for name in CLIPS:
        frames = [mod_crop(f, SCALE) for f in read_frames(args.clips / name, args.frames)]
        clips[name] = ([protocol_lr(f, SCALE) for f in frames], [luma_255(f).numpy() for f in frames])
    reference = measure(args.reference, photos, clips)
    print(f"reference {args.reference}: {reference}", flush=True)
    results = {}
    for item in args.candidates:
        r = measure(item, photos, clips)
        r["flicker_ok"] = all(r["tdiff"][c] <= (1 + FLICKER_MARGIN) * reference["tdiff"][c] for c in CLIPS)
        r["eligible"] = r["gain"] >= SRGAN_MIN_GAIN and r["flicker_ok"]
        results[item] = r
        ratios = " ".join(f"{c} {r['tdiff'][c] / reference['tdiff'][c]:.3f}x" for c in CLIPS)
        print(
            f"{item}: gain {r['gain']:+.3f} dB, NIQE {r['niqe']:.3f}, tdiff {ratios}, eligible {r['eligible']}",
            flush=True,
        )
    eligible = {k: v for k, v in results.items() if v["eligible"]}
    pick = min(eligible, key=lambda k: eligible[k]["niqe"]) if eligible else None
    print(f"pick: {pick}")
    if args.json:
        args.json.write_text(json.dumps({"reference": reference, "candidates": results, "pick": pick}, indent=1) + "\n")
    if args.export and pick:
        export_step(Path(pick), args.export)
        print(f"wrote {args.export}")


def export_step(step_file: Path, dest: Path) -> None:
    """Export ``RUN.stepN.safetensors`` as ``vidsr train`` exports its pick: fp16, with the metadata of its run
    (``RUN.pt``'s options, steps and time) measured on the selection photos, ``selected_step`` N."""
    from dataclasses import fields

    from safetensors.torch import load_file

    from vidsr.train.loop import TrainConfig, export_weights

    run, _, step = step_file.name.removesuffix(".safetensors").rpartition(".step")
    if not run or not step.isdigit():  # a run's final export already carries its metadata
        shutil.copyfile(step_file, dest)
        return
    checkpoint = torch.load(step_file.with_name(f"{run}.pt"), map_location="cpu", weights_only=True)
    options = {f.name: checkpoint["config"][f.name] for f in fields(TrainConfig) if f.name in checkpoint["config"]}
    options["extra_photos"] = tuple(options.get("extra_photos", ()))
    config = TrainConfig(**options)
    export_weights(config, load_file(str(step_file)), dest, checkpoint["seconds"], checkpoint["step"], int(step))


if __name__ == "__main__":
    main()
