"""Quality of every shipped weights set on the validation photos: the protocol and the degradation matrix.

    .venv/bin/python benchmarks/quality.py [--val ../shared/data/val] [--out benchmarks] [--no-peers]

Writes ``QUALITY.md`` and ``quality.json``: for each shipped weights file (every set
of every model and scale) PSNR-Y / SSIM-Y by the literature's protocol beside
bicubic, and the degradation matrix of :mod:`vidsr.degrade` (LR made seven ways)
with the gain over bicubic per row, the mean and the worst row.  OpenCV's
pretrained dnn_superres networks from ``../shared/peers`` get matrix rows beside
vidsr's when opencv-contrib is installed (they are read from there, never copied).
CPU only: quality does not depend on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidsr.degrade import MATRIX  # noqa: E402
from vidsr.evaluate import (  # noqa: E402
    evaluate_images,
    evaluate_matrix,
    list_images,
    load_rgb,
    module_upscaler,
)
from vidsr.metrics import luma_255  # noqa: E402
from vidsr.models import build_model, get_spec  # noqa: E402
from vidsr.models.weights import SHIPPED_DIR, read_metadata, shipped_weights_path, trained_on  # noqa: E402
from vidsr.niqe import mean_niqe, niqe  # noqa: E402

# The protocol targets (val PSNR-Y, dB) and the bar for the default weights on the matrix.
TARGETS = {("espcn", 2): 33.0, ("espcn", 4): 28.4, ("srresnet", 2): 33.5, ("srresnet", 4): 28.9}
MATRIX_BAR = {"worst_gain": -0.1, "mean_gain": 0.5}
PEERS = {"espcn": (2, 3, 4), "fsrcnn": (2, 3, 4), "fsrcnn-small": (2, 3, 4), "lapsrn": (2, 4)}


def _target(model: str, scale: int, degradations: str) -> float | None:
    """The protocol target applies to weights trained on the protocol (robust sets answer to the matrix)."""
    return TARGETS.get((model, scale)) if degradations == "protocol" else None


def peer_upscaler(peers: Path, name: str, scale: int):
    """OpenCV dnn_superres's ``name`` x``scale`` as a matrix upscaler, or a string saying why it cannot run."""
    try:
        import cv2
    except ImportError:
        return "opencv-contrib-python-headless is not installed"
    if not hasattr(cv2, "dnn_superres"):
        return "this OpenCV has no dnn_superres (install opencv-contrib-python-headless)"
    file = peers / f"{name.upper().replace('FSRCNN-SMALL', 'FSRCNN-small').replace('LAPSRN', 'LapSRN')}_x{scale}.pb"
    if not file.is_file():
        return f"{file} is missing"
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(file))
    sr.setModel(name.split("-")[0], scale)

    def run(lr_rgb: torch.Tensor) -> torch.Tensor:
        bgr = lr_rgb.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()[..., ::-1]
        out = sr.upsample(np.ascontiguousarray(bgr))[..., ::-1]
        return luma_255(torch.from_numpy(out.copy()).permute(2, 0, 1).double() / 255.0)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--peers", type=Path, default=ROOT.parent / "shared" / "peers")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep the rows of the existing quality.json for OpenCV's networks and for weights files whose "
        "sha256 is unchanged; measure only the rest.",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()

    images = [(p.name, load_rgb(p)) for p in list_images(args.val)]
    rows = list(MATRIX.values())
    entries, skipped = [], []
    old = args.out / "quality.json"
    kept = json.loads(old.read_text())["entries"] if args.reuse and old.is_file() else []
    for path in sorted(SHIPPED_DIR.glob("*.safetensors")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        meta = read_metadata(path)
        model, scale, weight_set = meta["model"], int(meta["scale"]), path.stem.split(".")[1]
        loaded = build_model(model, scale, weights=weight_set)
        upscale = module_upscaler(loaded.module, loaded.spec.colour)
        same = [e for e in kept if e.get("weights") == path.name and e.get("sha256") == digest]
        if same:
            if "niqe" not in same[0]:  # kept from before NIQE was measured
                same[0]["niqe"] = round(mean_niqe(images, scale, upscale), 3)
            same[0]["default"] = shipped_weights_path(model, scale) == path  # a set shipped since may be it
            same[0]["target_psnr"] = _target(model, scale, same[0]["degradations"])
            same[0]["trained_on"] = trained_on(meta)
            entries += same
            continue
        started = time.perf_counter()
        protocol = evaluate_images(images, scale, upscale, model=model)
        matrix = evaluate_matrix(images, scale, upscale, rows, model=model)
        entries.append(
            {
                "name": f"{model} {weight_set}",
                "model": model,
                "scale": scale,
                "weights": path.name,
                "sha256": digest,
                "set": weight_set,
                "default": shipped_weights_path(model, scale) == path,
                "recipe": meta.get("recipe"),
                "history": meta.get("history"),
                "degradations": (meta.get("degradations") or {"name": "protocol"})["name"],
                "trained_on": trained_on(meta),
                "protocol": protocol.to_dict(),
                "matrix": matrix.to_dict(),
                "niqe": round(mean_niqe(images, scale, upscale), 3),
                "target_psnr": _target(model, scale, (meta.get("degradations") or {"name": "protocol"})["name"]),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(f"{path.name}: protocol {protocol.psnr:.2f} dB, matrix mean gain {matrix.mean_gain:+.2f}", flush=True)
    if any(e["model"].startswith("opencv-") for e in kept):
        entries += [e for e in kept if e["model"].startswith("opencv-")]
    elif not args.no_peers:
        for name, scales in PEERS.items():
            for scale in scales:
                upscale = peer_upscaler(args.peers, name, scale)
                if isinstance(upscale, str):
                    skipped.append(f"OpenCV {name} x{scale}: {upscale}")
                    continue
                matrix = evaluate_matrix(images, scale, upscale, rows, model=f"opencv {name}")
                entries.append(
                    {"name": f"OpenCV {name}", "model": f"opencv-{name}", "scale": scale, "matrix": matrix.to_dict()}
                )
                print(f"OpenCV {name} x{scale}: matrix mean gain {matrix.mean_gain:+.2f}", flush=True)

    # NIQE of the plain scaler and of the photos themselves, the two ends of the naturalness scale.
    niqe_reference = {
        "original": round(float(np.mean([niqe(luma_255(hr).numpy()) for _, hr in images])), 3),
        "bicubic": {str(s): round(mean_niqe(images, s, None), 3) for s in sorted({e["scale"] for e in entries})},
    }
    cpu = (
        next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in ln
            ),
            platform.machine(),
        )
        if Path("/proc/cpuinfo").is_file()
        else platform.machine()
    )
    machine = f"CPU ({cpu}, {os.cpu_count()} cores, no GPU used, torch {torch.__version__})"
    payload = {
        "machine": machine,
        "command": ".venv/bin/python benchmarks/quality.py",
        "val_set": "shared/data/val",
        "images": len(images),
        "rows": {r.name: r.description for r in rows},
        "entries": entries,
        "niqe_reference": niqe_reference,
        "skipped": skipped,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / "QUALITY.md").write_text(render(payload))
    print(f"wrote QUALITY.md and quality.json in {args.out}")


def _trained(entry: dict) -> str:
    history = entry.get("history") or [entry.get("recipe") or {}]
    steps = sum(h.get("steps", 0) for h in history)
    minutes = sum(h.get("seconds", 0) for h in history) / 60
    return f"{steps} steps, {minutes:.0f} min, {history[-1].get('device', '?')}" if steps else "—"


def _render_niqe(payload: dict, ours: list[dict]) -> list[str]:
    ref = payload.get("niqe_reference")
    if not ref:
        return []
    lines = [
        "",
        "## Naturalness (NIQE, no reference; lower is more natural)",
        "",
        "PSNR rewards the blur that averages plausible textures; SRGAN is trained to trade PSNR for texture.",
        "NIQE (`vidsr/niqe.py`) measures how far the statistics of the output's local contrast lie from those",
        "of pristine photographs, without looking at the original. Its pristine model is fit on vidsr's",
        "training photographs (`python -m vidsr.niqe --fit ../shared/data/train`), so the figures compare",
        "with each other, not with published NIQE. Mean over the protocol's outputs on the validation photos;",
        f"the photos themselves score {ref['original']:.2f}.",
        "",
        "| scale | bicubic | " + " | ".join(["weights", "NIQE", "PSNR-Y"]) + " |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in sorted(ours, key=lambda e: (e["scale"], e["model"], not e["default"])):
        if "niqe" in e:
            bicubic = ref["bicubic"].get(str(e["scale"]))
            lines.append(
                f"| x{e['scale']} | {bicubic:.2f} | {e['name']} | {e['niqe']:.2f} | {e['protocol']['psnr']:.2f} |"
            )
    return lines


def render(payload: dict) -> str:
    entries = payload["entries"]
    ours = [e for e in entries if "protocol" in e]
    names = list(payload["rows"])
    lines = [
        "# Quality on the validation set",
        "",
        f"Machine: {payload['machine']}. Command: `{payload['command']}` (regenerates this file and",
        "`quality.json`). Every figure is PSNR-Y (dB) or SSIM-Y on BT.601 studio-range Y, `scale` pixels",
        f"shaved, mean over the {payload['images']} photos of `{payload['val_set']}` (never trained on).",
        "",
        "## The literature's protocol",
        "",
        "HR cropped to a multiple of the scale, LR by Pillow's antialiased bicubic (8-bit); bicubic is Pillow's.",
        "",
        "| weights | default | scale | trained on | PSNR-Y | SSIM-Y | bicubic | gain | target | trained |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in sorted(ours, key=lambda e: (e["model"], e["scale"], not e["default"])):
        p = e["protocol"]
        target = e.get("target_psnr")
        target_s = "—" if target is None else f"{target:.1f} ({'met' if p['psnr'] >= target else 'not met'})"
        lines.append(
            f"| `{e['weights']}` | {'yes' if e['default'] else ''} | x{e['scale']} | {e['trained_on']} | "
            f"{p['psnr']:.2f} | {p['ssim']:.4f} | {p['bicubic_psnr']:.2f} / {p['bicubic_ssim']:.4f} | "
            f"{p['psnr'] - p['bicubic_psnr']:+.2f} | {target_s} | {_trained(e)} |"
        )
    lines += [
        "",
        "## The degradation matrix",
        "",
        "The same photos, LR made each of these ways (`vidsr eval DIR --degradations all`):",
        "",
    ]
    lines += [f"* `{name}`: {desc}" for name, desc in payload["rows"].items()]
    lines += [
        "",
        "Each cell is the gain in PSNR-Y over bicubic on that row (dB); the bicubic line gives bicubic's own",
        f"PSNR-Y. The bar for the default weights: every row >= {MATRIX_BAR['worst_gain']:+.1f} dB and the mean",
        f">= {MATRIX_BAR['mean_gain']:+.1f} dB. OpenCV's networks (from `../shared/peers`) were trained on LR made",
        "by `cv2.resize` INTER_CUBIC, the `bicubic` row.",
    ]
    for scale in sorted({e["scale"] for e in entries}):
        here = [e for e in entries if e["scale"] == scale]
        lines += [
            "",
            f"### x{scale}",
            "",
            "| | " + " | ".join(names) + " | mean | bar |",
            "|---" * (len(names) + 3) + "|",
        ]
        base = here[0]["matrix"]["rows"]
        lines.append("| bicubic (PSNR-Y) | " + " | ".join(f"{r['bicubic_psnr']:.2f}" for r in base) + " | | |")
        lanczos = [r["lanczos_psnr"] - r["bicubic_psnr"] for r in base]
        lines.append("| lanczos | " + " | ".join(f"{g:+.2f}" for g in lanczos) + f" | {np.mean(lanczos):+.2f} | |")
        for e in sorted(here, key=lambda e: ("protocol" not in e, not e.get("default"), e["name"])):
            m = e["matrix"]
            meets = m["worst_gain"] >= MATRIX_BAR["worst_gain"] and m["mean_gain"] >= MATRIX_BAR["mean_gain"]
            label = e["name"] + (" (default)" if e.get("default") else "")
            lines.append(
                f"| {label} | "
                + " | ".join(f"{r['gain']:+.2f}" for r in m["rows"])
                + f" | {m['mean_gain']:+.2f} | {'met' if meets else 'not met'} |"
            )
    lines += _render_niqe(payload, ours)
    missing = [
        f"{m} x{s}"
        for m in ("espcn", "srresnet", "srgan")
        for s in get_spec(m).scales
        if not any(e["model"] == m and e["scale"] == s for e in ours)
    ]
    lines += ["", f"Not shipped yet: {', '.join(missing) or 'nothing'}."]
    if payload["skipped"]:
        lines += ["", "Peers skipped: " + "; ".join(payload["skipped"]) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
