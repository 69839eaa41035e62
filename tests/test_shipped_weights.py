"""Every weights file shipped in the package loads, carries its metadata, and beats bicubic on a val image."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import data_path, load_script

from vidsr.degrade import matrix_rows
from vidsr.evaluate import evaluate_images, evaluate_matrix, load_rgb, module_upscaler
from vidsr.models import build_model
from vidsr.models.weights import (
    SHIPPED_DIR,
    WEIGHT_SETS,
    read_metadata,
    shipped_sets,
    shipped_weights_path,
    tensor_digest,
)
from vidsr.niqe import mean_niqe
from vidsr.split import RULE, side_of

SHIPPED = sorted(SHIPPED_DIR.glob("*.safetensors"))
KEYS = {"architecture", "model", "scale", "recipe", "val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim", "val_set"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_set_says_which_photos_picked_it_and_which_report_on_it(path) -> None:
    """Issue 24: figures a set was not tuned on.  ``benchmarks/quality.py --stamp`` writes the report side's
    figures; a set trained since the split records the selection photos that picked its checkpoint."""
    meta = read_metadata(path)
    reported = meta["reported_on"]
    assert (reported["side"], reported["rule"]) == ("report", RULE)
    assert reported["images"] and all(side_of(name) == "report" for name in reported["images"])
    figures = meta["report"]
    assert set(figures) >= {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "matrix", "niqe", "s3"}
    if "selected_on" in meta:  # trained since the split
        selected = meta["selected_on"]
        assert selected["side"] == "selection" and selected["rule"] == RULE
        assert not set(selected["images"]) & set(reported["images"])


def test_the_promised_weights_ship() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"espcn_x2.paper", "espcn_x3.paper", "espcn_x4.paper", "srresnet_x2.paper", "srresnet_x4.paper"} <= names
    assert all(n.split(".")[1] in WEIGHT_SETS for n in names)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_weights_load_and_beat_bicubic(path) -> None:
    meta = read_metadata(path)
    assert set(meta) >= KEYS
    model, scale = meta["model"], meta["scale"]
    weight_set = path.stem.split(".")[1]
    assert path.stem == f"{model}_x{scale}.{weight_set}"
    recipe = meta.get("degradations", {"name": "protocol"})["name"]
    if weight_set == "paper":
        assert recipe == "protocol"
    else:
        assert recipe.startswith("robust-"), recipe
    assert set(meta["recipe"]) >= {"steps", "patch", "batch", "lr", "loss", "seed", "data", "device", "seconds"}
    assert meta["val_set"] == "shared/data/val"
    assert meta["val_psnr"] > meta["bicubic_psnr"]
    loaded = build_model(model, scale, weights=weight_set)  # the shipped file, found by its set's name
    assert loaded.weights == path
    # A 192x192 crop of one val image keeps this fast on a CPU.
    hr = load_rgb(data_path("val", "butterfly.png"))[:, 60:252, 120:312]
    result = evaluate_images([("butterfly", hr)], scale, module_upscaler(loaded.module, loaded.spec.colour))
    assert result.psnr > result.bicubic_psnr + 0.1
    if model != "srgan":  # SRGAN gives up fidelity for texture on purpose; test_srgan_* measure what it is for
        assert result.ssim > result.bicubic_ssim


@pytest.mark.parametrize("model", ["espcn", "srresnet"])
@pytest.mark.parametrize("scale", [2, 4])
def test_the_default_weights_hold_up_on_every_row_of_the_matrix(model, scale) -> None:
    """What `vidsr upscale -m MODEL` uses without --weights is no worse than bicubic (within 0.1 dB)
    on any row, and far better than the paper-protocol weights on their worst row (aliased LR).

    The shipped metadata holds the full-val figures (benchmarks/QUALITY.md); the matrix is also
    recomputed here, independently of them, on 160x160 crops of two photos, for both sets, with a
    margin for the smaller sample.  (The +0.5 dB mean is checked on the metadata's full-val figures.)
    """
    loaded = build_model(model, scale)
    meta = read_metadata(loaded.weights)
    if not meta.get("degradations", {}).get("name", "").startswith("robust-"):
        pytest.skip(f"the default {model} x{scale} weights are not the robust set yet ({loaded.weights.name})")
    assert meta["matrix"]["worst_gain"] >= -0.1
    assert meta["matrix"]["mean_gain"] >= 0.5, meta["matrix"]
    images = [(name, load_rgb(data_path("val", name))[:, 40:200, 40:200]) for name in ("butterfly.png", "leuvenA.png")]
    paper = build_model(model, scale, weights="paper")
    colour = loaded.spec.colour
    results = {
        m.weights.name: evaluate_matrix(images, scale, module_upscaler(m.module, colour), matrix_rows("all"))
        for m in (loaded, paper)
    }
    robust, protocol = results[loaded.weights.name], results[paper.weights.name]
    assert robust.worst_gain >= -0.2, robust.summary()
    assert protocol.worst_gain < -0.5  # the failure the robust set exists for: aliased LR
    assert robust.worst_gain > protocol.worst_gain + 0.5, (robust.summary(), protocol.summary())
    if model == "espcn":  # the 3-layer paper ESPCN also loses on average; SRResNet's paper set does not
        assert robust.mean_gain > protocol.mean_gain + 0.1, (robust.summary(), protocol.summary())


def test_srgan_is_more_natural_than_srresnet_and_still_beats_bicubic() -> None:
    """What SRGAN is for, recomputed here without a reference: on four textured val photos (both sides) its x4
    outputs score a NIQE at least 0.3 lower (more natural) than both SRResNet sets' and bicubic's (issue 24's
    margin), while its protocol PSNR-Y on two of them stays 0.3 dB above bicubic's: a guard, not issue 24's
    +0.5 dB bar, which is checked on the report side's stamped figures below."""
    if "paper" not in shipped_sets("srgan", 4):
        pytest.skip("no srgan x4 weights ship")
    names = ("building.png", "fruits.png", "squirrel_cls.png", "baboon.png")
    images = [(n, load_rgb(data_path("val", n))) for n in names]
    upscalers = {
        f"{model} {weight_set}": module_upscaler(build_model(model, 4, weights=weight_set).module, "rgb")
        for model, weight_set in (("srresnet", "paper"), ("srresnet", "robust"), ("srgan", "paper"))
    }
    scores = {name: mean_niqe(images, 4, upscale) for name, upscale in upscalers.items()}
    scores["bicubic"] = mean_niqe(images, 4, None)
    others = min(v for k, v in scores.items() if k != "srgan paper")
    assert scores["srgan paper"] < others - 0.3, scores
    protocol = evaluate_images(images[:2], 4, upscalers["srgan paper"])
    assert protocol.psnr > protocol.bicubic_psnr + 0.3, protocol.to_dict()


def quality_json() -> dict:
    """What ``benchmarks/quality.py`` last wrote: every shipped set's report-side figures."""
    return json.loads((SHIPPED_DIR.parents[2] / "benchmarks" / "quality.json").read_text())


@pytest.fixture(scope="module")
def bars():
    """benchmarks/quality.py, for its six rows and issue 24's bars, written there once."""
    yield load_script("quality", "quality_for_bars")
    sys.modules.pop("quality_for_bars", None)


def test_srgan_meets_issue_24s_bars_on_the_report_side() -> None:
    """Issue 24's bars for SRGAN x4 on the report photos, nothing picked on them: NIQE at least 0.3 below both
    SRResNet sets' and bicubic's, protocol PSNR-Y at least 0.5 dB above bicubic.  Read from the figures
    ``benchmarks/quality.py --stamp`` wrote into the shipped files (bicubic's NIQE from its quality.json)."""
    if "paper" not in shipped_sets("srgan", 4):
        pytest.skip("no srgan x4 weights ship")
    report = read_metadata(shipped_weights_path("srgan", 4, "paper"))["report"]
    srresnet = [read_metadata(shipped_weights_path("srresnet", 4, w))["report"]["niqe"] for w in ("paper", "robust")]
    bicubic = quality_json()["references"]["report"]["bicubic"]["4"]["niqe"]
    assert report["niqe"] <= min(*srresnet, bicubic) - 0.3, (report["niqe"], srresnet, bicubic)
    assert report["psnr"] - report["bicubic_psnr"] >= 0.5, report


def test_the_x3_srgan_meets_issue_24s_bars_on_the_report_side() -> None:
    """The same bars at x3, against the only x3 SRResNet (``large``, which it was fine-tuned from), and on the
    report clip no more than 5 % more temporal-difference error than that SRResNet (benchmarks/temporal.py)."""
    if "paper" not in shipped_sets("srgan", 3):
        pytest.skip("no srgan x3 weights ship")
    meta = read_metadata(shipped_weights_path("srgan", 3, "paper"))
    assert meta["recipe"]["init"] == "srresnet_x3.large.safetensors"
    report = meta["report"]
    srresnet = read_metadata(shipped_weights_path("srresnet", 3, "large"))["report"]["niqe"]
    bicubic = quality_json()["references"]["report"]["bicubic"]["3"]["niqe"]
    assert report["niqe"] <= min(srresnet, bicubic) - 0.3, (report["niqe"], srresnet, bicubic)
    assert report["psnr"] - report["bicubic_psnr"] >= 0.5, report
    temporal = json.loads((SHIPPED_DIR.parents[2] / "benchmarks" / "temporal.json").read_text())
    rows = {r["name"]: r for r in temporal["rows"] if r["side"] == "report" and r["scale"] == 3}
    assert rows["srgan paper"]["weights"] == "srgan_x3.paper.safetensors"
    assert rows["srgan paper"]["tdiff_error"] <= 1.05 * rows["srresnet large"]["tdiff_error"], rows


def test_the_best_x2_set_meets_issue_24s_bars_on_the_report_side(bars) -> None:
    """Issue 24's bars for the best x2 set: every row of the matrix at or above bicubic and a six-row mean of at
    least +0.8 dB on the report photos.  ``srresnet --weights large --ensemble`` meets them (measured by
    ``benchmarks/quality.py``, whose quality.json must describe the file that ships, tensor for tensor)."""
    if "large" not in shipped_sets("srresnet", 2):
        pytest.skip("no srresnet x2 large weights ship")
    entries = quality_json()["entries"]
    (entry,) = [e for e in entries if e.get("name") == "srresnet large + ensemble" and e["scale"] == 2]
    assert entry["tensors_sha256"] == tensor_digest(shipped_weights_path("srresnet", 2, "large"))
    matrix = entry["report"]["matrix"]
    assert matrix["worst_gain"] >= bars.BEST_WORST == 0.0, matrix["rows"]
    assert bars.mean6(matrix) >= bars.BEST_MEAN6 == 0.8, matrix["rows"]


def test_the_best_x4_set_meets_issue_24s_bars_on_the_report_side(bars) -> None:
    """Issue 24's bars for the best x4 set, the one the selection side ranks first (``best_at``: chosen there,
    read on the report photos): every row at or above bicubic and a six-row mean of at least +0.8 dB.  Met
    since the twenty-sixth session by ``--weights large+cascade --ensemble``, 0.011 dB over the bar; its
    quality.json entry must describe the files that ship, member by member, tensor for tensor."""
    best = bars.best_at(quality_json()["entries"], 4)
    assert best is not None, "quality.json has no x4 set"
    members = best.get("mean_of", [best["weights"]])  # a mean of sets names its members' files
    digests = [tensor_digest(SHIPPED_DIR / name) for name in members]
    assert best["tensors_sha256"] == "+".join(digests), (best["name"], members)
    matrix = best["report"]["matrix"]
    assert matrix["worst_gain"] >= bars.BEST_WORST == 0.0, (best["name"], matrix["rows"])
    assert bars.mean6(matrix) >= bars.BEST_MEAN6 == 0.8, (best["name"], bars.mean6(matrix))


def test_the_x4_large_set_earns_its_place_on_the_report_side(bars) -> None:
    """``srresnet --weights large`` at x4 ships because it was the better pick on the selection photos; on the
    report photos (measured after) it must still be at or above bicubic on every row and above the robust
    SRResNet on the six-row mean.  Issue 24's +0.8 dB x4 bar is asserted for the best x4 set (below)."""
    if "large" not in shipped_sets("srresnet", 4):
        pytest.skip("no srresnet x4 large weights ship")
    entries = {e["name"]: e for e in quality_json()["entries"] if e["scale"] == 4 and e.get("weights")}
    large, robust = entries["srresnet large"], entries["srresnet robust"]
    assert large["tensors_sha256"] == tensor_digest(shipped_weights_path("srresnet", 4, "large"))
    assert robust["tensors_sha256"] == tensor_digest(shipped_weights_path("srresnet", 4, "robust"))
    assert large["report"]["matrix"]["worst_gain"] >= 0.0, large["report"]["matrix"]["rows"]
    assert bars.mean6(large["report"]["matrix"]) > bars.mean6(robust["report"]["matrix"])


def test_the_x4_cascade_set_is_measured_as_it_ships_and_holds_every_row(bars) -> None:
    """``srresnet --weights cascade`` ships because it beat ``large`` on the selection photos (its rule, fixed
    before its run).  On the report photos, measured after, it must be the file quality.json describes and
    at or above bicubic on every row, with and without ``--ensemble``.  How it compares with ``large`` there
    is in README; nothing here asserts it is better."""
    if "cascade" not in shipped_sets("srresnet", 4):
        pytest.skip("no srresnet x4 cascade weights ship")
    digest = tensor_digest(shipped_weights_path("srresnet", 4, "cascade"))
    entries = [
        e for e in quality_json()["entries"] if e["scale"] == 4 and e.get("name", "").startswith("srresnet cascade")
    ]
    assert {e["name"] for e in entries} == {"srresnet cascade", "srresnet cascade + ensemble"}
    for entry in entries:
        assert entry["tensors_sha256"] == digest
        assert entry["report"]["matrix"]["worst_gain"] >= bars.BEST_WORST, entry["report"]["matrix"]["rows"]
