"""Training pairs made on the fly: random HR crops, flips and 90° rotations, LR by a named degradation recipe.

With ``--hr-zoom`` a crop is taken wider and shrunk to the patch: the photo at a random smaller size.

``protocol``: the evaluation protocol's downscaling (:func:`vidsr.evaluate.bicubic_down`:
Pillow's antialiased bicubic, 8-bit), batched, so the network learns to invert the
degradation the literature measures.  Any other recipe of :mod:`vidsr.degrade`
(``robust-v1``) degrades each patch its own random way.  All randomness comes from
one numpy generator whose state is saved in checkpoints, so a resumed run draws
the same patches as an uninterrupted one.

:class:`ParallelPatchSampler` draws the batches ahead in worker processes instead (a GPU steps
faster than one core degrades patches): batch *k* comes from its own generator, seeded by
(seed, *k*), so the batches are the same for any number of workers and a resumed run needs only
the count of batches drawn.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import select
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsr.cachedir import user_cache
from vidsr.colour import BT601_STUDIO, rgb_to_luma
from vidsr.degrade import recipe
from vidsr.errors import InputError
from vidsr.evaluate import IMAGE_SUFFIXES, bicubic_down, list_images, load_rgb
from vidsr.resample import resize


def load_folder(folder: str | Path) -> list[torch.Tensor]:
    """Every image of ``folder`` as a uint8 ``(3, H, W)`` tensor (uint8 keeps 20 photos at ~100 MB)."""
    return [load_rgb(p).mul_(255.0).round_().to(torch.uint8) for p in list_images(folder)]


# Photographs and textures that scikit-image ships inside its wheel (nothing is downloaded), each
# CC0 or public domain by skimage.data's docstrings: camera (Lav Varshney, CC0), astronaut (NASA),
# chelsea (Stefan van der Walt, CC0), coffee (Rachel Michetti, CC0), rocket (SpaceX, public domain),
# brick and gravel (CC0Textures), grass (CC0), coins (Brooklyn Museum, no known restrictions).
# They are small, sharp and pixel-exact where the 20 training photos are large JPEGs; no held-out
# set is drawn from scikit-image.
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "rocket")
# Photographs of registry packages that a developer's script fetches into :func:`extra_photo_dir` before a
# run (vidsr itself fetches nothing): how many each source holds, and the script.  Debian's wallpaper
# packages (Lomiri, MATE, Plasma: CC0, CC-BY, CC-BY-SA, GPL-2+) with apt; Ubuntu's (its releases' photo
# contests: CC-BY-SA, CC-BY, CC0) and its flavours' (Budgie, Cinnamon, Edubuntu, Kylin, MATE, Studio,
# Xubuntu) from Ubuntu's archive.
FETCHED_SOURCES = {
    "debian-wallpapers": (22, "python benchmarks/debian_photos.py"),
    "ubuntu-wallpapers": (274, "python benchmarks/ubuntu_photos.py"),
    "ubuntu-flavours": (469, "python benchmarks/ubuntu_photos.py --source ubuntu-flavours"),
}
DEBIAN_PHOTOS = FETCHED_SOURCES["debian-wallpapers"][0]
EXTRA_SOURCES = ("scikit-image", *FETCHED_SOURCES)
PHOTO_DIR_ENV = "VIDSR_PHOTO_DIR"


def extra_photo_dir(source: str) -> Path:
    """Where a fetched photo source lives: ``$VIDSR_PHOTO_DIR/<source>``, else the user cache's."""
    root = os.environ.get(PHOTO_DIR_ENV)
    return (Path(root).expanduser() if root else user_cache() / "photos") / source


def load_extra(source: str) -> list[torch.Tensor]:
    """The images of a photo source named by ``source`` as uint8 ``(3, H, W)`` tensors."""
    if source not in EXTRA_SOURCES:
        raise InputError(f"unknown extra photo source {source!r}; choose from {', '.join(EXTRA_SOURCES)}")
    if source in FETCHED_SOURCES:
        return _load_fetched(source, *FETCHED_SOURCES[source])
    try:
        import skimage.data
    except ImportError:
        raise InputError("--extra-photos scikit-image needs scikit-image: pip install scikit-image") from None
    images = []
    for name in SKIMAGE_PHOTOS:
        pixels = np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)
        rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]
        images.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous())
    return images


def _load_fetched(source: str, count: int, how: str) -> list[torch.Tensor]:
    folder = extra_photo_dir(source)
    found = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()) if folder.is_dir() else 0
    if found != count:  # a partial or stale folder would change the training set without saying so
        raise InputError(f"--extra-photos {source} needs its {count} photos in {folder} ({found} there): {how}")
    return load_folder(folder)


PACK_BYTES = 1 << 30  # the most one shared buffer of a sampler's photos holds on its way to a worker


