"""``--executor ray`` on a local Ray with 2 CPUs gives the same outputs as the local executor."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import data_path
from test_batch_support import clip, decoded, reencode_cut

from vidsr.batch import BatchOptions, UpscaleSettings, run_batch
from vidsr.batch.options import RuntimeSettings
from vidsr.media.sink import EncodeOptions

pytestmark = pytest.mark.ray


def _options(out: Path, **kw) -> BatchOptions:
    return BatchOptions(
        out_dir=out,
        upscale=UpscaleSettings("bicubic", 2, None, EncodeOptions(preset="ultrafast", crf=0)),
        runtime=RuntimeSettings(device="cpu", threads=1),
        progress=False,
        **kw,
    )


def test_ray_matches_local(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'vidsr[ray]'")
    folder = tmp_path / "in"
    clip(folder / "a.mp4", frames=8, audio=True)
    (folder / "sub").mkdir()
    reencode_cut(data_path("video", "box.mp4"), folder / "sub" / "b.mkv", frames=30, size=(96, 64), gop=10)
    (folder / "broken.mp4").write_text("not a video")
    local = run_batch([str(folder)], _options(tmp_path / "local"))
    # Segments too: pieces of b.mkv go out as separate Ray tasks and are joined by the coordinator.
    remote = run_batch([str(folder)], _options(tmp_path / "ray", executor="ray", jobs=2, segment_seconds=0.4))
    assert remote.executor.startswith("Ray (2 CPUs, 0 GPUs)")
    assert [(f.key, f.state, f.error) for f in remote.files] == [(f.key, f.state, f.error) for f in local.files]
    assert remote.files[2].segments and remote.files[2].segments > 1
    for key in ("a.mp4", "sub/b.mkv"):
        assert decoded(tmp_path / "ray" / key) == decoded(tmp_path / "local" / key), key
