"""``vidsr models`` and ``vidsr probe``: what vidsr can run, and what is in a file."""

from __future__ import annotations

from pathlib import Path

import click

from vidsr.cli.common import debug_option, emit_json, handle_errors


def _needs(name: str, scale: int) -> str:
    init = " --init SRRESNET.safetensors" if name == "srgan" else ""
    return f"vidsr train --model {name} --scale {scale}{init} --data ../shared/data/train --val ../shared/data/val"


def _model_rows() -> list[dict]:
    """One row per model, scale and shipped weights set (default set first), with the figures it carries."""
    from vidsr.models import REGISTRY, shipped_sets
    from vidsr.models.mean import DOCUMENTED, JOIN
    from vidsr.models.weights import read_metadata, trained_on
    from vidsr.split import describe

    rows = []
    for spec in REGISTRY.values():
        for scale in spec.scales:
            base = {
                "model": spec.name,
                "scale": scale,
                "colour": spec.colour.upper() if spec.colour != "any" else "any",
                "learned": spec.learned,
                "description": spec.description,
            }
            sets = shipped_sets(spec.name, scale) if spec.learned else {}
            if not spec.learned:
                rows.append({**base, "weights": "-"})
            elif not sets:
                rows.append({**base, "weights": "none", "needs": _needs(spec.name, scale)})
            for i, (name, path) in enumerate(sets.items()):
                meta = read_metadata(path)
                row = {**base, "weights": name, "default": i == 0, "file": path.name, "trained_on": trained_on(meta)}
                for key in ("val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim", "val_set", "degradations"):
                    if key in meta:
                        row[key] = meta[key]
                recipe = meta.get("recipe") or {}
                row["trained"] = {k: recipe.get(k) for k in ("steps", "seconds", "device", "data") if k in recipe}
                if "loss" in recipe:
                    row["loss"] = recipe["loss"]
                if "interpolation" in recipe:  # ESRGAN's network interpolation with the network it was tuned from
                    row["interpolation"] = recipe["interpolation"]
                if "arch_config" in meta:
                    row["architecture"] = meta["arch_config"].get("config")
                if "matrix" in meta:
                    row["matrix_mean_gain"] = meta["matrix"]["mean_gain"]
                    row["matrix_worst_gain"] = meta["matrix"]["worst_gain"]
                row["int8"] = "int8" in meta  # calibrated: onnxruntime can run its int8 graph
                # Which photos picked the checkpoint, and which (never tuned on) the figures shown come from.
                row["selected_on"] = describe(meta.get("selected_on"), fallback_folder=meta.get("val_set"))
                row["reported_on"] = describe(meta["reported_on"]) if "reported_on" in meta else None
                if "report" in meta:
                    row["report"] = meta["report"]
                rows.append(row)
            mean = DOCUMENTED.get((spec.name, scale), "")
            parts = mean.split(JOIN) if mean else []
            if parts and all(part in sets for part in parts):
                rows.append({**base, "weights": mean, "default": False, "mean_of": parts})
    return rows