def _pack(images: list[torch.Tensor]) -> list[tuple[torch.Tensor, list[torch.Size]]]:
    """``images`` as flat uint8 buffers of at most :data:`PACK_BYTES` (one image may exceed it) and shapes."""
    packs: list[list[torch.Tensor]] = [[]]
    size = 0  # bytes in the last pack
    for im in images:
        if packs[-1] and size + im.numel() > PACK_BYTES:
            packs.append([])
            size = 0
        packs[-1].append(im)
        size += im.numel()
    return [(torch.cat([im.reshape(-1) for im in pack]), [im.shape for im in pack]) for pack in packs]


def _unpack(packs: list[tuple[torch.Tensor, list[torch.Size]]]) -> list[torch.Tensor]:
    """The images of :func:`_pack`'s buffers, as views of them."""
    images = []
    for flat, shapes in packs:
        sizes = [int(np.prod(shape)) for shape in shapes]
        images += [part.view(shape) for part, shape in zip(flat.split(sizes), shapes, strict=True)]
    return images


class PatchSampler:
    """Draws batches of (LR, HR) patch pairs from images held in memory.

    ``colour`` is ``"rgb"`` (3 channels) or ``"y"`` (BT.601 studio luma, the
    channel ESPCN sees at inference).  Y is taken after degrading the RGB patch,
    as the evaluation does.
    """

    def __init__(
        self,
        images: list[torch.Tensor],
        *,
        scale: int,
        patch: int,
        colour: str,
        seed: int,
        degradations: str = "protocol",
        zoom: float = 1.0,
    ) -> None:
        if patch % scale:
            raise InputError(f"the HR patch size ({patch}) must be a multiple of the scale ({scale})")
        small = [tuple(im.shape[-2:]) for im in images if min(im.shape[-2:]) < patch]
        if small or not images:
            raise InputError(f"training images must be at least {patch}x{patch} pixels (found {small or 'none'})")
        self.images = images
        self.scale = scale
        self.patch = patch
        self.colour = colour
        self.degrade = recipe(degradations)
        self.zoom = zoom
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.drawn = 0  # batches drawn: the sampler's position, saved with its generator state

    def __getstate__(self) -> dict[str, Any]:
        # A batch worker receives the sampler pickled, and torch shares each tensor with it through a file
        # descriptor of its own: a few hundred photos passed the forkserver's limit ("too many fds").  They
        # go as a few flat buffers and their shapes, kept with the sampler (the worker maps them after the
        # pickling returns: buffers made for the pickle alone were freed by then), the photos here
        # becoming views of them so that they are held once.
        if getattr(self, "_packs", None) is None:
            self._packs = _pack(self.images)
            self.images = _unpack(self._packs)
        return {**self.__dict__, "images": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "images": _unpack(state["_packs"])})

    def _crop(self, rng: np.random.Generator) -> torch.Tensor:
        im = self.images[int(rng.integers(len(self.images)))]
        h, w = im.shape[-2:]
        # With zoom < 1 the crop shows the photo at a random size between zoom and 1x: a wider crop,
        # downscaled with antialiasing.  Smaller copies of a photo are new content (other scales of its
        # textures) and sharper per pixel than a camera JPEG.  Off (1.0), no number is drawn, so the
        # runs before the option draw the same patches.
        side = self.patch
        if self.zoom < 1.0:
            side = min(round(self.patch / rng.uniform(self.zoom, 1.0)), h, w)
        top = int(rng.integers(h - side + 1))
        left = int(rng.integers(w - side + 1))
        crop = im[:, top : top + side, left : left + side]
        if side != self.patch:  # antialiased bicubic, back on the uint8 grid the photos are held on
            crop = resize(crop.float(), (self.patch, self.patch)).clamp_(0.0, 255.0).round_().to(torch.uint8)
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        return torch.rot90(crop, int(rng.integers(4)), dims=(-2, -1))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) float tensors in [0, 1]: ``(size, C, patch/scale, patch/scale)`` and ``(size, C, patch, patch)``."""
        pair = self.draw(self.rng, size)
        self.drawn += 1
        return pair

    def draw(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch, every random choice taken from ``rng``."""
        hr = torch.stack([self._crop(rng) for _ in range(size)]).float().div_(255.0)
        if self.degrade is None:
            lr = bicubic_down(hr, self.scale)
        else:
            lr = torch.stack([self.degrade(patch, self.scale, rng) for patch in hr])
        if self.colour == "y":
            return rgb_to_luma(lr, BT601_STUDIO), rgb_to_luma(hr, BT601_STUDIO)
        return lr, hr

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rng" not in state:
            raise InputError("this checkpoint drew its batches in worker processes: resume it with --data-workers")
        self.rng.bit_generator.state = state["rng"]
        self.drawn = int(state["drawn"])

    def close(self) -> None:
        """Nothing to stop: batches are drawn in this process."""


