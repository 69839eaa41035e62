"""More training photographs, from Ubuntu's wallpaper packages: fetched once, from Ubuntu's archive, before a run.

The 51 photos of ``shared/data/train``, scikit-image and Debian's wallpaper packages (issue 24) raised the
x4 SRResNet by 0.17 dB on the report side over the 29 before them, the largest step any x4 change made.
Ubuntu's ``ubuntu-wallpapers-<release>`` packages (one per release, 9.10 to 25.10, all built by the 25.10
source) hold the winners of each release's photo contest, openly licensed (CC-BY-SA, CC-BY, CC0: each
package's ``copyright`` file).  Chosen by one rule, from contact sheets, before any of them was trained on:
a photograph taken with a camera (no renders, paintings, illustrations or logos; where a thumbnail left
it in doubt, left out), its long side at least 1600 pixels, and not the same photo as one in
``shared/data/train``, Debian's packages (``debian_photos.py``) or ``shared/data/val`` (checked by
correlating 24x16 thumbnails: no pair above 0.9 was the same photo).  274 photos, in
``ubuntu_photos.json`` with the packages' archive paths and SHA-256 (Ubuntu 25.10's index).

    python benchmarks/ubuntu_photos.py            # then: vidsr train ... --extra-photos ubuntu-wallpapers

downloads the 33 packages (about 680 MB; ``--debs DIR`` keeps them there and reuses them), checks each
against its SHA-256, and writes each chosen photo shrunk as ``debian_photos.py`` does, to the folder
``--extra-photos ubuntu-wallpapers`` reads, whole or not at all.  The photos are never committed or
shipped; this is a developer's step, as the Debian one.

``--source ubuntu-flavours`` does the same for the photographs of the Ubuntu flavours' wallpaper packages
(Budgie's, Cinnamon's, Edubuntu's, Kylin's, MATE's, Studio's and Xubuntu's community ones: CC-BY-SA,
CC-BY, CC0, each package's ``copyright`` file), chosen by the same rule from contact sheets of all 737
images of 72 packages before any was trained on: 469 photos of 57 packages (about 1.2 GB to download).  Any
candidate whose thumbnail correlated above 0.9 with a photo already used, or with another candidate (the
flavours repeat photos across releases), was left out unseen: losing a few distinct photos costs less
than training twice on one or on a held-out one (no candidate came above 0.76 with ``shared/data/val``).
Listed in ``ubuntu_flavour_photos.json`` (Ubuntu 25.10's index; paths under ``usr/share``: the flavours
keep them in several folders).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from debian_photos import photo_name, photo_parser, shrink, write_folder

from vidsr.train.data import extra_photo_dir

# source -> its list: the archive, the folder the photos sit in, and per package its pool file, SHA-256
# and chosen photos (paths under that folder)
LISTS = {
    "ubuntu-wallpapers": Path(__file__).with_name("ubuntu_photos.json"),
    "ubuntu-flavours": Path(__file__).with_name("ubuntu_flavour_photos.json"),
}


def chosen(source: str = "ubuntu-wallpapers") -> dict:
    """The list of ``source`` (a key of ``LISTS``), as its JSON file holds it."""
    return json.loads(LISTS[source].read_text())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: str, listed_in: Path) -> Path:
    """``url`` at ``dest`` unless a file with that SHA-256 is there already; refused if the bytes differ
    from the SHA-256 that ``listed_in`` (the list's JSON file) gives."""
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    partial = dest.with_name(dest.name + ".partial")
    with urllib.request.urlopen(url, timeout=120) as response, partial.open("wb") as f:
        shutil.copyfileobj(response, f, 1 << 20)
    if sha256_of(partial) != sha256:
        partial.unlink()
        raise SystemExit(f"Error: {url} does not match its SHA-256 in {listed_in.name}")
    return partial.replace(dest)


def fetch(package: str, entry: dict, archive: str, debs: Path, work: Path, listed_in: Path) -> Path:
    """Download ``package`` into ``debs`` and unpack it under ``work``: the unpacked root."""
    deb = download(archive + entry["file"], debs / Path(entry["file"]).name, entry["sha256"], listed_in)
    root = work / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = photo_parser(__doc__.splitlines()[0])
    parser.add_argument("--debs", type=Path, help="keep the downloaded packages here, and reuse those already here")
    parser.add_argument("--source", choices=list(LISTS), default="ubuntu-wallpapers", help="which list to fetch")
    args = parser.parse_args(argv)
    listing = chosen(args.source)

    def fill(partial: Path, work: Path) -> None:
        folder = args.debs or work
        folder.mkdir(parents=True, exist_ok=True)
        for package, entry in listing["packages"].items():
            root = fetch(package, entry, listing["archive"], folder, work, LISTS[args.source])
            for name in entry["photos"]:
                member = f"{listing['folder']}/{name}"
                shrink(root / member, partial / photo_name(package, member))
            shutil.rmtree(root)  # unpacked all at once, the packages would take 1-2 GB

    return write_folder(args.out or extra_photo_dir(args.source), args.base, fill)


if __name__ == "__main__":
    sys.exit(main())