def _described(r: dict) -> str:
    """What the figures before it were trained, picked and measured on, and how the set runs."""
    text = f"; trained on {r['trained_on']}"
    if r.get("loss", "l1") != "l1":  # SRGAN's: says whether VGG or feature matching made it
        text += f", loss {r['loss']}"
    if blend := r.get("interpolation"):
        text += f", interpolated {blend['alpha']:g} : {1 - blend['alpha']:g} with {blend['with']}"
    text += f"; selected on {r['selected_on']}"
    text += f"; reported on {r['reported_on']}" if r.get("reported_on") else " (figures on the photos it was picked on)"
    if r.get("int8"):
        text += "; int8 on the CPU"
    return text


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@debug_option
@handle_errors
def models(as_json: bool) -> None:
    """List models, scales, colour space, every shipped weights set (default marked *) and its quality.

    Quality: PSNR-Y by the literature's protocol, beside bicubic, and where the weights carry it the
    degradation matrix's mean and worst gain over bicubic (`vidsr eval --degradations`), on the report
    photos of the val split (never tuned on) where the set was measured there; each line says which
    photos picked the set and which the figures come from.
    """
    rows = _model_rows()
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'model':9} {'scale':5} {'colour':6} {'weights':13} quality (PSNR/SSIM, bicubic beside; matrix)")
    for r in rows:
        if "report" in r:  # figures on photos nothing was tuned on (vidsr/split.py)
            rep = r["report"]
            quality = f"{rep['psnr']:.2f} dB / {rep['ssim']:.4f}"
            quality += f"  (bicubic {rep['bicubic_psnr']:.2f} dB, {rep['psnr'] - rep['bicubic_psnr']:+.2f})"
            quality += f"; matrix mean {rep['matrix']['mean_gain']:+.2f}, worst {rep['matrix']['worst_gain']:+.2f}"
            quality += _described(r)
        elif "val_psnr" in r:
            quality = f"{r['val_psnr']:.2f} dB / {r.get('val_ssim', float('nan')):.4f}"
            if "bicubic_psnr" in r:
                quality += f"  (bicubic {r['bicubic_psnr']:.2f} dB, {r['val_psnr'] - r['bicubic_psnr']:+.2f})"
            if "matrix_mean_gain" in r:
                quality += f"; matrix mean {r['matrix_mean_gain']:+.2f}, worst {r['matrix_worst_gain']:+.2f}"
            quality += _described(r)
        elif "mean_of" in r:
            quality = (
                f"the mean of {' and '.join(r['mean_of'])} (each runs, their answers averaged); chosen on the "
                "selection half of shared/data/val, figures on the report half in benchmarks/QUALITY.md"
            )
        elif r["learned"]:
            quality = f"no trained weights: {r['needs']}"
        else:
            quality = "interpolation baseline"
        weights = r["weights"] + ("*" if r.get("default") else "")
        click.echo(f"{r['model']:9} x{r['scale']:<4} {r['colour']:6} {weights:13} {quality}")


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--count", is_flag=True, help="Count frames by decoding (exact, slower) instead of by packets.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@debug_option
@handle_errors
def probe(input_path: Path, count: bool, as_json: bool) -> None:
    """Show INPUT's streams, codecs, frame count and rate (constant or variable), colour and duration."""
    from vidsr.media.probe import probe as probe_file

    info = probe_file(input_path, decode=count)
    for warning in info.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        emit_json(info.to_dict())
        return
    duration = f"{info.duration:.3f} s" if info.duration is not None else "unknown"
    rate = f"{info.frame_rate:.3f} fps" if info.frame_rate else "unknown"
    header = f", header says {info.frames_header}" if info.frames_header and info.frames_header != info.frames else ""
    how = " (decoded)" if count else f" (counted from packets{header}; --count decodes them, exact)"
    click.echo(f"{info.path}: {info.container}, {duration}")
    click.echo(
        f"  video: {info.video_codec} {info.width}x{info.height} {info.pix_fmt}, "
        f"{info.frames} frames{how}, {rate} {'variable' if info.variable_frame_rate else 'constant'}"
    )
    c = info.colour
    click.echo(
        f"  colour: matrix {c['matrix']}, range {c['range']}, primaries {c['primaries']}, transfer {c['transfer']}"
    )
    fields = info.interlace
    label = fields["detected"]
    if fields.get("ivtc"):
        label, todo = fields["verdict"], f"vidsr upscale inverse telecines it ({fields['done']})"
    else:
        todo = "vidsr upscale deinterlaces it (bwdif)" if fields["deinterlaced"] else "no deinterlacing needed"
    click.echo(f"  fields: {label} ({fields['reason']}); {todo}")
    for s in fields.get("sections", []):
        cadence = f", film cycles begin at frames {s['cycle_start']} mod 5" if s["cycle_start"] is not None else ""
        click.echo(
            f"    {s['start']:.2f}-{s['stop']:.2f} s (frames {s['first']}-{s['end'] - 1}): "
            f"{s['kind']}{' ' + s['order'] if s['order'] else ''}{cadence}"
        )
    m = info.metadata
    kept = [f"{k.replace('_', ' ')} {v}" for k, v in m.items() if v and k != "field_order"]
    click.echo("  metadata: " + (", ".join(kept) if kept else "none") + f", field order {m['field_order']}")
    for s in info.streams:
        extra = ", ".join(f"{k} {v}" for k, v in s.details.items())
        click.echo(f"  #{s.index} {s.type}: {s.codec}" + (f" ({extra})" if extra else ""))
