"""More training photographs, from Debian's wallpaper packages: fetched once, by apt, before a run.

``shared/data/train`` is 20 wallpapers of MATE's and KDE Plasma's Debian packages; issue 24's x4 runs
stopped improving after a few thousand steps on them and scikit-image's 9.  The same packages and
Lomiri's (Ubuntu Touch's) hold 22 more photographs, openly licensed (CC0, CC-BY, CC-BY-SA, GPL-2+: each
package's ``copyright`` file).  Chosen by one rule, from a contact sheet, before any of them was trained
on: a photograph taken with a camera (no renders, paintings or illustrations) and not already in
``shared/data/train``.  Nothing of the validation folder comes from these packages.

    python benchmarks/debian_photos.py            # then: vidsr train ... --extra-photos debian-wallpapers

writes each chosen photo as PNG, its long side at most 2560 pixels (Pillow's Lanczos, as large as the
shipped training photos; the 4000-6000 pixel camera originals are soft at pixel level), to the folder
``--extra-photos debian-wallpapers`` reads (``vidsr.train.data.extra_photo_dir``: ``$VIDSR_PHOTO_DIR``
or ``~/.cache/vidsr/photos``), whole or not at all.  ``OUT --with DIR`` writes them to OUT beside a
copy of DIR's images instead: one folder for ``vidsr train --data`` (the first run on them was made so).
The photos are never committed or shipped; this is a developer's step (apt-get as an ordinary command).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from vidsr.evaluate import IMAGE_SUFFIXES
from vidsr.train.data import extra_photo_dir

LONG_SIDE = 2560

# package -> the chosen files, as dpkg-deb unpacks them
CHOSEN: dict[str, tuple[str, ...]] = {
    "lomiri-wallpapers-16.04": tuple(
        f"usr/share/backgrounds/{name}.jpg"
        for name in (
            "Bridge_by_Sander_Klootwijk",
            "Dragonfly_by_Bolly",
            "Picture_0B_by_freespace",
            "Picture_1A_by_freespace",
            "Wine_by_Jakkub_Mede",
            "aitzgorri_by_Aitzol_Berasategi",
            "analogpattern_by_Peter_Nerlich",
            "free_by_Peter_Nerlich",
            "friends_by_Aitzol_Berasategi",
            "greentock_by_Peter_Nerlich",
            "life_by_Aitzol_Berasategi",
            "picosdeeuropa_by_Aitzol_Berasategi",
            "seeding_by_Clements_Engelhardt",
            "sunset_by_Aitzol_Berasategi",
        )
    ),
    "lomiri-wallpapers-20.04": ("usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",),
    "mate-backgrounds": ("usr/share/backgrounds/mate/nature/RainDrops.jpg",),
    "plasma-workspace-wallpapers": tuple(
        f"usr/share/wallpapers/{name}/contents/images/2560x1600.jpg"
        for name in ("Autumn", "EveningGlow", "FallenLeaf", "Grey", "OneStandsOut", "Path")
    ),
}


def photo_name(package: str, member: str) -> str:
    """A file name that says where the photo came from (the Plasma ones are all called 2560x1600)."""
    parts = Path(member).parts
    stem = parts[parts.index("contents") - 1] if "contents" in parts else Path(member).stem
    return f"{package}--{stem}.png"


def fetch(package: str, work: Path) -> Path:
    """``apt-get download`` the package into ``work`` and unpack it there; the unpacked root."""
    subprocess.run(["apt-get", "download", package], cwd=work, check=True, stdout=subprocess.DEVNULL)
    deb = next(work.glob(f"{package}_*.deb"))
    root = work / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def shrink(src: Path, dest: Path) -> None:
    with Image.open(src) as image:
        image = image.convert("RGB")
        factor = LONG_SIDE / max(image.size)
        if factor < 1:
            size = (round(image.width * factor), round(image.height * factor))
            image = image.resize(size, Image.Resampling.LANCZOS)
        image.save(dest)


def photo_parser(description: str) -> argparse.ArgumentParser:
    """The options every photo-fetching script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("out", type=Path, nargs="?", help="folder to write the photos to [the source's cache folder]")
    parser.add_argument("--with", dest="base", type=Path, help="also copy this folder's images into OUT")
    return parser


def write_folder(out: Path, base: Path | None, fill: Callable[[Path, Path], None]) -> int:
    """Write a photo folder whole or not at all: ``fill(partial, work)`` writes the chosen photos into
    ``partial`` (``work``: a scratch folder), ``base``'s images join them, and ``partial`` becomes ``out``."""
    partial = out.with_name(out.name + ".partial")  # renamed into place once whole
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        fill(partial, Path(tmp))
    if base:
        for path in sorted(base.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                shutil.copy2(path, partial / path.name)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    print(f"{len(list(out.iterdir()))} photos in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = photo_parser(__doc__.splitlines()[0]).parse_args(argv)

    def fill(partial: Path, work: Path) -> None:
        for package, members in CHOSEN.items():
            root = fetch(package, work)
            for member in members:
                shrink(root / member, partial / photo_name(package, member))

    return write_folder(args.out or extra_photo_dir("debian-wallpapers"), args.base, fill)


if __name__ == "__main__":
    sys.exit(main())
