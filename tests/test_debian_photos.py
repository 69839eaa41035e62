"""benchmarks/debian_photos.py and ``--extra-photos debian-wallpapers``: the photos land shrunk, named by
their package, whole or not at all, where the training loader looks for them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import load_script
from PIL import Image

from vidsr.errors import InputError
from vidsr.train import data as data_module


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


@pytest.fixture
def fake_apt(photos, monkeypatch) -> list[str]:
    """``fetch`` unpacking made-up packages with the chosen files (no apt): the packages asked for."""
    sizes = {"lomiri-wallpapers-16.04": (5312, 2988), "plasma-workspace-wallpapers": (2560, 1600)}
    fetched: list[str] = []

    def fetch(package: str, work: Path) -> Path:
        fetched.append(package)
        return fake_package(work / package, photos.CHOSEN[package], sizes.get(package, (300, 400)))

    monkeypatch.setattr(photos, "fetch", fetch)
    return fetched


def test_every_chosen_photo_lands_once_shrunk_beside_the_base_folder(photos, fake_apt, tmp_path) -> None:
    base = tmp_path / "train"
    base.mkdir()
    Image.new("RGB", (64, 48)).save(base / "aqua.jpg")
    (base / "notes.txt").write_text("not an image")
    out = tmp_path / "out"

    assert photos.main([str(out), "--with", str(base)]) == 0

    chosen = sum(len(members) for members in photos.CHOSEN.values())
    written = sorted(p.name for p in out.iterdir())
    assert fake_apt == list(photos.CHOSEN)
    assert len(written) == chosen + 1 and "aqua.jpg" in written and "notes.txt" not in written
    for name in written:
        with Image.open(out / name) as image:
            assert max(image.size) <= photos.LONG_SIDE
    with Image.open(out / "lomiri-wallpapers-16.04--Bridge_by_Sander_Klootwijk.png") as image:
        assert image.size == (2560, 1440)  # aspect kept
    with Image.open(out / "plasma-workspace-wallpapers--Autumn.png") as image:
        assert image.size == (2560, 1600)  # already small enough: untouched size


def test_the_training_loader_takes_the_fetched_folder_whole_or_refuses(photos, fake_apt, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(data_module.PHOTO_DIR_ENV, str(tmp_path / "photos"))
    with pytest.raises(InputError, match=r"debian-wallpapers needs its 22 photos .*\(0 there\).*debian_photos.py"):
        data_module.load_extra("debian-wallpapers")

    assert photos.main([]) == 0
    folder = data_module.extra_photo_dir("debian-wallpapers")
    assert folder == tmp_path / "photos" / "debian-wallpapers"
    assert not folder.with_name("debian-wallpapers.partial").exists()
    images = data_module.load_extra("debian-wallpapers")
    assert len(images) == data_module.DEBIAN_PHOTOS == sum(len(m) for m in photos.CHOSEN.values())
    assert all(im.dtype == torch.uint8 and im.shape[0] == 3 for im in images)

    next(folder.iterdir()).unlink()  # a folder missing one would train on another set without saying so
    with pytest.raises(InputError, match=r"\(21 there\)"):
        data_module.load_extra("debian-wallpapers")