# Workers start in a fresh interpreter (a fork server's, else spawned), never forked from the training
# process: a fork copies libraries mid-use.  PyAV 19's scaler keeps slice threads, which do not exist in a
# forked child, and the worker hung for good in its first H.264 degradation.
WORKER_START = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
BATCH_TIMEOUT_S = 300.0  # a batch takes milliseconds; a worker this late is stuck: fail with a clear error


def _init_worker(trainer: int, worker_id: int) -> None:
    """A batch worker's ``worker_init_fn``: it ends with the trainer and keeps quiet about its stop."""
    _end_with_trainer(trainer)
    sys.excepthook = _quiet_about_lost_trainer


def _end_with_trainer(trainer: int) -> None:
    """The worker ends when the training process does, even by SIGKILL.

    A fork server's child is not the trainer's: the DataLoader's own watchdog and ``PR_SET_PDEATHSIG``
    watch the fork server, which in turn lives as long as any of its children, so a killed trainer left
    its worker drawing batches for nobody.  A thread here waits on the trainer's pidfd (Linux 5.3+), else
    polls its pid once a second (POSIX only: on Windows ``os.kill(pid, 0)`` would terminate it).
    """
    if os.name != "posix":
        return

    def watch() -> None:
        try:
            pidfd = os.pidfd_open(trainer)
        except (AttributeError, OSError):  # no pidfd here (or already gone: the poll below says which)
            from vidsr.media.sink import pid_alive

            while pid_alive(trainer):
                time.sleep(1.0)
        else:
            select.select([pidfd], [], [])  # readable once the trainer has exited
        os._exit(1)

    threading.Thread(target=watch, name="vidsr-trainer-watch", daemon=True).start()


def _quiet_about_lost_trainer(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    """A worker's ``sys.excepthook``: a connection the stopping trainer closed is not worth a traceback.

    Batches reach the trainer as file descriptors handed over by multiprocessing's resource_sharer
    thread, which reports a failed hand-over through ``sys.excepthook``.  When the trainer stops
    (Ctrl-C, SIGTERM) mid-hand-over, that is a ConnectionResetError or BrokenPipeError printed under
    vidsr's own ``Error:`` line, or an EOFError when it goes while the listener's handshake reads from
    it.  The worker's batch errors never come here (the DataLoader sends them to the trainer), and any
    other error still prints in full.
    """
    if issubclass(kind, (ConnectionResetError, BrokenPipeError, EOFError)):
        return
    sys.__excepthook__(kind, error, trace)


def batch_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of batch ``index`` of a run seeded ``seed``: whichever process draws it, in any order."""
    return np.random.default_rng([seed, index])


class _IndexedBatches(torch.utils.data.Dataset):
    """Batch ``index`` of a run, drawn by ``sampler`` from :func:`batch_rng` (in a worker process)."""

    def __init__(self, sampler: PatchSampler, size: int) -> None:
        self.sampler, self.size = sampler, size

    def __len__(self) -> int:  # endless in practice: batches are asked for by index, from a resumed position on
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sampler.draw(batch_rng(self.sampler.seed, index), self.size)


class ParallelPatchSampler:
    """:class:`PatchSampler`'s batches drawn ahead by ``workers`` processes (a ``torch`` DataLoader).

    Batch *k* is drawn from :func:`batch_rng` (the sampler's seed, *k*), so the batches do not depend on the number of
    workers, and the state is the count drawn.  ``pin_memory`` (for a CUDA run) pages the batches in
    locked memory so their upload does not wait for a copy.  The workers start at the first batch asked
    for and stop at :meth:`close` (or when the sampler is dropped).
    """

    def __init__(self, sampler: PatchSampler, *, size: int, workers: int, pin_memory: bool = False) -> None:
        if workers < 1:
            raise InputError(f"--data-workers {workers}: at least 1 (0 draws in the training process)")
        self.batches = _IndexedBatches(sampler, size)
        self.size, self.workers, self.pin_memory = size, workers, pin_memory
        self.drawn = 0
        self._iterator: Any = None

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        if size != self.size:
            raise ValueError(f"this sampler draws batches of {self.size}, not {size}")
        if self._iterator is None:
            loader = torch.utils.data.DataLoader(
                self.batches,
                batch_size=None,  # each item is a whole batch
                sampler=range(self.drawn, len(self.batches)),
                num_workers=self.workers,
                pin_memory=self.pin_memory,
                prefetch_factor=4,
                multiprocessing_context=WORKER_START,
                worker_init_fn=functools.partial(_init_worker, os.getpid()),
                timeout=BATCH_TIMEOUT_S,
            )
            self._iterator = iter(loader)
        pair = next(self._iterator)
        self.drawn += 1
        return pair

    def state_dict(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "per_batch_seed": True}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state.get("per_batch_seed"):
            raise InputError("this checkpoint drew its batches in the training process: resume with --data-workers 0")
        self.close()
        self.drawn = int(state["drawn"])

    def close(self) -> None:
        self._iterator = None  # the DataLoader's iterator shuts its workers down when dropped
