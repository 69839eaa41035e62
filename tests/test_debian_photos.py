"""benchmarks/debian_photos.py: the extra training photos land shrunk, named by source, beside --with's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import load_script
from PIL import Image


@pytest.fixture(scope="module")
def photos():
    yield load_script("debian_photos", "debian_photos_benchmark")
    sys.modules.pop("debian_photos_benchmark", None)


def fake_package(root: Path, members: tuple[str, ...], size: tuple[int, int]) -> Path:
    for member in members:
        path = root / member
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (40, 90, 160)).save(path)
    return root


def test_every_chosen_photo_lands_once_shrunk_beside_the_base_folder(photos, tmp_path, monkeypatch) -> None:
    sizes = {"lomiri-wallpapers-16.04": (5312, 2988), "plasma-workspace-wallpapers": (2560, 1600)}
    fetched = []

    def fetch(package: str, work: Path) -> Path:
        fetched.append(package)
        return fake_package(work / package, photos.CHOSEN[package], sizes.get(package, (3000, 4000)))

    monkeypatch.setattr(photos, "fetch", fetch)
    base = tmp_path / "train"
    base.mkdir()
    Image.new("RGB", (64, 48)).save(base / "aqua.jpg")
    (base / "notes.txt").write_text("not an image")
    out = tmp_path / "out"

    assert photos.main([str(out), "--with", str(base)]) == 0

    chosen = sum(len(members) for members in photos.CHOSEN.values())
    written = sorted(p.name for p in out.iterdir())
    assert fetched == list(photos.CHOSEN)
    assert len(written) == chosen + 1 and "aqua.jpg" in written and "notes.txt" not in written
    for name in written:
        with Image.open(out / name) as image:
            assert max(image.size) <= photos.LONG_SIDE
    with Image.open(out / "lomiri-wallpapers-16.04--Bridge_by_Sander_Klootwijk.png") as image:
        assert image.size == (2560, 1440)  # aspect kept
    with Image.open(out / "plasma-workspace-wallpapers--Autumn.png") as image:
        assert image.size == (2560, 1600)  # already small enough: untouched size
