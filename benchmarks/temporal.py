"""Flicker of every shipped weights set on the shared clips, beside bicubic: ``temporal.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/temporal.py [--frames 30] [--scales 2,4] [--weights FILE...]

Each clip's first ``--frames`` frames are decoded to RGB, downscaled by the protocol (Pillow's
antialiased bicubic), upscaled frame by frame by every model, and scored on Y against the original
frames by :mod:`vidsr.temporal` (temporal-difference error and static flicker, lower is steadier).
Every clip is labelled with its side of the split (:mod:`vidsr.split`): ``vtest.avi`` reports,
``box.mp4`` and ``tree.avi`` may be used to pick.  ``benchmarks/quality.py`` puts the table in
QUALITY.md.  ``--weights`` adds candidate files (measured, not shipped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidsr.evaluate import bicubic_upscaler, module_upscaler, protocol_lr  # noqa: E402
from vidsr.metrics import luma_255, mod_crop  # noqa: E402
from vidsr.models import build_model  # noqa: E402
from vidsr.models.mean import DOCUMENTED  # noqa: E402
from vidsr.models.weights import SHIPPED_DIR, read_metadata  # noqa: E402
from vidsr.split import side_of  # noqa: E402
from vidsr.temporal import temporal_score  # noqa: E402

CLIPS = ("vtest.avi", "box.mp4", "tree.avi")


def read_frames(path: Path, count: int) -> list[torch.Tensor]:
    """The first ``count`` decoded frames of ``path`` as (3, H, W) RGB floats in [0, 1]."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24").copy()).permute(2, 0, 1).float() / 255)
            if len(frames) == count:
                break
    return frames


def _candidates(scale: int, extra: list[Path], models: str = "") -> list[tuple[str, str, Path | str]]:
    """(row name, model, weights): the shipped files, the documented means of sets, then ``extra``."""
    wanted = models.split(",") if models else None
    files: list[tuple[str, str, Path | str]] = []
    for p in sorted(SHIPPED_DIR.glob(f"*_x{scale}.*.safetensors")):
        model = p.name.split("_")[0]
        if wanted is None or model in wanted:
            files.append((f"{model} {p.stem.split('.')[1]}", model, p))
    for (model, at), sets in DOCUMENTED.items():
        if at == scale and (wanted is None or model in wanted):
            files.append((f"{model} {sets}", model, sets))
    for path in extra:
        meta = read_metadata(path)
        if meta["scale"] == scale:
            files.append((f"{meta['model']} {path.stem} (candidate)", meta["model"], path))
    return files


def measure_clip(path: Path, frames: int, scale: int, extra: list[Path], models: str = "") -> list[dict]:
    hr_frames = [mod_crop(f, scale) for f in read_frames(path, frames)]
    originals = [luma_255(f).numpy() for f in hr_frames]
    lrs = [protocol_lr(f, scale) for f in hr_frames]
    rows = []
    upscalers = [("bicubic", None, bicubic_upscaler(scale))]
    for name, model, weights in _candidates(scale, extra, models):
        loaded = build_model(model, scale, weights=weights)
        upscalers.append((name, weights, module_upscaler(loaded.module, loaded.spec.colour)))
    for name, weights, upscale in upscalers:
        started = time.perf_counter()
        outputs = [upscale(lr).numpy() for lr in lrs]
        score = temporal_score(outputs, originals, shave=scale)
        psnr = float(np.mean([_psnr(o, h, scale) for o, h in zip(outputs, originals, strict=True)]))
        rows.append(
            {
                "clip": path.name,
                "side": side_of(path.name),
                "scale": scale,
                "name": name,
                "weights": weights.name if isinstance(weights, Path) else weights,
                "frames": len(lrs),
                "psnr": round(psnr, 3),
                **score.to_dict(),
            }
        )
        print(f"{path.name} x{scale} {name}: {rows[-1]} ({time.perf_counter() - started:.0f}s)", flush=True)
    return rows


def _psnr(out: np.ndarray, hr: np.ndarray, shave: int) -> float:
    diff = (out - hr)[shave:-shave, shave:-shave]
    return float(10 * np.log10(255.0**2 / np.mean(diff * diff)))


def updated_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with each row measured again (same clip, scale and name) replaced in place by its ``new``
    figures; new rows are added after the last old row of their clip and scale, a new scale in its place
    among its clip's scales, a new clip last."""

    def key(row: dict) -> tuple:
        return row["clip"], row["scale"], row["name"]

    fresh = {key(r): r for r in new}
    rows = [fresh.pop(key(r), r) for r in old] + list(fresh.values())
    clip_order = {clip: i for i, clip in enumerate(dict.fromkeys(r["clip"] for r in rows))}
    return sorted(rows, key=lambda r: (clip_order[r["clip"]], r["scale"]))  # stable: same group keeps its order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "data" / "video")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--weights", type=Path, nargs="*", default=[], help="candidate weights files to add")
    parser.add_argument(
        "--side", choices=("selection", "report", "all"), default="all", help="only the clips on this side of the split"
    )
    parser.add_argument("--models", default="", help="comma list: only these shipped models (and --weights)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "temporal.json")
    parser.add_argument(
        "--update", action="store_true", help="keep --out's rows for what is not measured now (after --models)"
    )
    args = parser.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    rows = []
    for clip in (c for c in CLIPS if args.side in ("all", side_of(c))):
        for scale in (int(s) for s in args.scales.split(",")):
            rows += measure_clip(args.clips / clip, args.frames, scale, args.weights, args.models)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        "?",
    )
    command = f"OMP_NUM_THREADS={threads} .venv/bin/python benchmarks/temporal.py"
    command += f" --frames {args.frames} --scales {args.scales}"
    command += f" --models {args.models}" if args.models else ""
    payload = {
        "machine": f"CPU ({cpu}, {os.cpu_count()} cores, torch {torch.__version__})",
        "command": command,
        "rows": rows,
    }
    if args.update and args.out.is_file():  # the file stays what its first command made, some rows newer
        old = json.loads(args.out.read_text())
        payload |= {
            "machine": old["machine"],
            "command": old["command"],
            "updated_by": [
                *old.get("updated_by", []),
                {"command": f"{command} --update", "machine": payload["machine"]},
            ],
            "rows": updated_rows(old["rows"], rows),
        }
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
