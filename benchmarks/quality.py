"""Quality of every shipped weights set, on the report photos (and, labelled, the selection photos).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality.py [--val ../shared/data/val] [--reuse] [--stamp]

Writes ``QUALITY.md`` and ``quality.json``.  The validation photos are split by :mod:`vidsr.split`
(a rule on file names fixed before any figure): checkpoints, recipes and thresholds are chosen on the
**selection** side, and the **report** side, which nothing is tuned on, gives the figures QUALITY.md
leads with.  For each shipped weights file and each side: PSNR-Y / SSIM-Y by the literature's
protocol beside bicubic, the degradation matrix of :mod:`vidsr.degrade` (gain over bicubic per row,
the mean over all seven rows and over issue 24's six, without H.264), NIQE and S3 sharpness (no
reference).  OpenCV's dnn_superres networks from ``../shared/peers`` get matrix rows when
opencv-contrib is installed.  ``benchmarks/temporal.json`` (``benchmarks/temporal.py``), when
present, adds the flicker table.  ``--stamp`` writes each file's report-side figures and the
photos they were measured on into its metadata (tensors untouched), where ``vidsr models`` reads them.
CPU only: quality does not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidsr.degrade import MATRIX  # noqa: E402
from vidsr.evaluate import (  # noqa: E402
    bicubic_upscaler,
    evaluate_images,
    evaluate_matrix,
    list_images,
    load_rgb,
    module_upscaler,
    protocol_lr,
)
from vidsr.metrics import luma_255, mod_crop  # noqa: E402
from vidsr.models import build_model, get_spec  # noqa: E402
from vidsr.models.mean import DOCUMENTED, JOIN  # noqa: E402
from vidsr.models.weights import (  # noqa: E402
    SHIPPED_DIR,
    read_metadata,
    rewrite_metadata,
    shipped_weights_path,
    tensor_digest,
    trained_on,
)
from vidsr.niqe import niqe  # noqa: E402
from vidsr.sharpness import s3_index  # noqa: E402
from vidsr.split import RULE_TEXT, SIDES, SplitRecord, describe, on_side  # noqa: E402

# The issue's protocol targets (PSNR-Y, dB) for the paper sets, and the bars of issue 24 on the report side.
TARGETS = {("espcn", 2): 33.0, ("espcn", 4): 28.4, ("srresnet", 2): 33.5, ("srresnet", 4): 28.9}
DEFAULT_WORST = -0.1  # the CLI default at each scale: no row below bicubic - 0.1 dB
# The default sets, and the ``large`` and ``cascade`` ones (the most capable), measured again with
# --ensemble (vidsr.ensemble) at the scales of issue 24's bars.
ENSEMBLED = {("espcn", 2), ("espcn", 4), ("srresnet", 2), ("srresnet", 4)}
ENSEMBLED_SETS = ("large", "cascade")
BEST_WORST, BEST_MEAN6 = 0.0, 0.8  # the best set at x2 and x4: no row below bicubic, six-row mean >= +0.8
SRGAN_NIQE_MARGIN, SRGAN_MIN_GAIN = 0.3, 0.5
SRGAN_FLICKER_MARGIN = 0.05  # benchmarks/pick_srgan.py's FLICKER_MARGIN, fixed on the selection clips
# Issue 24's six rows: the matrix without H.264 (its noise row is sigma 4 where ours is 5).
ISSUE_ROWS = ("bicubic-aa", "bicubic", "area", "blur", "jpeg", "noise")
PEERS = {"espcn": (2, 3, 4), "fsrcnn": (2, 3, 4), "fsrcnn-small": (2, 3, 4), "lapsrn": (2, 4)}


def _target(model: str, scale: int, degradations: str) -> float | None:
    """The protocol target applies to weights trained on the protocol (robust sets answer to the matrix)."""
    return TARGETS.get((model, scale)) if degradations == "protocol" else None


def _ensembled(entry: dict) -> bool:
    at_bar_scale = (entry["model"], entry["scale"]) in ENSEMBLED
    return at_bar_scale and (entry["default"] or entry["set"] in ENSEMBLED_SETS)


def mean6(matrix: dict) -> float:
    return float(np.mean([r["gain"] for r in matrix["rows"] if r["degradation"] in ISSUE_ROWS]))


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
    try:
        sr.readModel(str(file))
    except cv2.error as exc:
        return f"this OpenCV cannot read {file.name}: {str(exc).strip().splitlines()[-1]}"
    sr.setModel(name.split("-")[0], scale)

    def run(lr_rgb: torch.Tensor) -> torch.Tensor:
        bgr = lr_rgb.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()[..., ::-1]
        out = sr.upsample(np.ascontiguousarray(bgr))[..., ::-1]
        return luma_255(torch.from_numpy(out.copy()).permute(2, 0, 1).double() / 255.0)

    return run


def no_reference(images: list[tuple[str, torch.Tensor]], scale: int, upscale) -> dict[str, float]:
    """Mean NIQE and S3 of ``upscale``'s outputs on the protocol's LR of each photo (bicubic when None)."""
    upscale = upscale or bicubic_upscaler(scale)
    outputs = [upscale(protocol_lr(mod_crop(hr, scale), scale)).numpy() for _, hr in images]
    return {
        "niqe": round(float(np.mean([niqe(o) for o in outputs])), 3),
        "s3": round(float(np.mean([s3_index(o) for o in outputs])), 4),
    }


def measure(images: list[tuple[str, torch.Tensor]], scale: int, upscale, model: str) -> dict:
    """Everything QUALITY.md says about one upscaler on one side of the split."""
    protocol = evaluate_images(images, scale, upscale, model=model)
    matrix = evaluate_matrix(images, scale, upscale, list(MATRIX.values()), model=model)
    return {"protocol": protocol.to_dict(), "matrix": matrix.to_dict(), **no_reference(images, scale, upscale)}


def _side_images(val: Path) -> dict[str, list[tuple[str, torch.Tensor]]]:
    paths = list_images(val)
    return {side: [(p.name, load_rgb(p)) for p in on_side(paths, side)] for side in SIDES}


def _report_stamp(entry: dict, record: SplitRecord) -> dict:
    """What ``--stamp`` writes into a weights file: the report side's figures and where they come from."""
    report = entry["report"]
    rows = {
        r["degradation"]: {"psnr": round(r["psnr"], 3), "gain": round(r["gain"], 3)} for r in report["matrix"]["rows"]
    }
    return {
        "reported_on": record.to_dict(),
        "report": {
            "psnr": round(report["protocol"]["psnr"], 4),
            "ssim": round(report["protocol"]["ssim"], 5),
            "bicubic_psnr": round(report["protocol"]["bicubic_psnr"], 4),
            "bicubic_ssim": round(report["protocol"]["bicubic_ssim"], 5),
            "matrix": {
                "rows": rows,
                "mean_gain": round(report["matrix"]["mean_gain"], 3),
                "mean6_gain": round(mean6(report["matrix"]), 3),
                "worst_gain": round(report["matrix"]["worst_gain"], 3),
            },
            "niqe": report["niqe"],
            "s3": report["s3"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--peers", type=Path, default=ROOT.parent / "shared" / "peers")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep the entries of the existing quality.json for OpenCV's networks and for weights files whose "
        "tensors are unchanged (metadata may differ); measure only the rest.",
    )
    parser.add_argument("--stamp", action="store_true", help="Write the report-side figures into each file's metadata.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    sides = _side_images(args.val)
    folder = "/".join(args.val.resolve().parts[-3:])
    records = {side: SplitRecord(folder, side, tuple(n for n, _ in sides[side])) for side in SIDES}
    old = args.out / "quality.json"
    before = json.loads(old.read_text()) if args.reuse and old.is_file() else {}
    # entries from before the split have no sides: measured again; the others keep the machine they were
    # measured on (the file's, for entries from before each entry named its own)
    kept = [{"machine": before.get("machine"), **e} for e in before.get("entries", []) if "report" in e]
    entries, skipped = [], []
    for path in sorted(SHIPPED_DIR.glob("*.safetensors")):
        digest = tensor_digest(path)
        meta = read_metadata(path)
        model, scale, weight_set = meta["model"], int(meta["scale"]), path.stem.split(".")[1]
        degradations = (meta.get("degradations") or {"name": "protocol"})["name"]
        entry = {
            "name": f"{model} {weight_set}",
            "model": model,
            "scale": scale,
            "weights": path.name,
            "tensors_sha256": digest,
            "set": weight_set,
            "default": shipped_weights_path(model, scale) == path,
            "recipe": meta.get("recipe"),
            "history": meta.get("history"),
            "degradations": degradations,
            "trained_on": trained_on(meta),
            "selected_on": describe(meta.get("selected_on")),
            "target_psnr": _target(model, scale, degradations),
        }
        entries.append(_measured(entry, path, kept, sides))
        r = entries[-1]["report"]
        print(
            f"{path.name}: report protocol {r['protocol']['psnr']:.2f} dB, matrix mean {r['matrix']['mean_gain']:+.2f}"
        )
        if args.stamp:
            rewrite_metadata(path, {**meta, **_report_stamp(entries[-1], records["report"])})
    for base in [e for e in entries if _ensembled(e)]:
        entry = {k: v for k, v in base.items() if k not in (*SIDES, "seconds")}
        entry.update(name=f"{base['name']} + ensemble", default=False, ensemble=True)
        entries.append(_measured(entry, SHIPPED_DIR / base["weights"], kept, sides))
        report = entries[-1]["report"]["matrix"]
        print(f"{entry['name']} x{entry['scale']}: report matrix mean {report['mean_gain']:+.2f}", flush=True)
    for base in _means(entries):
        for ensemble in (False, True):
            entry = {**base, "name": base["name"] + (" + ensemble" if ensemble else ""), "ensemble": ensemble}
            entries.append(_measured(entry, base["weights"], kept, sides))
            report = entries[-1]["report"]["matrix"]
            print(f"{entry['name']} x{entry['scale']}: report matrix mean {report['mean_gain']:+.2f}", flush=True)
    if any(e["model"].startswith("opencv-") for e in kept):
        entries += [e for e in kept if e["model"].startswith("opencv-")]
    elif not args.no_peers:
        for name, scales in PEERS.items():
            for scale in scales:
                upscale = peer_upscaler(args.peers, name, scale)
                if isinstance(upscale, str):
                    skipped.append(f"OpenCV {name} x{scale}: {upscale}")
                    continue
                entry = {"name": f"OpenCV {name}", "model": f"opencv-{name}", "scale": scale}
                for side in SIDES:
                    rows = list(MATRIX.values())
                    entry[side] = {"matrix": evaluate_matrix(sides[side], scale, upscale, rows, model=name).to_dict()}
                entries.append(entry)
                print(f"OpenCV {name} x{scale}: report mean {entry['report']['matrix']['mean_gain']:+.2f}", flush=True)

    scales = sorted({e["scale"] for e in entries})
    references = {
        side: {
            "original": {
                "niqe": round(float(np.mean([niqe(luma_255(hr).numpy()) for _, hr in sides[side]])), 3),
                "s3": round(float(np.mean([s3_index(luma_255(hr).numpy()) for _, hr in sides[side]])), 4),
            },
            "bicubic": {str(s): no_reference(sides[side], s, None) for s in scales},
        }
        for side in SIDES
    }
    temporal = args.out / "temporal.json"
    payload = {
        "machine": _machines(entries),
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality.py",
        "val_set": folder,
        "split": {"rule": RULE_TEXT, **{side: list(records[side].images) for side in SIDES}},
        "rows": {r.name: r.description for r in MATRIX.values()},
        "entries": entries,
        "references": references,
        "temporal": json.loads(temporal.read_text()) if temporal.is_file() else None,
        "skipped": skipped,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / "QUALITY.md").write_text(render(payload))
    print(f"wrote QUALITY.md and quality.json in {args.out}")


def _means(entries: list[dict]) -> list[dict]:
    """An entry for each documented mean of sets (``vidsr.models.mean``) whose sets all ship, made of its
    members' entries."""
    means = []
    for (model, scale), name in DOCUMENTED.items():
        parts = name.split(JOIN)
        members = {e["set"]: e for e in entries if (e["model"], e["scale"]) == (model, scale) and not e.get("ensemble")}
        if not all(p in members for p in parts):
            continue
        first = members[parts[0]]
        means.append(
            {
                "name": f"{model} {name}",
                "model": model,
                "scale": scale,
                "weights": name,
                "tensors_sha256": JOIN.join(members[p]["tensors_sha256"] for p in parts),
                "set": name,
                "default": False,
                "mean_of": [members[p]["weights"] for p in parts],
                "history": [h for p in parts for h in (members[p].get("history") or [members[p].get("recipe") or {}])],
                **{k: first[k] for k in ("degradations", "trained_on", "selected_on", "target_psnr")},
            }
        )
    return means


def _measured(entry: dict, weights: Path | str, kept: list[dict], sides: dict) -> dict:
    """``entry`` with its figures on both sides: from ``kept`` where the same tensors (and ensemble) were
    measured before, else measured now.  ``weights``: a file, or a mean's set names."""

    def key(e: dict) -> tuple:
        return e.get("weights"), e.get("tensors_sha256"), bool(e.get("ensemble"))

    same = next((e for e in kept if key(e) == key(entry)), None)
    if same is not None:
        return {**same, **entry}
    started = time.perf_counter()
    loaded = build_model(entry["model"], entry["scale"], weights=weights)
    upscale = module_upscaler(loaded.module, loaded.spec.colour, ensemble=bool(entry.get("ensemble")))
    for side in SIDES:
        entry[side] = measure(sides[side], entry["scale"], upscale, entry["model"])
    entry["seconds"] = round(time.perf_counter() - started, 1)
    entry["machine"] = _machine()
    return entry


def _machines(entries: list[dict]) -> str:
    """The machines the entries were measured on, most entries first (``--reuse`` mixes sessions)."""
    here = _machine()  # for entries measured now outside _measured (OpenCV's networks)
    ranked = Counter(e.get("machine") or here for e in entries).most_common()
    if len(ranked) == 1:
        return ranked[0][0]
    return (
        "; ".join(f"{m} for {n} {'entry' if n == 1 else 'entries'}" for m, n in ranked)
        + " (each entry's in `quality.json`)"
    )


def _machine() -> str:
    cpu = platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [
            ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln
        ]
        cpu = names[0] if names else cpu
    threads = torch.get_num_threads()
    return (
        f"CPU ({cpu}, {os.cpu_count()} cores, {'one thread' if threads == 1 else f'{threads} threads'}, "
        f"no GPU used, torch {torch.__version__})"
    )


# --- rendering -------------------------------------------------------------------------------------


def _trained(entry: dict) -> str:
    history = entry.get("history") or [entry.get("recipe") or {}]
    steps = sum(h.get("steps", 0) for h in history)
    minutes = sum(h.get("seconds", 0) for h in history) / 60
    return f"{steps} steps, {minutes:.0f} min, {history[-1].get('device', '?')}" if steps else "—"


def best_at(entries: list[dict], scale: int) -> dict | None:
    """The shipped set issue 24's "best model" bar is checked on at ``scale``: the highest six-row mean on the
    selection side (chosen there, like everything else, and then read on the report side)."""
    ours = [e for e in entries if e["scale"] == scale and "protocol" in e.get("report", {})]
    return max(ours, key=lambda e: mean6(e["selection"]["matrix"]), default=None)


def _bars(entries: list[dict], references: dict | None = None, temporal: dict | None = None) -> list[str]:
    """Issue 24's bars, each checked on the report side."""
    lines = [
        "",
        "## Issue 24's bars, on the report side",
        "",
        "| bar | weights | figures | met |",
        "| --- | --- | --- | --- |",
    ]
    for scale in (2, 4):
        best = best_at(entries, scale)
        if best:
            m = best["report"]["matrix"]
            six = mean6(m)
            ok = m["worst_gain"] >= BEST_WORST and six >= BEST_MEAN6
            lines.append(
                f"| x{scale} best set: every row >= {BEST_WORST:+.1f}, six-row mean >= {BEST_MEAN6:+.1f} "
                f"| {best['name']} | worst {m['worst_gain']:+.2f}, mean6 {six:+.3f} | {'yes' if ok else 'no'} |"
            )
    for e in entries:
        if e.get("default") and "report" in e and e["model"] in ("espcn",):
            m = e["report"]["matrix"]
            lines.append(
                f"| x{e['scale']} CLI default: every row >= {DEFAULT_WORST:+.1f} | {e['name']} "
                f"| worst {m['worst_gain']:+.2f} | {'yes' if m['worst_gain'] >= DEFAULT_WORST else 'no'} |"
            )
    for gan in (e for e in entries if e["model"] == "srgan" and "report" in e):
        lines += _srgan_bars(gan, entries, references, temporal)
    return lines


def _srgan_bars(gan: dict, entries: list[dict], references: dict | None, temporal: dict | None) -> list[str]:
    """Issue 24's SRGAN bars at ``gan``'s scale: NIQE below every SRResNet's and bicubic's, fidelity kept."""
    scale = gan["scale"]
    srresnets = [
        e
        for e in entries
        if e["model"] == "srresnet" and e["scale"] == scale and "report" in e and not e.get("ensemble")
    ]
    if not srresnets:
        return []
    r = gan["report"]
    bicubic = ((references or {}).get("report", {}).get("bicubic", {}).get(str(scale)) or {}).get("niqe", float("inf"))
    others = {e["name"]: e["report"]["niqe"] for e in srresnets} | {"bicubic": bicubic}
    gain = r["protocol"]["psnr"] - r["protocol"]["bicubic_psnr"]
    ok = r["niqe"] <= min(others.values()) - SRGAN_NIQE_MARGIN and gain >= SRGAN_MIN_GAIN
    return [
        f"| SRGAN x{scale}: NIQE <= min(SRResNet's, bicubic's) - {SRGAN_NIQE_MARGIN}, protocol >= bicubic "
        f"+ {SRGAN_MIN_GAIN} | {gan['name']} | NIQE {r['niqe']:.2f} ("
        + ", ".join(f"{k} {v:.2f}" for k, v in others.items())
        + f"), protocol {gain:+.2f} dB | {'yes' if ok else 'no'} |",
        *_flicker_bar(gan, temporal),
    ]


def _flicker_bar(gan: dict, temporal: dict | None) -> list[str]:
    """A perceptual model must not flicker visibly more than SRResNet: on the report clip, its temporal-difference
    error at most ``SRGAN_FLICKER_MARGIN`` above the SRResNet it was fine-tuned from (pick_srgan.py's margin)."""
    rows = {
        r["name"]: r for r in (temporal or {}).get("rows", []) if r["side"] == "report" and r["scale"] == gan["scale"]
    }
    parent = _parent(gan)
    base, ours = rows.get(parent), rows.get(gan["name"])
    if not (base and ours):
        return []
    ok = ours["tdiff_error"] <= base["tdiff_error"] * (1 + SRGAN_FLICKER_MARGIN)
    label = parent.replace("srresnet", "SRResNet")
    return [
        f"| SRGAN x{gan['scale']} flicker: temporal-difference error <= {label}'s + {SRGAN_FLICKER_MARGIN:.0%} "
        f"({ours['clip']}) | {gan['name']} | {ours['tdiff_error']:.3f} ({parent} {base['tdiff_error']:.3f}, "
        f"{ours['tdiff_error'] / base['tdiff_error'] - 1:+.1%}); static flicker {ours['static_flicker']:.3f} "
        f"({base['static_flicker']:.3f}) | {'yes' if ok else 'no'} |"
    ]


def _parent(gan: dict) -> str:
    """The entry name of the SRResNet a GAN was fine-tuned from (``srresnet_x4.paper.safetensors``: srresnet paper)."""
    stem = Path(gan.get("recipe", {}).get("init") or "srresnet_x4.paper.safetensors").name
    model, _, rest = stem.partition("_x")
    parts = rest.split(".")
    return f"{model} {parts[1] if len(parts) > 2 else 'paper'}"


def _matrix_tables(payload: dict) -> list[str]:
    entries, names = payload["entries"], list(payload["rows"])
    lines = []
    for scale in sorted({e["scale"] for e in entries}):
        here = [e for e in entries if e["scale"] == scale]
        lines += [
            "",
            f"### x{scale}",
            "",
            "| report side | " + " | ".join(names) + " | mean | mean of six | selection side: mean of six |",
            "|---" * (len(names) + 4) + "|",
        ]
        base = here[0]["report"]["matrix"]["rows"]
        lines.append("| bicubic (PSNR-Y) | " + " | ".join(f"{r['bicubic_psnr']:.2f}" for r in base) + " | | | |")
        lanczos = [r["lanczos_psnr"] - r["bicubic_psnr"] for r in base]
        six = np.mean([g for g, r in zip(lanczos, base, strict=True) if r["degradation"] in ISSUE_ROWS])
        lines.append(
            "| lanczos | " + " | ".join(f"{g:+.2f}" for g in lanczos) + f" | {np.mean(lanczos):+.2f} | {six:+.2f} | |"
        )
        for e in sorted(here, key=lambda e: ("protocol" not in e["report"], not e.get("default"), e["name"])):
            m = e["report"]["matrix"]
            label = e["name"] + (" (default)" if e.get("default") else "")
            lines.append(
                f"| {label} | "
                + " | ".join(f"{r['gain']:+.2f}" for r in m["rows"])
                + f" | {m['mean_gain']:+.2f} | {mean6(m):+.2f} | {mean6(e['selection']['matrix']):+.2f} |"
            )
    return lines


def _no_reference_table(payload: dict, ours: list[dict]) -> list[str]:
    refs = payload["references"]["report"]
    lines = [
        "",
        "## Naturalness and sharpness, no reference (report side)",
        "",
        "PSNR rewards the blur that averages plausible textures; SRGAN is trained to trade some of it for texture.",
        "Two scores that do not look at the original: **NIQE** (`vidsr/niqe.py`, lower is more natural: how far",
        "the statistics of local contrast lie from those of pristine photographs; its pristine model is fit on",
        "vidsr's training photographs, so figures compare with each other, not with published NIQE) and **S3**",
        "(`vidsr/sharpness.py`, Vu, Phan & Chandler 2012, higher is sharper: the spectral slope and local total",
        "variation of the sharpest 1 % of the picture). On the protocol's outputs of the report photos; the photos",
        f"themselves score NIQE {refs['original']['niqe']:.2f} and S3 {refs['original']['s3']:.3f}.",
        "",
        "| scale | weights | NIQE | S3 | PSNR-Y | gain over bicubic |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for scale in sorted({e["scale"] for e in ours}):
        b = refs["bicubic"][str(scale)]
        lines.append(f"| x{scale} | bicubic | {b['niqe']:.2f} | {b['s3']:.3f} | | |")
        for e in sorted((e for e in ours if e["scale"] == scale), key=lambda e: (e["model"], not e["default"])):
            r = e["report"]
            p = r["protocol"]
            lines.append(
                f"| x{scale} | {e['name']} | {r['niqe']:.2f} | {r['s3']:.3f} | {p['psnr']:.2f} | "
                f"{p['psnr'] - p['bicubic_psnr']:+.2f} |"
            )
    return lines


def _temporal_table(payload: dict) -> list[str]:
    temporal = payload.get("temporal")
    if not temporal:
        return []
    lines = [
        "",
        "## Temporal stability (the shared clips)",
        "",
        "Frames are upscaled one at a time, so invented detail can shimmer. The first "
        f"{temporal['rows'][0]['frames']} frames of each clip, downscaled by the protocol and upscaled frame by",
        "frame, scored on Y against the original frames (`vidsr/temporal.py`): the **temporal-difference error**",
        "(mean |change of the output from one frame to the next - change of the original|, code values) and the",
        "**static flicker** (mean change of the output where the original is still). Lower is steadier; bicubic's",
        "figures are the yardstick. `vtest.avi` is on the report side; `box.mp4` and `tree.avi` on the selection side.",
        f"Machine: {temporal['machine']}. Command: `{temporal['command']}`{_updates(temporal.get('updated_by', []))}.",
        "",
        "| clip (side) | scale | model | PSNR-Y | temporal-difference error | static flicker |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in temporal["rows"]:
        lines.append(
            f"| {r['clip']} ({r['side']}) | x{r['scale']} | {r['name']} | {r['psnr']:.2f} | {r['tdiff_error']:.3f} | "
            f"{r['static_flicker']:.3f} |"
        )
    return lines


def _updates(updates: list[str | dict]) -> str:
    """temporal.json's ``--update`` runs, each distinct one once (in the order first run) with how often it ran:
    the x4 SRResNet rows are measured again after every x4 run that ships."""
    counts = Counter(_update(u) for u in updates)
    return "".join(
        f"; rows added or measured again by {text}" + (f" ({n} times)" if n > 1 else "") for text, n in counts.items()
    )


def _update(update: str | dict) -> str:
    """One ``--update`` of temporal.json: its command and machine (updates from before it named one: a command)."""
    if isinstance(update, str):
        return f"`{update}`"
    return f"`{update['command']}` on {update['machine']}"


def render(payload: dict) -> str:
    entries = payload["entries"]
    ours = [e for e in entries if "protocol" in e.get("report", {})]
    split = payload["split"]
    lines = [
        "# Quality: the report photos, which nothing was tuned on",
        "",
        f"Machine: {payload['machine']}. Command: `{payload['command']}` (regenerates this file and",
        "`quality.json`). Every figure is PSNR-Y (dB) or SSIM-Y on BT.601 studio-range Y, `scale` pixels",
        f"shaved, mean over photos of `{payload['val_set']}` (never trained on).",
        "",
        "## How the figures are kept clean",
        "",
        "The validation photos are split by one rule in `vidsr/split.py`, fixed before any figure was seen",
        f"({split['rule']}):",
        "",
        f"* **selection** side ({len(split['selection'])}): {', '.join(split['selection'])}. Checkpoints are picked,",
        "  recipe ranges set and thresholds chosen here (`vidsr train` validates on this side only).",
        f"* **report** side ({len(split['report'])}): {', '.join(split['report'])}. Measured here, never tuned on.",
        "* Clips: `vtest.avi` reports; `box.mp4` and `tree.avi` select.",
        "",
        "Sets trained before the split were picked on all 14 photos, the report side included: their report",
        "figures are a little optimistic, and the table says `val (before the split)` for them.",
        "",
        "## The literature's protocol (report side)",
        "",
        "HR cropped to a multiple of the scale, LR by Pillow's antialiased bicubic (8-bit); bicubic is Pillow's.",
        "",
        "| weights | default | scale | trained on | selected on | PSNR-Y | SSIM-Y | bicubic | gain "
        "| selection-side gain | target | trained |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in sorted(ours, key=lambda e: (e["model"], e["scale"], not e["default"])):
        p, s = e["report"]["protocol"], e["selection"]["protocol"]
        target = e.get("target_psnr")
        target_s = "—" if target is None else f"{target:.1f} ({'met' if p['psnr'] >= target else 'not met'})"
        weights = f"--weights {e['weights']}" if e.get("mean_of") else e["weights"]  # a mean has no one file
        lines.append(
            f"| `{weights}`{' `--ensemble`' if e.get('ensemble') else ''} | {'yes' if e['default'] else ''} "
            f"| x{e['scale']} | {e['trained_on']} | "
            f"{e['selected_on']} | {p['psnr']:.2f} | {p['ssim']:.4f} | {p['bicubic_psnr']:.2f} / "
            f"{p['bicubic_ssim']:.4f} | {p['psnr'] - p['bicubic_psnr']:+.2f} | {s['psnr'] - s['bicubic_psnr']:+.2f} | "
            f"{target_s} | {_trained(e)} |"
        )
    lines += _bars(entries, payload.get("references"), payload.get("temporal"))
    lines += [
        "",
        "## The degradation matrix (report side)",
        "",
        "LR made each of these ways (`vidsr eval DIR --degradations all`):",
        "",
    ]
    lines += [f"* `{name}`: {desc}" for name, desc in payload["rows"].items()]
    lines += [
        "",
        "Each cell is the gain in PSNR-Y over bicubic on that row (dB); the bicubic line gives bicubic's own PSNR-Y.",
        "`mean of six` leaves out H.264, as issue 24's matrix does. The last column is the same mean on the",
        "selection side, for comparison: it is what picked the checkpoints. OpenCV's networks (from",
        "`../shared/peers`) were trained on LR made by `cv2.resize` INTER_CUBIC, the `bicubic` row.",
    ]
    lines += _matrix_tables(payload)
    lines += _no_reference_table(payload, ours)
    lines += _temporal_table(payload)
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
