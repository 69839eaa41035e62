"""Quality of every shipped weight vs bicubic on the validation set, by DESIGN.md's protocol.

    .venv/bin/python benchmarks/quality.py [--val ../shared/data/val] [--out benchmarks]

Writes ``QUALITY.md`` (a model x scale table: PSNR-Y / SSIM-Y beside bicubic)
and ``quality.json`` (the same, per image too).  CPU only: quality does not
depend on the machine, and the project's reference runs have no GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidsr.evaluate import evaluate_folder  # noqa: E402
from vidsr.models import get_spec  # noqa: E402
from vidsr.models.weights import SHIPPED_DIR, read_metadata  # noqa: E402

TARGETS = {("espcn", 2): 33.0, ("espcn", 4): 28.6, ("srresnet", 2): 34.2, ("srresnet", 4): 29.6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()

    rows = []
    for path in sorted(SHIPPED_DIR.glob("*.safetensors")):
        meta = read_metadata(path)
        model, scale = meta["model"], int(meta["scale"])
        started = time.perf_counter()
        result = evaluate_folder(args.val, model=model, scale=scale)
        print(f"{model} x{scale}: {result.psnr:.2f} dB / {result.ssim:.4f} (bicubic {result.bicubic_psnr:.2f} dB)")
        rows.append(
            {
                **result.to_dict(),
                "weights": path.name,
                "recipe": meta.get("recipe"),
                "target_psnr": TARGETS.get((model, scale)),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    # Bicubic rows for the scales no model covers, so the table always shows the yardstick.
    covered = {r["scale"] for r in rows}
    for scale in sorted({2, 3, 4} - covered):
        rows.append({**evaluate_folder(args.val, model="bicubic", scale=scale).to_dict()})

    machine = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__})"
    command = ".venv/bin/python benchmarks/quality.py"
    payload = {"machine": machine, "command": command, "val_set": "shared/data/val", "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / "QUALITY.md").write_text(render(payload))
    (args.out / "QUALITY_README_SNIPPET.md").write_text(readme_snippet(payload))
    print(f"wrote QUALITY.md, QUALITY_README_SNIPPET.md and quality.json in {args.out}")


def render(payload: dict) -> str:
    lines = [
        "# Quality on the validation set",
        "",
        f"PSNR-Y (dB) / SSIM-Y on `{payload['val_set']}` (14 photos), by the protocol in DESIGN.md: HR cropped",
        "to a multiple of the scale, LR by Pillow's antialiased bicubic (8-bit), BT.601 studio-range Y,",
        "`scale` pixels shaved from each border. Bicubic is Pillow's. Higher is better.",
        "",
        f"Machine: {payload['machine']}. Command: `{payload['command']}`.",
        "",
        "| model | scale | PSNR-Y | SSIM-Y | bicubic PSNR-Y | bicubic SSIM-Y | gain (dB) | target | trained |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(payload["rows"], key=lambda r: (r["model"] == "bicubic", r["model"], r["scale"])):
        gain = r["psnr"] - r["bicubic_psnr"]
        target = r.get("target_psnr")
        target_s = "—" if target is None else f"{target:.1f} ({'met' if r['psnr'] >= target else 'not met'})"
        recipe = r.get("recipe") or {}
        trained = (
            f"{recipe['steps']} steps, {recipe['seconds'] / 60:.0f} min wall, {recipe['device']}" if recipe else "—"
        )
        lines.append(
            f"| {r['model']} | x{r['scale']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['bicubic_psnr']:.2f} | "
            f"{r['bicubic_ssim']:.4f} | {gain:+.2f} | {target_s} | {trained} |"
        )
    shipped = {(r["model"], r["scale"]) for r in payload["rows"]}
    missing = [f"{m} x{s}" for m in ("espcn", "srresnet", "srgan") for s in get_spec(m).scales if (m, s) not in shipped]
    lines += [
        "",
        f"Not shipped: {', '.join(missing)}. srgan needs ImageNet VGG19 features for its content loss: "
        "`vidsr train --model srgan --init SRRESNET_WEIGHTS --vgg-weights VGG19_STATE_DICT`.",
        "",
    ]
    return "\n".join(lines)


def readme_snippet(payload: dict) -> str:
    """A short section for the README: the shipped models' figures and how they were made."""
    models = sorted((r for r in payload["rows"] if r["model"] != "bicubic"), key=lambda r: (r["model"], r["scale"]))
    lines = [
        "## Quality",
        "",
        "PSNR-Y / SSIM-Y on the 14 validation photos (`shared/data/val`), by the protocol the SR literature",
        "uses (antialiased bicubic LR, BT.601 Y, `scale` pixels shaved), beside Pillow's bicubic:",
        "",
        "| model | scale | PSNR-Y (dB) | SSIM-Y | bicubic | gain |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in models:
        lines.append(
            f"| {r['model']} | x{r['scale']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['bicubic_psnr']:.2f} / {r['bicubic_ssim']:.4f} | {r['psnr'] - r['bicubic_psnr']:+.2f} dB |"
        )
    lines += [
        "",
        "The shipped weights are vidsr's own, trained with `vidsr train` on the 20 photos of `shared/data/train`",
        "only, on a 2-core CPU (no GPU): short runs, so they sit below the papers' figures, which come from",
        "days of GPU training on ImageNet-scale data. Each `.safetensors` file carries its recipe and these",
        "figures (`vidsr models` shows them). Reproduce the table with `.venv/bin/python benchmarks/quality.py`",
        "and evaluate any weights with `vidsr eval IMAGES --model M --scale S [--weights FILE]`.",
        "",
        "![bicubic | espcn x4 | original](benchmarks/side_by_side.png)",
        "",
    ]
    if not any(r["model"] == "srresnet" for r in models):
        lines += [
            "`srresnet` weights are not shipped yet: on the 2-core CPU it runs at about 2.5 s per step of eight",
            "64-px patches, and a 400-step run was still below bicubic. Train it on a GPU (mixed precision):",
            "`vidsr train --model srresnet --scale 4 --data DIR --val DIR --device cuda`.",
            "",
        ]
    lines += [
        "`srgan` weights are not shipped: its content loss needs ImageNet VGG19 features, which vidsr cannot",
        "download. With a torchvision VGG19 state dict saved to a file, fine-tune a trained srresnet:",
        "`vidsr train --model srgan --scale 4 --init srresnet_x4.safetensors --vgg-weights vgg19.pth ...`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
