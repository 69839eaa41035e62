"""benchmarks/ubuntu_photos.py and ``--extra-photos ubuntu-wallpapers`` / ``ubuntu-flavours``: packages
checked against their SHA-256, the chosen photos shrunk and named by package, where the training loader
looks for them."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from conftest import load_script
from PIL import Image

from vidsr.errors import InputError
from vidsr.train import data as data_module


@pytest.fixture(scope="module")
def photos():
    yield load_script("ubuntu_photos", "ubuntu_photos_benchmark")
    sys.modules.pop("ubuntu_photos_benchmark", None)
    sys.modules.pop("debian_photos", None)


SOURCES = ("ubuntu-wallpapers", "ubuntu-flavours")


@pytest.mark.parametrize("source", SOURCES)
def test_the_list_names_each_photo_once_and_as_many_as_the_loader_expects(photos, source: str) -> None:
    listing = photos.chosen(source)
    names = [photos.photo_name(p, n) for p, entry in listing["packages"].items() for n in entry["photos"]]
    assert len(names) == len(set(names)) == data_module.FETCHED_SOURCES[source][0]  # no two land on one file
    for package, entry in listing["packages"].items():
        assert entry["file"].endswith(".deb") and f"/{package}_" in entry["file"]
        assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0


def test_a_download_is_kept_only_when_its_bytes_match(photos, tmp_path: Path) -> None:
    source = tmp_path / "pkg.deb"
    source.write_bytes(b"not really a package")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    debs = tmp_path / "debs"
    debs.mkdir()

    listed_in = photos.LISTS["ubuntu-wallpapers"]
    got = photos.download(source.as_uri(), debs / "pkg.deb", digest, listed_in)
    assert got.read_bytes() == source.read_bytes()
    source.write_bytes(b"changed upstream")  # the kept file is reused: nothing is downloaded again
    assert photos.download(source.as_uri(), debs / "pkg.deb", digest, listed_in).read_bytes() == b"not really a package"

    with pytest.raises(SystemExit, match=r"does not match its SHA-256 in ubuntu_photos\.json"):
        photos.download(source.as_uri(), debs / "other.deb", digest, listed_in)
    assert sorted(p.name for p in debs.iterdir()) == ["pkg.deb"]  # nothing half-checked left behind


@pytest.mark.parametrize("source", SOURCES)
def test_the_chosen_photos_land_shrunk_and_the_loader_takes_them(
    photos, source: str, tmp_path: Path, monkeypatch
) -> None:
    listing = photos.chosen(source)
    count = data_module.FETCHED_SOURCES[source][0]
    fetched: list[str] = []

    def fetch(package: str, entry: dict, archive: str, debs: Path, work: Path, listed_in: Path) -> Path:
        assert listed_in == photos.LISTS[source]  # a bad download names the list it was checked against
        fetched.append(package)
        root = work / package
        for name in entry["photos"]:
            path = root / listing["folder"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (3840, 2160) if len(fetched) == 1 else (64, 48), (40, 90, 160)).save(path)
        return root

    monkeypatch.setattr(photos, "fetch", fetch)
    monkeypatch.setenv(data_module.PHOTO_DIR_ENV, str(tmp_path / "photos"))
    with pytest.raises(InputError, match=rf"{source} needs its {count} photos .*\(0 there\).*ubuntu_photos.py"):
        data_module.load_extra(source)

    assert photos.main(["--source", source]) == 0

    folder = data_module.extra_photo_dir(source)
    assert fetched == list(listing["packages"])
    first = next(iter(listing["packages"]))
    name = listing["packages"][first]["photos"][0]
    with Image.open(folder / f"{first}--{Path(name).stem}.png") as image:
        assert image.size == (2560, 1440)  # shrunk to the long side, aspect kept
    assert len(data_module.load_extra(source)) == count
    assert not folder.with_name(f"{source}.partial").exists()
