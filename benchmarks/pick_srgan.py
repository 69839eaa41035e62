"""Pick the SRGAN weights to ship, on the selection side only: naturalness, fidelity and flicker.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pick_srgan.py runs/srgan_x4.step*.safetensors \
        [--scale 4] [--blend 0.5,0.6,0.7,0.8,0.9] [--reference srresnet:paper] [--json picks.json] \
        [--export runs/srgan_x4_pick.safetensors]

Candidates are a run's step files and, with ``--blend``, each of them interpolated with the SRResNet it
was fine-tuned from (:func:`vidsr.models.weights.interpolate_states`, ESRGAN's network interpolation:
``FILE@0.7`` is 0.7 of the GAN and 0.3 of the SRResNet).

The rule (v3).  A candidate is eligible when, on the selection photos and clips, its protocol gain over
bicubic is at least ``SRGAN_MIN_GAIN`` (0.7 dB), its temporal-difference error on every selection clip
(``box.mp4``, ``tree.avi``; :mod:`vidsr.temporal`) is at most :data:`FLICKER_MARGIN` above the reference
SRResNet's, and its NIQE is at least :data:`NIQE_MARGIN` below the lower of the reference's and bicubic's;
the eligible candidate with the highest protocol gain ships.

Why v2.  Rule v1 (same eligibility without the NIQE margin, then the lowest NIQE) shipped run 3's step
1000: NIQE 4.06 on the report photos, far inside issue 24's bar (0.3 below SRResNet's 6.33), but protocol
+0.46 dB, short of its 0.5.  The selection photos had given +1.54 dB: fidelity is what does not carry over
from one photo set to another (the SRResNet: +1.99 there, +0.87 on the report side), while NIQE does (the
step: 4.34 and 4.06; the SRResNet: 6.28 and 6.33).  So v2 spends the NIQE headroom on fidelity: NIQE only
has to clear a margin of 1.0 (three times the bar's 0.3, for the photo-set difference), and the gain,
which is what transfers worst, is maximised.  v2 was written, and its margin chosen, before any blend was
measured on either side; the report side it is then measured on is the one that showed v1 short, so read
its figures with that in mind (held-out photos nobody here has will judge it again).

Why v3.  Issue 24's bar asks NIQE below bicubic's too.  At x4 bicubic is the less natural of the two (selection
photos: 6.96 against the SRResNet's 6.28), so v3 picks there as v2 did; at x2 it is the more natural (5.86
against 6.08), and v2 would have let a GAN through that scores worse than bicubic.  Written for the x2 SRGAN,
before any of its candidates was measured.
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
from vidsr.evaluate import (  # noqa: E402
    bicubic_upscaler,
    evaluate_images,
    list_images,
    load_rgb,
    module_upscaler,
    protocol_lr,
)
from vidsr.metrics import luma_255, mod_crop  # noqa: E402
from vidsr.models import build_model  # noqa: E402
from vidsr.models.weights import interpolate_states, read_metadata, shipped_weights_path  # noqa: E402
from vidsr.niqe import niqe  # noqa: E402
from vidsr.split import on_side, side_of  # noqa: E402
from vidsr.temporal import temporal_score  # noqa: E402
from vidsr.train.validation import SRGAN_MIN_GAIN  # noqa: E402

FLICKER_MARGIN = 0.05  # at most 5 % more temporal-difference error than the SRResNet it came from
NIQE_MARGIN = 1.0  # NIQE this far below the lower of the SRResNet's and bicubic's (the bar: 0.3, on unpicked photos)
RULE = (  # what the --json report records; written from the constants above so the two cannot disagree
    f"v3: gain >= {SRGAN_MIN_GAIN} dB, flicker <= +{FLICKER_MARGIN:.0%}, "
    f"NIQE <= min(reference, bicubic) - {NIQE_MARGIN}; highest gain"
)
CLIPS = ("box.mp4", "tree.avi")


def weights_file(item: str, scale: int) -> Path:
    """A candidate's or reference's weights file: a path, or ``model:set`` for a shipped set."""
    if Path(item).is_file():
        return Path(item)
    model, _, weight_set = item.partition(":")
    path = shipped_weights_path(model, scale, weight_set or None)
    if path is None:
        raise SystemExit(f"Error: no weights {item!r}")
    return path


def split_blend(item: str, scale: int = 4) -> tuple[Path, float | None]:
    """``FILE@0.7`` -> (FILE, 0.7); a plain candidate -> (its file, None)."""
    name, at, alpha = item.rpartition("@")
    return (Path(name), float(alpha)) if at and not Path(item).is_file() else (weights_file(item, scale), None)


def _load(item: str, reference: Path, scale: int):
    path, alpha = split_blend(item, scale)
    loaded = build_model(read_metadata(path)["model"], scale, weights=str(path))
    if alpha is not None:
        from safetensors.torch import load_file

        loaded.module.load_state_dict(interpolate_states(load_file(str(path)), load_file(str(reference)), alpha))
    return loaded


def measure(item: str, reference: Path, photos, clips, scale: int) -> dict:
    loaded = _load(item, reference, scale)
    upscale = module_upscaler(loaded.module, loaded.spec.colour)
    protocol = evaluate_images(photos, scale, upscale, model=loaded.spec.name)
    flicker = {}
    for name, (lrs, originals) in clips.items():
        outputs = [upscale(lr).numpy() for lr in lrs]
        flicker[name] = temporal_score(outputs, originals, shave=scale).tdiff_error
    return {"gain": protocol.psnr - protocol.bicubic_psnr, "niqe": mean_niqe(upscale, photos, scale), "tdiff": flicker}


def mean_niqe(upscale, photos, scale: int) -> float:
    """NIQE of ``upscale``'s answers to the protocol's LR of ``photos``, averaged over the photos."""
    return float(np.mean([niqe(upscale(protocol_lr(hr, scale)).numpy()) for _, hr in photos]))


def judge(candidate: dict, reference: dict, bicubic_niqe: float = float("inf")) -> dict:
    """``candidate``'s figures with the rule's verdicts added: ``flicker_ok`` and ``eligible``."""
    flicker_ok = all(candidate["tdiff"][c] <= (1 + FLICKER_MARGIN) * reference["tdiff"][c] for c in CLIPS)
    natural = candidate["niqe"] <= min(reference["niqe"], bicubic_niqe) - NIQE_MARGIN
    eligible = candidate["gain"] >= SRGAN_MIN_GAIN and flicker_ok and natural
    return candidate | {"flicker_ok": flicker_ok, "eligible": eligible}


def pick(results: dict[str, dict]) -> str | None:
    """The eligible candidate with the highest protocol gain (see the module's rule), or None."""
    eligible = {k: v for k, v in results.items() if v["eligible"]}
    return max(eligible, key=lambda k: eligible[k]["gain"]) if eligible else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=4)
    parser.add_argument("--reference", default="srresnet:paper", help="the SRResNet the candidates came from")
    parser.add_argument("--blend", default="", help="also each candidate interpolated with the reference: 0.6,0.8")
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

    scale = args.scale
    photos = [(p.name, mod_crop(load_rgb(p), scale)) for p in on_side(list_images(args.val), "selection")]
    clips = {}
    for name in CLIPS:
        frames = [mod_crop(f, scale) for f in read_frames(args.clips / name, args.frames)]
        clips[name] = ([protocol_lr(f, scale) for f in frames], [luma_255(f).numpy() for f in frames])
    reference_file = weights_file(args.reference, scale)
    reference = measure(str(reference_file), reference_file, photos, clips, scale)
    bicubic_niqe = mean_niqe(bicubic_upscaler(scale), photos, scale)
    print(f"reference {args.reference}: {reference}; bicubic NIQE {bicubic_niqe:.3f}", flush=True)
    alphas = [float(a) for a in args.blend.split(",") if a]
    items = [*args.candidates, *(f"{c}@{a:g}" for c in args.candidates for a in alphas)]
    results = {}
    for item in items:
        r = results[item] = judge(measure(item, reference_file, photos, clips, scale), reference, bicubic_niqe)
        ratios = " ".join(f"{c} {r['tdiff'][c] / reference['tdiff'][c]:.3f}x" for c in CLIPS)
        print(
            f"{item}: gain {r['gain']:+.3f} dB, NIQE {r['niqe']:.3f}, tdiff {ratios}, eligible {r['eligible']}",
            flush=True,
        )
    chosen = pick(results)
    print(f"pick: {chosen}")
    if args.json:
        report = {"rule": RULE, "scale": scale, "reference": reference, "bicubic_niqe": bicubic_niqe}
        report |= {"candidates": results, "pick": chosen}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.export and chosen:
        export_step(chosen, reference_file, args.export, scale)
        print(f"wrote {args.export}")


