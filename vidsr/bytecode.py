"""Bytecode kept across runs where Python cannot keep it beside the sources.

Python caches each module's compiled bytecode in ``__pycache__`` beside its source.  Where that
cache is missing and Python may not write it (a read-only site-packages, as in some GPU images,
or ``PYTHONDONTWRITEBYTECODE``, which many container images set), every start compiles the
Python of PyTorch, numpy and the rest afresh: 1.1 s more to ``import torch`` on a 2-core Xeon;
on the H200 host, whose PyTorch and numpy ship no bytecode, ``import torch`` took 3.4-4.5 s so and
about 1.4 s with it kept, and the CLI's warm start-up went from 5.2-6.0 s to 3.1-4.3 s (README,
GPU throughput).  There the CLI keeps that bytecode in ``pycache/`` of the engine folder, beside
the engines and compiled kernels, so only the first run compiles it.

Python's path finder is wrapped in its place: a source module whose bytecode Python has beside
it (or can write there) loads as always; only the others read and write the folder.  (A global
``sys.pycache_prefix`` would instead make Python recompile every package once, measured at 7 s
here.)  The files are Python's own format (magic number, source mtime and size), so an upgraded
package or Python is recompiled, never run stale.  Batch workers the CLI starts use the same
folder (through ``VIDSR_BYTECODE_FOLDER``).  PyTorch is the probe: where Python keeps its
bytecode, nothing changes.  ``VIDSR_BYTECODE_CACHE=0`` turns this off, as does an explicit
``PYTHONPYCACHEPREFIX``.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import sys
from importlib.machinery import PathFinder, SourceFileLoader
from pathlib import Path

from vidsr.cachedir import default_engine_dir

SWITCH_ENV = "VIDSR_BYTECODE_CACHE"
FOLDER_ENV = "VIDSR_BYTECODE_FOLDER"  # the CLI's folder, for its child processes (batch workers)
PROBE = "torch"  # the one import that matters: hundreds of modules, most of the start-up


def bytecode_folder(package: str = PROBE) -> Path | None:
    """Where to keep bytecode, or None where Python keeps ``package``'s itself (or it is absent)."""
    if sys.pycache_prefix is not None or os.environ.get(SWITCH_ENV) == "0":
        return None
    try:
        spec = importlib.util.find_spec(package)  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    if _python_keeps(spec.origin):
        return None  # there already, or this first import writes it, as always
    return default_engine_dir() / "pycache" / sys.implementation.cache_tag


def keep_bytecode(package: str = PROBE) -> Path | None:
    """Keep bytecode in the engine folder where :func:`bytecode_folder` says so; returns the
    folder.  Call before ``package`` is imported."""
    folder = bytecode_folder(package)
    if folder is None or package in sys.modules:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable engine folder: start as before, slower, not broken
    if _install(folder):
        os.environ[FOLDER_ENV] = str(folder)
        return folder
    return None


def inherit_bytecode_folder(package: str = PROBE) -> None:
    """In a process the CLI started (a spawned or Ray batch worker, which imports PyTorch while
    unpickling its task, before any of its own code runs): the CLI's folder.  ``vidsr/__init__``
    calls this, the first vidsr code any such process runs."""
    folder = os.environ.get(FOLDER_ENV)
    if folder and package not in sys.modules:
        _install(Path(folder))


def _install(folder: Path) -> bool:
    """Put a :class:`KeptBytecodeFinder` in the place of Python's path finder (once)."""
    for i, finder in enumerate(sys.meta_path):
        if isinstance(finder, KeptBytecodeFinder):
            return True
        if finder is PathFinder:
            sys.meta_path[i] = KeptBytecodeFinder(folder)
            return True
    return False  # an import system without the usual path finder: leave it be


class KeptBytecodeFinder:
    """Python's path finder, in its place among the import finders, whose source modules without
    bytecode Python can keep are loaded by a :class:`KeptBytecodeLoader`.  Everything else (what
    it finds, extension modules, installed distributions for ``importlib.metadata``) is the path
    finder's own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, name: str, path=None, target=None):
        spec = PathFinder.find_spec(name, path, target)
        if spec is not None and type(spec.loader) is SourceFileLoader and not _python_keeps(spec.loader.path):
            spec.loader = KeptBytecodeLoader(name, spec.loader.path, self.folder)
        return spec

    def __getattr__(self, name: str):
        return getattr(PathFinder, name)  # invalidate_caches, find_distributions, ...


class KeptBytecodeLoader(SourceFileLoader):
    """A source loader whose bytecode lives under ``folder`` (the source's absolute path mirrored
    there), in Python's own timestamp-checked ``.pyc`` format."""

    def __init__(self, fullname: str, path: str, folder: Path) -> None:
        super().__init__(fullname, path)
        self.folder = folder

    def get_code(self, fullname: str):
        source_path = self.get_filename(fullname)
        kept = self.folder / Path(source_path).resolve().relative_to("/").with_suffix(".pyc")
        stat = os.stat(source_path)
        header = (
            importlib.util.MAGIC_NUMBER
            + (0).to_bytes(4, "little")  # flags: timestamp-checked
            + (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
            + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        )
        try:
            data = kept.read_bytes()
            if data[:16] == header:
                return marshal.loads(data[16:])
        except (OSError, ValueError, EOFError, TypeError):
            pass  # absent, stale or damaged: compile afresh below
        code = self.source_to_code(self.get_data(source_path), source_path)
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            temp = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
            temp.write_bytes(header + marshal.dumps(code))
            os.replace(temp, kept)  # readers see the old file or the whole new one
        except OSError:
            pass  # a full or read-only disk costs speed, not the run
        return code


def _python_keeps(source: str) -> bool:
    """Whether Python has (or will write) ``source``'s bytecode beside it."""
    cached = Path(importlib.util.cache_from_source(source))
    return cached.is_file() or (not sys.dont_write_bytecode and _writable(cached.parent))


def _writable(folder: Path) -> bool:
    """Whether Python could create ``folder`` (a ``__pycache__``) or write into it."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)
