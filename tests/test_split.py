"""The selection/report split: a rule on names alone, stable, balanced on the shared photos, and obeyed by training."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import make_photos

from vidsr.errors import InputError
from vidsr.split import RULE, SplitRecord, describe, on_side, side_of
from vidsr.train.loop import TrainConfig, val_images


def test_the_side_is_the_parity_of_the_names_first_sha256_byte() -> None:
    for name in ("a.png", "baboon.png", "vtest.avi", "x" * 40):
        odd = hashlib.sha256(name.encode()).digest()[0] % 2
        assert side_of(name) == ("report" if odd else "selection")
        assert side_of(Path("/any/folder") / name) == side_of(name)  # the folder plays no part


def test_sides_partition_a_list_and_keep_its_order() -> None:
    names = [f"photo{i}.png" for i in range(40)]
    selection, report = on_side(names, "selection"), on_side(names, "report")
    assert sorted(selection + report) == sorted(names) and not set(selection) & set(report)
    assert selection == [n for n in names if n in selection]
    assert on_side(names, "all") == names
    with pytest.raises(InputError, match="unknown side"):
        on_side(names, "both")


def test_the_shared_photos_and_clips_fall_as_documented() -> None:
    """QUALITY.md and the split's docstring name these sides; a changed rule must change them too."""
    val = ["aero1.png", "apple.png", "baboon.png", "board.png", "building.png", "butterfly.png", "chicky_512.png"]
    val += ["fruits.png", "home.png", "leuvenA.png", "messi5.png", "rubberwhale1.png", "smarties.png"]
    val += ["squirrel_cls.png"]
    assert len(on_side(val, "report")) == len(on_side(val, "selection")) == 7
    assert [side_of(c) for c in ("vtest.avi", "box.mp4", "tree.avi")] == ["report", "selection", "selection"]


def test_training_validates_on_the_selection_side_only(tmp_path: Path) -> None:
    val = make_photos(tmp_path / "val", 6, 36, 1)
    config = TrainConfig(model="espcn", scale=2, data=str(val), val=str(val), out=str(tmp_path / "r.pt"))
    picked = val_images(config)
    assert picked and all(side_of(p) == "selection" for p in picked)
    assert len(val_images(TrainConfig(**{**config.__dict__, "val_side": "all"}))) == 6
    with pytest.raises(InputError, match="report is never picked on"):
        TrainConfig(**{**config.__dict__, "val_side": "report"}).check()


def test_a_folder_with_nothing_on_the_selection_side_is_a_clear_error(tmp_path: Path) -> None:
    val = make_photos(tmp_path / "val", 1, 36, 1)  # img0.png: on the report side
    assert side_of("img0.png") == "report"
    config = TrainConfig(model="espcn", scale=2, data=str(val), val=str(val), out=str(tmp_path / "r.pt"))
    with pytest.raises(InputError, match="--val-side all"):
        val_images(config)


def test_records_say_where_figures_come_from() -> None:
    record = SplitRecord("shared/data/val", "report", ("a.png", "b.png"))
    assert record.to_dict() == {
        "folder": "shared/data/val",
        "side": "report",
        "rule": RULE,
        "images": ["a.png", "b.png"],
    }
    assert describe(record.to_dict()) == "shared/data/val report half (2 photos)"
    assert describe(None, fallback_folder="shared/data/val") == "val (before the split)"
