"""Where vidsr keeps what it builds once and reuses: TensorRT engines, ONNX graphs, compiled kernels
and bytecode.  Nothing here imports PyTorch: :mod:`vidsr.bytecode` needs the folder before it does."""

from __future__ import annotations

import os
from pathlib import Path

ENGINE_DIR_ENV = "VIDSR_ENGINE_DIR"


def default_engine_dir() -> Path:
    """``$VIDSR_ENGINE_DIR``; else ``engines/`` of the checkout vidsr runs from; else the user cache.

    A checkout is recognised by ``pyproject.toml`` and ``engines/`` beside the package;
    an installed vidsr (site-packages, Docker) uses ``$XDG_CACHE_HOME/vidsr/engines``
    (``~/.cache/vidsr/engines``), never a folder inside site-packages.
    """
    env = os.environ.get(ENGINE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "engines").is_dir():
        return root / "engines"
    return user_cache() / "engines"


def user_cache() -> Path:
    """vidsr's folder in the user cache: ``$XDG_CACHE_HOME/vidsr`` (``~/.cache/vidsr``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vidsr"
