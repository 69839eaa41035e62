"""``vidsr models`` and ``vidsr probe``: what vidsr can run, and what is in a file."""

from __future__ import annotations

from pathlib import Path

import click

from vidsr.cli.main import debug_option, emit_json, handle_errors


def _model_rows() -> list[dict]:
    from vidsr.models import REGISTRY, shipped_metadata

    rows = []
    for spec in REGISTRY.values():
        for scale in spec.scales:
            meta = shipped_metadata(spec.name, scale) if spec.learned else None
            row = {
                "model": spec.name,
                "scale": scale,
                "colour": spec.colour.upper() if spec.colour != "any" else "any",
                "learned": spec.learned,
                "weights": "shipped" if meta else ("-" if not spec.learned else "none"),
                "description": spec.description,
            }
            if meta:
                for key in ("val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim", "val_set"):
                    if key in meta:
                        row[key] = meta[key]
            elif spec.learned:
                row["needs"] = (
                    "VGG19 ImageNet features: vidsr train --model srgan --init SRRESNET --vgg-weights VGG19.pth"
                    if spec.name == "srgan"
                    else f"vidsr train --model {spec.name} --scale {scale}"
                )
            rows.append(row)
    return rows


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@debug_option
@handle_errors
def models(as_json: bool) -> None:
    """List models, their scales, colour space, shipped weights and measured quality (PSNR-Y on val)."""
    rows = _model_rows()
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'model':9} {'scale':5} {'colour':6} {'weights':8} quality (val PSNR/SSIM, bicubic beside)")
    for r in rows:
        if "val_psnr" in r:
            quality = f"{r['val_psnr']:.2f} dB / {r.get('val_ssim', float('nan')):.4f}"
            if "bicubic_psnr" in r:
                quality += f"  (bicubic {r['bicubic_psnr']:.2f} dB, {r['val_psnr'] - r['bicubic_psnr']:+.2f})"
        elif r["learned"]:
            quality = f"no trained weights: {r['needs']}"
        else:
            quality = "interpolation baseline"
        click.echo(f"{r['model']:9} x{r['scale']:<4} {r['colour']:6} {r['weights']:8} {quality}")


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
    if as_json:
        emit_json(info.to_dict())
        return
    duration = f"{info.duration:.3f} s" if info.duration is not None else "unknown"
    rate = f"{info.frame_rate:.3f} fps" if info.frame_rate else "unknown"
    header = f" (header says {info.frames_header})" if info.frames_header and info.frames_header != info.frames else ""
    click.echo(f"{info.path}: {info.container}, {duration}")
    click.echo(
        f"  video: {info.video_codec} {info.width}x{info.height} {info.pix_fmt}, "
        f"{info.frames} frames{header}, {rate} {'variable' if info.variable_frame_rate else 'constant'}"
    )
    c = info.colour
    click.echo(
        f"  colour: matrix {c['matrix']}, range {c['range']}, primaries {c['primaries']}, transfer {c['transfer']}"
    )
    for s in info.streams:
        extra = ", ".join(f"{k} {v}" for k, v in s.details.items())
        click.echo(f"  #{s.index} {s.type}: {s.codec}" + (f" ({extra})" if extra else ""))