def export_step(item: str, reference: Path, dest: Path, scale: int = 4) -> None:
    """Export ``RUN.stepN.safetensors`` (or ``RUN.stepN.safetensors@ALPHA``, interpolated with ``reference``) as
    ``vidsr train`` exports its pick: fp16, with the metadata of its run (``RUN.pt``'s options, steps and
    time) measured on the selection photos, ``selected_step`` N, and the interpolation in its recipe."""
    from safetensors.torch import load_file

    from vidsr.models.weights import rewrite_metadata
    from vidsr.train.loop import export_weights, run_of_checkpoint

    step_file, alpha = split_blend(item, scale)
    run, _, step = step_file.name.removesuffix(".safetensors").rpartition(".step")
    if not run or not step.isdigit():
        if alpha is not None:
            raise SystemExit(f"Error: {step_file} is not a run's step file; cannot export its interpolation")
        shutil.copyfile(step_file, dest)  # a run's final export already carries its metadata
        return
    config, checkpoint = run_of_checkpoint(step_file.with_name(f"{run}.pt"))
    state = load_file(str(step_file))
    if alpha is not None:
        state = interpolate_states(state, load_file(str(reference)), alpha)
    meta = export_weights(config, state, dest, checkpoint["seconds"], checkpoint["step"], int(step))
    if alpha is not None:  # the recipe is also the history's last run: one dict, both updated
        meta["recipe"]["interpolation"] = {"alpha": alpha, "with": reference.name, "method": "ESRGAN network"}
        rewrite_metadata(dest, meta)


if __name__ == "__main__":
    main()
