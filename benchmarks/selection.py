"""Compare weights files on the selection side of the split only: what decides which one ships.

    .venv/bin/python benchmarks/selection.py -s 2 FILE_OR_SET... [--val ../shared/data/val] [--crop 0]
        [--ensemble whole|per-stage]

Prints, per file, the degradation matrix's gain over bicubic per row, the mean, the worst row and
the selection score of :mod:`vidsr.train.validation` (the mean plus the worst row where negative),
measured on the selection photos of :mod:`vidsr.split` (whole photos unless ``--crop``).  The report
side is never read here: it is measured by ``benchmarks/quality.py`` once a set is chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vidsr.degrade import MATRIX  # noqa: E402
from vidsr.ensemble import SelfEnsembled  # noqa: E402
from vidsr.evaluate import list_images  # noqa: E402
from vidsr.models import build_model  # noqa: E402
from vidsr.split import on_side  # noqa: E402
from vidsr.train.validation import make_valset, validate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="weights files, or shipped sets as model:set (espcn:robust)")
    parser.add_argument("-s", "--scale", type=int, required=True)
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--crop", type=int, default=0, help="centre crops of this side (0: whole photos)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--ensemble",
        choices=("whole", "per-stage"),
        default=None,
        help="measure under the eight-turn self-ensemble: of the whole network (as vidsr's --ensemble), "
        "or pass by pass (the x4 cascade)",
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    paths = on_side(list_images(args.val), "selection")
    valset = make_valset(paths, args.scale, args.crop, "robust-v2")
    rows = list(MATRIX)
    print(
        f"selection side: {len(paths)} photos ({', '.join(p.name for p in paths)}), crop {args.crop or 'none'}"
        + (f", self-ensemble: {args.ensemble}" if args.ensemble else "")
    )
    print(f"{'weights':44} " + " ".join(f"{r[:9]:>9}" for r in rows) + f" {'mean':>7} {'worst':>7} {'score':>7}")
    out = {}
    for item in args.weights:
        if Path(item).is_file():
            loaded = build_model(_model_of(item), args.scale, weights=item)
        else:  # model:set, a shipped set
            model, _, weight_set = item.partition(":")
            loaded = build_model(model, args.scale, weights=weight_set)
        module = loaded.module
        if args.ensemble:
            module = SelfEnsembled(module, per_stage=args.ensemble == "per-stage")
        val = validate(module, loaded.spec.colour, valset, args.scale, "cpu", "robust-v2", gan=False, step=0)
        gains = [val.row_gains[r] for r in rows]
        mean, worst = sum(gains) / len(gains), min(gains)
        print(
            f"{item[-44:]:44} "
            + " ".join(f"{g:>+9.3f}" for g in gains)
            + f" {mean:>+7.3f} {worst:>+7.3f} {val.score:>+7.3f}"
        )
        out[item] = {"gains": val.row_gains, "mean": mean, "worst": worst, "score": val.score, "psnr": val.psnr}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


def _model_of(path: str) -> str:
    from vidsr.models.weights import read_metadata

    return read_metadata(path)["model"]


if __name__ == "__main__":
    main()
