"""benchmarks/quality.py renders what it measured: the split it used, report figures first, the bars honestly."""

from __future__ import annotations

import sys

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def quality():
    yield load_script("quality", "quality_benchmark")
    sys.modules.pop("quality_benchmark", None)


ROWS = ("bicubic-aa", "bicubic", "area", "blur", "jpeg", "h264", "noise")


def _matrix(gains: list[float]) -> dict:
    rows = [
        {"degradation": n, "gain": g, "psnr": 30 + g, "bicubic_psnr": 30.0, "lanczos_psnr": 30.1}
        for n, g in zip(ROWS, gains, strict=True)
    ]
    return {"rows": rows, "mean_gain": sum(gains) / len(gains), "worst_gain": min(gains)}


def _side(gains: list[float], niqe: float) -> dict:
    protocol = {"psnr": 30 + gains[0], "ssim": 0.9, "bicubic_psnr": 30.0, "bicubic_ssim": 0.88}
    return {"protocol": protocol, "matrix": _matrix(gains), "niqe": niqe, "s3": 0.2}


def _entry(model: str, default: bool, report: list[float], selection: list[float], niqe: float = 6.0) -> dict:
    return {
        "name": f"{model} robust", "model": model, "scale": 2, "weights": f"{model}_x2.robust.safetensors",
        "set": "robust", "default": default, "trained_on": "robust-v3", "selected_on": "shared/data/val selection half",
        "history": [{"steps": 10, "seconds": 60, "device": "cpu"}], "target_psnr": None,
        "report": _side(report, niqe), "selection": _side(selection, niqe),
    }  # fmt: skip


def test_the_report_side_leads_and_the_bars_read_it(quality) -> None:
    good = _entry("espcn", True, [0.5, 0.1, 0.4, 0.9, 0.1, 0.1, 0.5], [1.2, 0.8, 1.1, 1.3, 0.5, 0.3, 1.4])
    worse = _entry("srresnet", False, [1.0, -0.3, 1.0, 1.0, 0.3, 0.2, 1.0], [1.0, 0.5, 1.0, 1.0, 0.4, 0.3, 1.0])
    payload = {
        "machine": "CPU (test)", "command": "quality.py", "val_set": "shared/data/val",
        "split": {"rule": "odd first byte reports", "selection": ["a.png"], "report": ["b.png"]},
        "rows": {n: n for n in ROWS}, "entries": [good, worse],
        "references": {"report": {"original": {"niqe": 5.0, "s3": 0.5}, "bicubic": {"2": {"niqe": 6.5, "s3": 0.1}}}},
        "temporal": None, "skipped": [],
    }  # fmt: skip
    text = quality.render(payload)
    assert "* **report** side (1): b.png" in text and "* **selection** side (1): a.png" in text
    # The best set is the one the selection side ranks first (espcn, 1.05 > 0.82), read on the report side.
    best = next(line for line in text.splitlines() if line.startswith("| x2 best set"))
    assert "espcn robust" in best and "worst +0.10" in best and best.endswith("| no |")  # mean6 +0.42 < +0.8
    default = next(line for line in text.splitlines() if line.startswith("| x2 CLI default"))
    assert default.endswith("| yes |")
    assert "| srresnet robust | +1.00 | -0.30 |" in text  # the report side's cells, not the selection side's
    assert quality.mean6(good["report"]["matrix"]) == pytest.approx((0.5 + 0.1 + 0.4 + 0.9 + 0.1 + 0.5) / 6)


def test_the_srgan_bars_compare_with_both_srresnets_bicubic_and_the_report_clip(quality) -> None:
    """Issue 24: NIQE 0.3 below the lowest of both SRResNet sets and bicubic, protocol +0.5 dB, and flicker on
    the report clip within pick_srgan.py's margin of the SRResNet it came from."""

    def x4(model: str, weight_set: str, niqe: float, gain: float) -> dict:
        entry = _entry(model, weight_set == "robust", [gain] * 7, [gain] * 7, niqe)
        return {**entry, "name": f"{model} {weight_set}", "set": weight_set, "scale": 4}

    entries = [x4("srresnet", "paper", 6.3, 0.9), x4("srresnet", "robust", 6.1, 0.4), x4("srgan", "paper", 5.85, 0.6)]
    references = {"report": {"bicubic": {"4": {"niqe": 6.8}}}}

    def row(name: str, tdiff: float) -> dict:
        return {"clip": "vtest.avi", "side": "report", "scale": 4, "name": name, "tdiff_error": tdiff,
                "static_flicker": 0.15}  # fmt: skip

    def bars(temporal: dict) -> list[str]:
        return [line for line in quality._bars(entries, references, temporal) if line.startswith("| SRGAN")]

    niqe_bar, flicker_bar = bars({"rows": [row("srresnet paper", 1.00), row("srgan paper", 1.04)]})
    assert "srresnet robust 6.10" in niqe_bar and niqe_bar.endswith("| no |")  # 5.85 > 6.10 - 0.3
    assert "+4.0%" in flicker_bar and flicker_bar.endswith("| yes |")
    entries[2]["report"]["niqe"] = 5.75
    niqe_bar, flicker_bar = bars({"rows": [row("srresnet paper", 1.00), row("srgan paper", 1.06)]})
    assert niqe_bar.endswith("| yes |") and flicker_bar.endswith("| no |")


