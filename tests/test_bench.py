"""The benchmark library and ``vidsr bench`` on a tiny clip (stages, ratios, table, JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
import torch
from click.testing import CliRunner
from conftest import make_clip

from vidsr.bench import (
    STAGES,
    BenchConfig,
    BenchRow,
    add_ratios,
    available_backends,
    bench_input,
    count_frames,
    load_for_bench,
    machine_info,
    make_bench_input,
    markdown_table,
)
from vidsr.models.srresnet import srresnet
from vidsr.models.weights import save_weights, shipped_sets

ROOT = Path(__file__).resolve().parents[1]


def row(stage: str, fps: float, model: str = "espcn") -> BenchRow:
    return BenchRow(stage, "clip", 64, 48, model, 2, "torch-cpu", "float32", "random", 10, 10 / fps, fps)


def test_ratios_pair_rows_by_input_scale_and_model():
    rows = [row("io_ceiling", 100.0, "none"), row("naive", 5.0), row("pipeline", 50.0), row("naive", 1.0, "srresnet")]
    rows.append(row("pipeline", 4.0, "srresnet"))
    add_ratios(rows)
    assert rows[2].ratio_vs_io_ceiling == 0.5 and rows[2].ratio_vs_naive == 10.0
    assert rows[4].ratio_vs_naive == 4.0 and rows[4].ratio_vs_io_ceiling == 0.04
    assert rows[0].ratio_vs_io_ceiling is None


def test_markdown_table_has_one_line_per_row():
    table = markdown_table([row("io_ceiling", 100.0, "none"), row("pipeline", 50.0)])
    lines = table.splitlines()
    assert len(lines) == 4
    assert "end-to-end fps" in lines[0] and "model-only fps" in lines[0]
    assert lines[3].startswith("| pipeline | clip (64x48) | espcn | 2 |")


def test_random_weights_when_none_ship(tmp_path, monkeypatch):
    from vidsr.models import weights as weights_module

    monkeypatch.setattr(weights_module, "SHIPPED_DIR", tmp_path / "none")
    loaded, weights = load_for_bench("srresnet", 2)
    assert weights == "random" and loaded.weights is None and loaded.metadata == {"weights": "random"}
    assert loaded.spec.name == "srresnet" and not loaded.module.training
    assert not any(p.requires_grad for p in loaded.module.parameters())
    # Seeded: two benchmark runs time the same network.
    again, _ = load_for_bench("srresnet", 2)
    assert all(torch.equal(v, again.module.state_dict()[k]) for k, v in loaded.module.state_dict().items())
    # Weights given: those, and said so.
    given = tmp_path / "w.safetensors"
    trained = srresnet(scale=2, blocks=16)
    save_weights(trained, given, {"architecture": "srresnet", "scale": 2})
    loaded, weights = load_for_bench("srresnet", 2, given)
    assert weights == "given" and loaded.weights == given
    assert all(torch.equal(v, loaded.module.state_dict()[k]) for k, v in trained.state_dict().items())
    assert load_for_bench("bicubic", 2)[1] == "-"


def test_shipped_weights_are_named_by_set():
    """Rows say which shipped set ran, and whether it was the default one."""
    loaded, weights = load_for_bench("espcn", 2)
    assert weights == f"{loaded.weights.name.split('.')[1]} (default)"
    assert load_for_bench("espcn", 2, "paper")[1] == "paper"
    if {"large", "cascade"} <= set(shipped_sets("srresnet", 4)):  # a mean of sets: named as asked
        assert load_for_bench("srresnet", 4, "large+cascade")[1] == "large+cascade"


def test_machine_info_names_the_cpu_and_torch():
    info = machine_info()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        if names:
            assert info["cpu"] == names[0]
    assert info["cores"] == os.cpu_count()
    assert info["torch"] == torch.__version__ and info["pyav"] == av.__version__
    assert info["python"] == sys.version.split()[0]
    assert info["ffmpeg"] == "libavcodec " + ".".join(map(str, av.library_versions["libavcodec"]))
    assert info["gpu"] is None or torch.cuda.is_available()


def test_make_bench_input_resamples_and_trims(tmp_path):
    src = make_clip(tmp_path / "src.mp4", frames=6, size=(64, 48))
    small = make_bench_input(src, tmp_path / "small.mp4", 4, (32, 18))
    with av.open(str(small)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.width, cc.height) == (32, 18)
    assert count_frames(small) == 4
    trimmed = make_bench_input(src, tmp_path / "trim.mp4", 3, None)
    assert count_frames(trimmed) == 3


def test_make_bench_input_times_frames_at_the_source_rate(tmp_path):
    """A source whose clock is not 1/rate (box.mp4's is microseconds): each resampled frame keeps its
    own time (stamping the frame number in the decoder's clock put every frame at 0)."""
    src = make_clip(tmp_path / "src.mp4", frames=6, size=(64, 48), pts_step=[40] * 6)
    small = make_bench_input(src, tmp_path / "small.mp4", 5, (32, 18))
    with av.open(str(small)) as c:
        video = c.streams.video[0]
        times = sorted(float(f.pts * f.time_base) for f in c.decode(video))
    assert times == pytest.approx([i / 25 for i in range(5)], abs=1e-3)


def test_bench_input_runs_every_stage(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=3, size=(32, 24))
    cfg = BenchConfig(models=("espcn",), scales=(2,), device="cpu", model_iters=1)
    rows = bench_input(clip, cfg, out_dir=tmp_path / "work")
    stages = [r.stage for r in rows]
    peer = "opencv" in stages  # only where opencv-contrib and ../shared/peers are present
    runtimes = len(available_backends("cpu"))
    assert stages == [s for s in STAGES if s != "pipeline" and (s != "opencv" or peer)] + ["pipeline"] * runtimes
    assert all(r.frames == 3 and r.fps > 0 for r in rows)
    pipelines = [r for r in rows if r.stage == "pipeline"]
    assert [r.backend for r in pipelines] == available_backends("cpu")  # every CPU backend, one row each
    assert {"onnxruntime", "torch-cpu"} <= set(available_backends("cpu"))
    for pipeline in pipelines:
        assert pipeline.model_fps and pipeline.model_fps > 0
        assert pipeline.ratio_vs_io_ceiling is not None and pipeline.ratio_vs_naive is not None
        assert (pipeline.ratio_vs_opencv is not None) == peer
    assert not list((tmp_path / "work").glob("*.mp4"))  # outputs are cleaned up


@pytest.mark.slow
def test_cli_bench_json(tmp_path):
    from vidsr.cli.main import cli

    clip = make_clip(tmp_path / "c.mp4", frames=4, size=(32, 24))
    args = ["bench", str(clip), "--models", "espcn", "-s", "2", "--device", "cpu", "--frames", "2", "--json"]
    args += ["--stages", "io_ceiling,pipeline"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["machine"]["torch"]
    assert [(r["stage"], r["backend"]) for r in payload["rows"]] == [("io_ceiling", "cpu")] + [
        ("pipeline", name) for name in available_backends("cpu")
    ]
    assert all(r["frames"] == 2 for r in payload["rows"])


def test_cli_bench_rejects_unknown_stage(tmp_path):
    from vidsr.cli.main import cli

    clip = make_clip(tmp_path / "c.mp4", frames=2, size=(32, 24))
    result = CliRunner().invoke(cli, ["bench", str(clip), "--stages", "warp"])
    assert result.exit_code == 2
    assert "unknown stage 'warp'" in result.output


def test_conv_gflop_counts_every_convolution():
    from vidsr.bench_cpu import conv_gflop
    from vidsr.models.espcn import espcn

    # The paper's ESPCN x2: 5x5 1->64, 3x3 64->32, 3x3 32->4, all at the input size.
    macs_per_pixel = 25 * 1 * 64 + 9 * 64 * 32 + 9 * 32 * 4
    assert conv_gflop(espcn(scale=2), 1, 10, 12) == pytest.approx(2 * macs_per_pixel * 120 / 1e9)


def test_opencv_peer_skips_with_a_reason(tmp_path, monkeypatch):
    from vidsr.bench_cpu import PEERS_ENV, opencv_espcn

    monkeypatch.setenv(PEERS_ENV, str(tmp_path))
    sr, why = opencv_espcn(2)
    assert sr is None
    assert why.endswith(f"not found (set {PEERS_ENV})") or "opencv" in why.lower()


def test_per_frame_and_prepost_rows(tmp_path, monkeypatch, plain_cpu):
    import numpy as np

    from vidsr.backends.openvino import openvino_available
    from vidsr.bench_cpu import PEERS_ENV, per_frame_rows, prepost_rows

    monkeypatch.setenv(PEERS_ENV, str(tmp_path))  # no peer files: its row says why
    loaded_for = lambda: load_for_bench("espcn", 2)[0]  # noqa: E731
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rows = per_frame_rows(loaded_for, "paper", rgb, repeats=1)
    # The default (robust) weights carry an int8 calibration: that graph gets its own rows (no bf16
    # rows: plain_cpu has no native bf16).
    engines = ["vidsr onnxruntime", "vidsr onnxruntime int8", "vidsr torch-cpu"]
    engines += ["vidsr openvino", "vidsr openvino int8"] if openvino_available() else []
    assert [r["engine"] for r in rows] == [*engines, "opencv"]
    assert all(r["frame_ms"] > 0 and r["model_ms"] > 0 for r in rows[:-1])
    assert rows[-1]["frame_ms"] is None and rows[-1]["note"].startswith("skipped: ")
    (pp,) = prepost_rows(loaded_for, "paper", 24, 32, repeats=1)
    assert pp["frame_ms"] > 0 and pp["model_ms"] > 0 and pp["engine"] == "onnxruntime"  # auto's, on plain_cpu
    assert pp["prepost_over_model"] == pytest.approx(pp["prepost_ms"] / pp["model_ms"], rel=0.02, abs=0.01)


def test_thread_rows_cover_each_container_and_thread_pair(tmp_path):
    from vidsr.bench_cpu import thread_rows

    clip = make_clip(tmp_path / "c.avi", frames=3, size=(32, 24), codec="mpeg4")
    loaded_for = lambda: load_for_bench("espcn", 2)[0]  # noqa: E731
    rows = thread_rows(loaded_for, "robust", clip, tmp_path / "out", (1,), (None, 1), suffixes=(".avi", ".mp4"))
    assert [(r["output"], r["encoder_threads"]) for r in rows] == [
        (".avi (mpeg4)", "auto"),
        (".avi (mpeg4)", 1),
        (".mp4 (libx264)", "auto"),
        (".mp4 (libx264)", 1),
    ]
    assert all(r["frames"] == 3 and r["fps"] > 0 for r in rows)
    assert not list((tmp_path / "out").iterdir())  # each output removed after its row


def test_opencv_peer_that_cannot_read_its_model_skips_with_the_reason(tmp_path, monkeypatch):
    """OpenCV 5.1 reads the TensorFlow .pb through its ONNX importer and raises: a skipped row, not a crash."""
    import types

    from vidsr.bench_cpu import PEERS_ENV, opencv_espcn

    class CvError(Exception):
        pass

    class Impl:
        def readModel(self, path):  # OpenCV's name
            raise CvError(
                "OpenCV(5.1.0) onnx_importer2.cpp:745: error: (-215:Assertion failed) model_proto.has_graph()"
            )

    fake = types.SimpleNamespace(
        __version__="5.1.0",
        error=CvError,
        setNumThreads=lambda n: None,
        dnn_superres=types.SimpleNamespace(DnnSuperResImpl_create=Impl),
    )
    monkeypatch.setitem(sys.modules, "cv2", fake)
    monkeypatch.setenv(PEERS_ENV, str(tmp_path))
    (tmp_path / "ESPCN_x2.pb").write_bytes(b"not a graph")
    sr, why = opencv_espcn(2)
    assert sr is None
    assert why.startswith("OpenCV 5.1.0 cannot read ESPCN_x2.pb: ") and "has_graph" in why


# -- start-up, steady state and what bounds a row ---------------------------------------------
def test_ratios_use_steady_fps_where_both_rows_have_it():
    ceiling = row("io_ceiling", 100.0, "none")
    ceiling.steady_fps = 120.0
    naive = row("naive", 5.0)  # no steady figure: end-to-end on both sides
    pipeline = row("pipeline", 50.0)
    pipeline.steady_fps = 108.0
    rows = [ceiling, naive, pipeline]
    add_ratios(rows)
    assert pipeline.ratio_vs_io_ceiling == 0.9  # 108 / 120, not 50 / 100
    assert pipeline.ratio_vs_naive == 10.0  # 50 / 5: naive has no steady fps
    naive.steady_fps = 6.0
    add_ratios(rows)
    assert pipeline.ratio_vs_naive == 18.0  # 108 / 6


def test_bound_by_names_the_stage_with_the_most_seconds():
    from vidsr.bench import bound_by

    r = row("io_ceiling", 10.0, "none")  # 10 frames in 1 s
    assert bound_by(r) == ""  # rows from before stage timing
    r.stage_seconds = {"decode": 0.2, "model": 0.05, "encode": 0.92, "frames": 0.1}
    assert bound_by(r) == "encode 92%"


def test_table_shows_steady_startup_and_bound_by():
    r = row("pipeline", 50.0)
    r.steady_fps, r.startup_s, r.stage_seconds = 61.5, 1.25, {"decode": 0.05, "download": 0.15}
    head, _, line = markdown_table([r]).splitlines()
    titles = [c.strip() for c in head.strip("|").split("|")]
    cells = dict(zip(titles, (c.strip() for c in line.strip("|").split("|")), strict=True))
    assert (cells["end-to-end fps"], cells["steady fps"], cells["startup s"]) == ("50.0", "61.5", "1.25")
    assert cells["bound by"] == "download 75%"  # 0.15 s of the row's 0.2


def test_row_fields_come_from_the_run_summary(tmp_path, monkeypatch):
    """io_ceiling, bicubic and pipeline rows carry their UpscaleSummary's start-up, steady fps and stage
    seconds; the pipeline's start-up counts from before its upscaler was built."""
    import types

    import vidsr.bench as bench

    clip = make_clip(tmp_path / "c.mp4", frames=3, size=(32, 24))
    calls = []

    def fake_upscale_video(src, dst, *, upscaler, started=None, **kw):
        calls.append((upscaler.backend.name, started))
        stages = {"decode": 0.01, "model": 0.5, "encode": 0.02}
        return types.SimpleNamespace(frames_out=3, seconds=1.0, startup_s=0.75, steady_fps=4.5, stage_seconds=stages)

    monkeypatch.setattr(bench, "upscale_video", fake_upscale_video)
    cfg = BenchConfig(models=("espcn",), scales=(2,), device="cpu", backends=("torch-cpu",), model_iters=1)
    rows = bench_input(clip, cfg, out_dir=tmp_path / "work", stages=("io_ceiling", "bicubic", "pipeline"))
    assert [r.stage for r in rows] == ["io_ceiling", "bicubic", "pipeline"]
    for r in rows:
        assert (r.startup_s, r.steady_fps, r.fps) == (0.75, 4.5, 3.0)
        assert r.stage_seconds == {"decode": 0.01, "model": 0.5, "encode": 0.02}
    assert calls[0] == ("none", None)  # io_ceiling: no upscaler to build
    assert all(started is not None for _, started in calls[1:])
    assert rows[2].ratio_vs_io_ceiling == 1.0  # steady against steady


def test_real_rows_time_every_stage_and_the_naive_loop(tmp_path):
    from vidsr.bench import BenchRunner, RowSpec
    from vidsr.stages import STAGES as PIPELINE_STAGES

    clip = make_clip(tmp_path / "c.mp4", frames=6, size=(32, 24))
    cfg = BenchConfig(models=("espcn",), scales=(2,), device="cpu", model_iters=1)
    runner = BenchRunner(clip, cfg, out_dir=tmp_path / "work")
    io = runner.run(RowSpec("io_ceiling", 2))
    assert set(io.stage_seconds) == set(PIPELINE_STAGES) and io.stage_seconds["encode"] > 0
    assert io.startup_s > 0 and io.steady_fps > 0  # batch 2 of 6 frames: a steady state to measure
    naive = runner.run(RowSpec("naive", 2, "espcn", max_frames=4))
    assert naive.frames == 4 and naive.note == "; the first 4 frames"
    assert naive.startup_s > 0 and naive.steady_fps > 0 and naive.stage_seconds is None
    whole = runner.run(RowSpec("naive", 2, "espcn"))
    assert whole.frames == 6 and whole.note == ""


def test_cli_bench_table_has_the_new_columns(tmp_path):
    from vidsr.cli.main import cli

    clip = make_clip(tmp_path / "c.mp4", frames=4, size=(32, 24))
    args = ["bench", str(clip), "--models", "espcn", "-s", "2", "--device", "cpu", "--stages", "io_ceiling"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    head, _, line = [x for x in result.stdout.splitlines() if x.startswith("|")]
    assert "| steady fps | startup s | bound by |" in head
    assert line.startswith("| io_ceiling | c.mp4 (32x24) | none | 2 |")


# -- what the GPU plan measures beside its rows (vidsr.bench_gpu) -----------------------------
def test_encoder_alone_per_preset_and_threading(tmp_path):
    from vidsr.bench_gpu import EncoderSetting, encode_rows, encoder_settings, repeated_frames

    clip = make_clip(tmp_path / "c.mp4", frames=5, size=(34, 24))
    frames = repeated_frames(clip, 2, 4)
    assert len(frames) == 4 and (frames[0].width, frames[0].height) == (68, 48)
    assert frames[0].format.name == "yuv420p"
    settings = encoder_settings(cores=3)
    assert [(s.preset, s.thread_type, s.threads) for s in settings[:3]] == [
        ("veryfast", "SLICE", 0),  # PyAV's default: what the pipeline's encoder runs
        ("veryfast", "FRAME", 0),
        ("veryfast", "FRAME", 3),
    ]
    assert settings[0].label == "veryfast, sliced (PyAV's default) threads, auto"
    rows = encode_rows(clip, 2, 4, [EncoderSetting("ultrafast", "FRAME", 2)])
    assert rows == [
        {
            "output": "68x48",
            "frames": 4,
            "preset": "ultrafast",
            "threading": "frame",
            "threads": 2,
            "setting": "ultrafast, frame threads, 2",
            "fps": rows[0]["fps"],
        }
    ]
    assert rows[0]["fps"] > 0


def test_compile_rows_time_eager_and_compiled_with_their_startup(tmp_path, monkeypatch):
    from vidsr.bench_gpu import compile_rows

    compiled = []

    def fake_compile(module, **kw):  # the real one takes ~20 s on 2 cores; tests/test_compile.py runs it
        compiled.append(kw)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    rows = compile_rows("espcn", 2, 20, 12, batch=2, iters=1, device=torch.device("cpu"), engine_dir=tmp_path)
    assert [(r["mode"], r["compiled"]) for r in rows] == [("eager", False), ("compiled", True)]
    assert compiled == [{"mode": "max-autotune-no-cudagraphs", "dynamic": False}]  # prepare_module's policy
    assert all(r["startup_s"] > 0 and r["model_fps"] > 0 and r["input"] == "20x12" for r in rows)
    assert os.environ.pop("TORCHINDUCTOR_CACHE_DIR") == str(tmp_path / "inductor")  # beside the engines


@pytest.mark.slow
def test_cli_startup_rows_cold_warm_and_bicubic(tmp_path):
    from vidsr.bench_gpu import WARM_RUNS, cli_startup_rows

    clip = make_clip(tmp_path / "c.mp4", frames=6, size=(32, 24))
    rows = cli_startup_rows(clip, tmp_path / "work", timeout_s=120)
    runs = [(r["run"], r["cache"]) for r in rows]
    assert runs == [("defaults", "cold")] + [("defaults", "warm")] * WARM_RUNS + [("-m bicubic", "warm")] * WARM_RUNS
    assert rows[0]["command"] == "vidsr upscale c.mp4 -s 2" and rows[-1]["backend"] == "torch-cpu"
    assert all(r["frames"] == 6 and r["startup_s"] > 0 and r["wall_s"] >= r["startup_s"] for r in rows)
    assert all(r["bound_by"] and set(r["stage_seconds"]) >= {"decode", "encode"} for r in rows)
    assert list((tmp_path / "work" / "cli-engines").iterdir())  # the cold run filled the fresh engine dir
    assert not list((tmp_path / "work").glob("*.mp4"))


@pytest.mark.slow
def test_the_startup_probe_reports_every_phase_and_the_warm_median(tmp_path):
    """benchmarks/startup_probe.py on a CPU: the CUDA steps skip, the CLI steps report start-up by phase."""
    clip = make_clip(tmp_path / "c.mp4", frames=4, size=(32, 24))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "startup_probe.py"), str(clip), "--warm-runs", "2"]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out" / "startup_probe.txt").read_text().splitlines()
    runs = [line for line in lines if ": startup " in line]
    assert [line.split(":")[0] for line in runs] == [
        "cold",
        "warm 1",
        "warm 2",
        "warm, VIDSR_BYTECODE_CACHE=0",
        "bicubic 1",
        "bicubic 2",
        "warm, -X importtime",
    ]
    assert all("'model ready'" in line and "'first frame'" in line for line in runs)
    assert any(line.startswith("warm: median ") and "of 2" in line for line in lines)
    assert "import time:" in (tmp_path / "out" / "importtime.txt").read_text()
