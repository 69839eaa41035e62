"""Which evaluation data may steer a model, and which only reports on it: one rule, in one place.

Checkpoint picking, recipe ranges and thresholds all look at figures; any photo they look at
stops being a fair test of the result.  So the evaluation photos (and the shared clips) are
split once, by a rule fixed before any figure was seen:

    a file is on the **report** side when the first byte of the SHA-256 of its file name
    (UTF-8, no folder) is odd, else on the **selection** side.

The rule reads nothing but the name, so a file never changes side when photos are added or
removed, and it cannot be tuned by looking at scores.  On ``shared/data/val`` it puts 7 photos on
each side; of the clips, ``vtest.avi`` reports and ``box.mp4`` and ``tree.avi`` select (a clip is
on one side whole, never split by frames).

``vidsr train`` validates and picks checkpoints on the selection side only; ``benchmarks/quality.py``
reports the report side (and prints the selection figures, labelled as such).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from vidsr.errors import InputError

Side = Literal["selection", "report"]
SIDES: tuple[Side, ...] = ("selection", "report")
# What weights metadata and QUALITY.md call this rule; a new rule gets a new name.
RULE = "sha256-name-odd-v1"
RULE_TEXT = "report side: the first byte of sha256(file name) is odd; selection side: even"

T = TypeVar("T", str, Path)


def side_of(name: str | Path) -> Side:
    """The side of the split a file falls on, by its name alone (any folder part is ignored)."""
    first = hashlib.sha256(Path(name).name.encode("utf-8")).digest()[0]
    return "report" if first % 2 else "selection"


def on_side(files: Iterable[T], side: Side | Literal["all"]) -> list[T]:
    """The files of ``files`` on ``side`` (``"all"``: every one), in their order."""
    if side == "all":
        return list(files)
    if side not in SIDES:
        raise InputError(f"unknown side {side!r}; choose from {', '.join(SIDES)} or all")
    return [f for f in files if side_of(f) == side]


@dataclass(frozen=True)
class SplitRecord:
    """What weights metadata records about the photos a set was picked or measured on."""

    folder: str  # the folder's last three parts ("shared/data/val")
    side: str  # "selection", "report" or "all"
    images: tuple[str, ...]
    rule: str = RULE

    def to_dict(self) -> dict:
        return {"folder": self.folder, "side": self.side, "rule": self.rule, "images": list(self.images)}

    def words(self) -> str:
        if self.side == "all":
            return f"{self.folder} (all {len(self.images)})"
        return f"{self.folder} {self.side} half ({len(self.images)} photos)"


def describe(record: dict | None, *, fallback_folder: str | None = None) -> str:
    """A metadata record (:meth:`SplitRecord.to_dict`) in words; a file that predates the split says so."""
    if not record:
        return f"{fallback_folder.rsplit('/', 1)[-1] if fallback_folder else 'val'} (before the split)"
    images = tuple(record.get("images", ()))
    return SplitRecord(record["folder"], record["side"], images, record.get("rule", RULE)).words()