def test_each_scale_s_srgan_is_judged_against_that_scale_s_srresnets_and_bicubic(quality) -> None:
    """An x2 SRGAN beside the x4 one: each bar names only its own scale's SRResNets and bicubic (at x2
    bicubic can be the more natural of the two, and then it is the one to beat)."""

    def entry(model: str, scale: int, niqe: float) -> dict:
        made = _entry(model, False, [1.0] * 7, [1.0] * 7, niqe)
        return {**made, "name": f"{model} paper", "set": "paper", "scale": scale}

    entries = [entry("srresnet", 4, 6.3), entry("srgan", 4, 5.0), entry("srresnet", 2, 6.1), entry("srgan", 2, 5.5)]
    references = {"report": {"bicubic": {"4": {"niqe": 6.8}, "2": {"niqe": 5.7}}}}
    bars = [line for line in quality._bars(entries, references, None) if line.startswith("| SRGAN")]
    x4_bar, x2_bar = (next(line for line in bars if line.startswith(f"| SRGAN x{s}:")) for s in (4, 2))
    assert "srresnet paper 6.30" in x4_bar and "bicubic 6.80" in x4_bar and x4_bar.endswith("| yes |")
    assert "srresnet paper 6.10" in x2_bar and "bicubic 5.70" in x2_bar and x2_bar.endswith("| no |")  # 5.5 > 5.4


def test_a_gan_s_flicker_is_held_to_the_srresnet_it_was_fine_tuned_from(quality) -> None:
    gan = {"name": "srgan large", "scale": 3, "recipe": {"init": "srresnet_x3.large.safetensors"}}
    rows = [
        {"clip": "vtest.avi", "side": "report", "scale": 3, "name": name, "tdiff_error": tdiff, "static_flicker": 0.1}
        for name, tdiff in (("srresnet paper", 2.0), ("srresnet large", 1.0), ("srgan large", 1.04))
    ]
    (bar,) = quality._flicker_bar(gan, {"rows": rows})
    assert "<= SRResNet large's + 5%" in bar and "(srresnet large 1.000, +4.0%)" in bar and bar.endswith("| yes |")


def test_a_documented_mean_of_sets_is_measured_from_its_members_and_named_by_its_weights(quality) -> None:
    """``--weights large+cascade`` has no one file: its entry is made of its members' (histories, digests),
    only when every member ships, and the protocol table names it by what --weights takes."""
    members = []
    for name in ("large", "cascade"):
        member = _entry("srresnet", False, [0.5] * 7, [1.0] * 7)
        member.update(scale=4, set=name, weights=f"srresnet_x4.{name}.safetensors", tensors_sha256=name[:3])
        member["degradations"] = "robust-v4"
        members.append(member)
    (mean,) = quality._means(members)
    assert (mean["name"], mean["weights"], mean["tensors_sha256"]) == (
        "srresnet large+cascade",
        "large+cascade",
        "lar+cas",
    )
    assert mean["mean_of"] == ["srresnet_x4.large.safetensors", "srresnet_x4.cascade.safetensors"]
    assert len(mean["history"]) == 2 and not mean["default"]
    assert quality._means(members[:1]) == []  # cascade does not ship: no mean
    mean.update(report=_side([0.6] * 7, 6.0), selection=_side([1.1] * 7, 6.0))
    payload = {
        "machine": "CPU (test)", "command": "quality.py", "val_set": "shared/data/val",
        "split": {"rule": "odd first byte reports", "selection": ["a.png"], "report": ["b.png"]},
        "rows": {n: n for n in ROWS}, "entries": [*members, mean],
        "references": {"report": {"original": {"niqe": 5.0, "s3": 0.5}, "bicubic": {"4": {"niqe": 6.5, "s3": 0.1}}}},
        "temporal": None, "skipped": [],
    }  # fmt: skip
    text = quality.render(payload)
    assert "| `--weights large+cascade` |  | x4 |" in text
    best = next(line for line in text.splitlines() if line.startswith("| x4 best set"))
    assert "srresnet large+cascade" in best  # the highest selection-side mean6


def test_reused_entries_keep_the_machine_they_were_measured_on(quality) -> None:
    """``--reuse`` mixes sessions: an entry kept from an earlier quality.json keeps its machine, the header
    names every machine, and temporal.json's later ``--update`` runs name theirs."""
    kept = _entry("espcn", True, [0.5] * 7, [1.0] * 7)
    kept.update(tensors_sha256="abc", machine="CPU (old box)")
    entry = {k: v for k, v in kept.items() if k not in ("report", "selection", "machine")}
    reused = quality._measured(entry, "unused.safetensors", [kept], sides={})  # same tensors: not measured
    assert reused["machine"] == "CPU (old box)" and reused["report"] == kept["report"]
    other = {**kept, "machine": "CPU (new box)"}
    assert quality._machines([reused, reused]) == "CPU (old box)"
    header = quality._machines([reused, other, reused])
    assert header.startswith("CPU (old box) for 2 entries; CPU (new box) for 1 entry")
    assert quality._update("temporal.py --update") == "`temporal.py --update`"
    assert quality._update({"command": "temporal.py --update", "machine": "CPU (new box)"}) == (
        "`temporal.py --update` on CPU (new box)"
    )
    again = {"command": "temporal.py --update", "machine": "CPU (new box)"}
    assert quality._updates(["temporal.py --update", again, {**again}, {**again, "machine": "CPU (other)"}]) == (
        "; rows added or measured again by `temporal.py --update`"
        "; rows added or measured again by `temporal.py --update` on CPU (new box) (2 times)"
        "; rows added or measured again by `temporal.py --update` on CPU (other)"
    )
