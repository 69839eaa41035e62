"""benchmarks/gpu_check.py (``make gpu-check``): its pieces, and what it does on a machine without a GPU."""

from __future__ import annotations

import importlib.util
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_check", None)


def test_psnr_against_hand_computed_values(gpu_check):
    a = torch.zeros(2, 1, 4, 4)
    assert gpu_check.psnr(a, torch.full_like(a, 0.1)) == pytest.approx(20.0)  # MSE 0.01
    b = a.clone()
    b[0, 0, 0, 0] = 1.0  # one pixel of 32 off by the full range: MSE 1/32
    assert gpu_check.psnr(a, b) == pytest.approx(10 * math.log10(32))
    assert gpu_check.psnr(a, a) == float("inf")


def test_checks_record_pass_fail_and_out_of_time(gpu_check, tmp_path):
    now = [0.0]
    checks = gpu_check.Checks(100, tmp_path / "log", clock=lambda: now[0])

    def slow():
        now[0] += 95
        return "PASS", "took 95 s"

    def broken():
        raise RuntimeError("no engine")

    assert checks.run("first", slow) == "PASS"
    assert checks.run("second", broken, needs_s=1) == "FAIL"
    assert checks.run("third", slow, needs_s=10) == "SKIP"  # 5 s left
    got = [(c.name, c.status, c.figures, c.seconds) for c in checks.results]
    assert got == [
        ("first", "PASS", "took 95 s", 95.0),
        ("second", "FAIL", "RuntimeError: no engine", 0.0),
        ("third", "SKIP", "out of time (5 s left)", 0.0),
    ]
    assert "RuntimeError: no engine" in (tmp_path / "log").read_text()
    assert gpu_check.table(checks.results).splitlines()[2] == "| first | PASS | took 95 s | 95.0 |"


def test_summary_picks_the_fastest_x4_pipeline_row(gpu_check):
    row = {"stage": "pipeline", "scale": 4, "input": "vtest_480x270", "model_fps": None}
    rows = [
        {**row, "model": "espcn", "backend": "torch-cuda", "fps": 900.0},
        {**row, "model": "espcn", "backend": "tensorrt", "fps": 1500.0, "model_fps": 6000.0},
        {**row, "model": "espcn", "backend": "tensorrt", "fps": 99999.0, "scale": 2},
        {**row, "model": "srresnet", "backend": "tensorrt", "fps": 300.0, "stage": "naive"},
    ]
    assert gpu_check.summarise(rows) == "espcn x4 480x270 tensorrt 1500 fps, model-only 6000"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_without_a_gpu_it_says_so_and_exits_0(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gpu-check: no NVIDIA GPU found: torch.cuda.is_available() is False")
    assert "nothing to check on this machine" in out
    assert not (tmp_path / "out").exists()


def test_a_gpu_pytorch_cannot_use_is_a_failure(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "no_gpu_reason", lambda: "nvidia-smi lists 'GPU 0: H200' but PyTorch sees none")
    assert gpu_check.main([]) == 1


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_target_runs_the_script_without_setup():
    # --no-print-directory: under `make test` this make is a sub-make and would add "Entering directory" lines.
    cmd = ["make", "-n", "--no-print-directory", "gpu-check"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.strip()]
    assert line.endswith("python benchmarks/gpu_check.py") or line.endswith("python3 benchmarks/gpu_check.py")
    assert "pip install" not in r.stdout  # no setup step: the GPU host is offline
