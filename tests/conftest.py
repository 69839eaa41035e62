"""Shared fixtures: where the real data lives, and tiny clips made on the spot with PyAV."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data"))


def load_script(name: str, module_name: str | None = None):
    """``benchmarks/<name>.py`` imported as a module (registered in ``sys.modules``, where dataclasses
    look their module up); the caller pops it when done."""
    import importlib.util
    import sys

    module_name = module_name or name
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def data_path(*parts: str) -> Path:
    """A file in the shared data set; the test is skipped when it is not on this machine."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set VIDSR_DATA)")
    return path


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """ONNX exports and engines the tests make go to a temporary folder, not the checkout's engines/."""
    folder = tmp_path_factory.mktemp("engines")
    previous = os.environ.get("VIDSR_ENGINE_DIR")
    os.environ["VIDSR_ENGINE_DIR"] = str(folder)  # subprocesses (vidsr batch workers) inherit it
    yield folder
    if previous is None:
        os.environ.pop("VIDSR_ENGINE_DIR", None)
    else:
        os.environ["VIDSR_ENGINE_DIR"] = previous


@pytest.fixture(autouse=True)
def vidsr_logger_restored():
    """Each test starts with the ``vidsr`` logger as the library leaves it: a CLI run in an earlier
    test sets it not to propagate (its warnings go to stderr), which would hide them from ``caplog``
    in later tests, or not, depending on the pytest release."""
    logger = logging.getLogger("vidsr")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = state


@pytest.fixture
def one_torch_thread():
    """Training runs compared bit for bit: one thread, restored afterwards for the other tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def plain_cpu(monkeypatch):
    """A CPU without VNNI or native bf16, whatever this one has: what auto picks is then the same everywhere."""
    from vidsr.backends import int8, openvino

    monkeypatch.setattr(int8, "cpu_has_vnni", lambda: False)
    monkeypatch.setattr(openvino, "native_bf16", lambda: False)


@pytest.fixture
def shared_data() -> Path:
    return data_path()


def make_clip(
    path: Path,
    *,
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    rate: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    pts_step: list[int] | None = None,
    colour: tuple[int, int, int, int] | None = None,  # colorspace, range, primaries, trc
    subtitles: bool = False,
) -> Path:
    """Write a small synthetic clip: moving gradients, optional sine audio, optional VFR pts.

    ``pts_step`` gives per-frame pts increments in 1/1000 s (variable frame rate).
    """
    import av

    width, height = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            vs.options = {"crf": "18", "preset": "ultrafast"}
        if pts_step is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
        if colour is not None:
            cc = vs.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = colour
        aus = None
        if audio:
            aus = out.add_stream("aac", rate=48000)
            aus.layout = "mono"
        sub = out.add_stream("mov_text") if subtitles else None
        yy, xx = np.mgrid[0:height, 0:width]
        pts = 0
        for i in range(frames):
            rgb = np.stack(
                [(xx * 4 + i * 7) % 256, (yy * 4 + i * 3) % 256, ((xx + yy) * 2 + i * 11) % 256], axis=-1
            ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts_step is not None:
                frame.pts = pts
                frame.time_base = Fraction(1, 1000)
                pts += pts_step[i % len(pts_step)]
            else:
                frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if aus is not None:
            seconds = frames / rate if pts_step is None else pts / 1000
            samples = int(seconds * 48000)
            t = np.arange(samples) / 48000
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            step = 1024
            for start in range(0, samples, step):
                chunk = wave[:, start : start + step]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                af.sample_rate = 48000
                af.pts = start
                for packet in aus.encode(af):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
        if sub is not None:
            pass  # stream exists; muxers accept an empty subtitle track
    return path


@pytest.fixture
def tiny_clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "tiny.mp4")


def cut_clip(src: Path, dst: Path, *, seconds: float) -> Path:
    """The first ``seconds`` of ``src``, every stream copied packet for packet (no re-encode),
    so the cut keeps the real codec, timestamps and audio.  Inputs start on a keyframe;
    the cut end needs none (a last B-frame may lose its reference: both sides see that)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = [s for s in inp.streams if s.type in ("video", "audio")]
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        for packet in inp.demux(*streams):
            if not packet.size or packet.dts is None or float(packet.dts * packet.time_base) >= seconds:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return dst


def decoded(path: Path) -> list:
    """Every decoded video frame of ``path``."""
    import av

    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def frame_times(path: Path) -> list[float]:
    """Presentation times of the video frames in seconds, sorted."""
    return sorted(float(f.pts * f.time_base) for f in decoded(path))


def make_photos(folder: Path, count: int, size: int, seed: int) -> Path:
    """``count`` small textured photos-in-miniature (PNG): smooth gradients, a hard edge and noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(count):
        f = rng.uniform(0.1, 0.4, 3)
        rgb = 128 + 90 * np.stack([np.sin(xx * f[0] + i), np.cos(yy * f[1]), np.sin((xx + yy) * f[2])], -1)
        rgb[size // 3 :, : size // 2] *= 0.5  # a hard edge
        rgb += rng.normal(0, 4, rgb.shape)
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


def tiny_kept_run(tmp_path: Path):
    """A 4-step ESPCN x2 run on two tiny photos that keeps its validated steps (``run.step2``, ``run.step4``
    beside ``run.pt``): what the scripts that export a run's picks, blends and soups start from."""
    from vidsr.train.loop import TrainConfig, train

    data = make_photos(tmp_path / "train", 2, 48, 0), make_photos(tmp_path / "val", 1, 36, 1)
    config = TrainConfig(
        model="espcn", scale=2, data=str(data[0]), val=str(data[1]), out=str(tmp_path / "run.pt"), steps=4, batch=2,
        patch=16, val_every=2, progress=False, val_side="all", keep_validated=True,
    )  # fmt: skip
    train(config)
    return config
