"""benchmarks/gpu_check.py (``make gpu-check``): its pieces, and what it does on a machine without a GPU."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_script, make_clip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    yield load_script("gpu_check")
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


def test_summary_counts_steps_and_gives_the_default_models_steady_ratios(gpu_check):
    row = {"stage": "pipeline", "scale": 2, "input": "vtest_960x540", "backend": "torch-cuda"}
    payload = {
        "plan": [
            {"key": "io_ceiling 960x540 x2", "status": "ran"},
            {"key": "compile vs eager: srresnet", "status": "dropped: needs ~240 s, 20 s left"},
        ],
        "rows": [
            {**row, "model": "espcn", "fps": 80.0, "steady_fps": 95.4, "ratio_vs_io_ceiling": 0.93},
            {**row, "model": "srresnet", "fps": 60.0, "steady_fps": 70.0, "ratio_vs_io_ceiling": 0.7},
            {**row, "model": "espcn", "stage": "naive", "fps": 20.0},
        ],
    }
    assert gpu_check.summarise(payload) == (
        "1 steps ran, 1 dropped by plan (compile vs eager: srresnet); "
        "espcn vtest_960x540 x2 torch-cuda steady 95 fps = 0.93 x io_ceiling"
    )


def test_checks_rewrite_the_report_after_each_result(gpu_check, tmp_path):
    seen = []
    checks = gpu_check.Checks(100, on_result=lambda results: seen.append([c.name for c in results]))
    checks.run("one", lambda: ("PASS", "fine"))
    checks.run("two", lambda: ("SKIP", "not here"))
    assert seen == [["one"], ["one", "two"]]
    gpu_check.write_report(tmp_path, checks.results)
    assert "| two | SKIP | not here |" in (tmp_path / "gpu_check.md").read_text()


def test_the_check_plan_leaves_the_benchmark_the_rest_of_the_budget(gpu_check):
    plan, left = gpu_check.check_plan(450, tensorrt=False)
    assert left == 450 - sum(s for _, s in plan) - gpu_check.WRITE_UP_S
    assert 300 <= left <= 360  # most of a lease goes to measuring
    _, left_trt = gpu_check.check_plan(450, tensorrt=True)
    assert left_trt == left - 240  # two engine builds planned where TensorRT is installed


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
    cmd.append("GPU_CHECK_ARGS=--out /tmp/x --plan-only")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().endswith("benchmarks/gpu_check.py --out /tmp/x --plan-only")


# -- the plan: rows dropped by plan, not cut by a timeout -------------------------------------
def fixed(key: str, seconds: float, priority: int, order: int, kind: str | None = None, run=None):
    """A step planned at exactly ``seconds`` (all overhead, no frames)."""
    from vidsr.bench_plan import Step

    return Step(key, kind or key, priority, order, overhead_s=seconds, run=run)


def frames_step(key: str, order: int, priority: int = 1, run=None):
    """100 frames of a megapixel at a planned 10 MP/s: 10 s."""
    from vidsr.bench_plan import Step

    return Step(key, "rows", priority, order, frames=100, pixels=1_000_000, rate_mpps=10.0, run=run)


def test_plan_keeps_priorities_in_the_budget_and_drops_the_rest():
    from vidsr.bench_plan import Estimator, choose, format_plan

    steps = [fixed("A", 30, 1, 1), fixed("B", 50, 2, 2), fixed("C", 40, 3, 3), fixed("D", 15, 4, 0)]
    decisions = choose(steps, 100, Estimator())
    assert [(d.step.key, d.keep) for d in decisions] == [("D", True), ("A", True), ("B", True), ("C", False)]
    assert decisions[3].reason == "needs ~40 s, 20 s left after higher priorities"
    text = format_plan(decisions, 100)
    assert "DROP (needs ~40 s, 20 s left after higher priorities)" in text.splitlines()[4]
    assert text.splitlines()[-1] == "planned 95 s of 100 s; dropped by plan: C"


def fake_clock():
    now = [0.0]
    return now, (lambda: now[0])


def test_faster_than_planned_rows_bring_a_dropped_extra_back():
    from vidsr.bench_plan import run_plan

    now, clock = fake_clock()

    def row(seconds: float, fps: float):
        def run():
            now[0] += seconds
            return fps

        return run

    extra = fixed("extra", 25, 9, 9, run=lambda: now.__setitem__(0, now[0] + 20))
    steps = [frames_step("r1", 1, run=row(2, 50.0)), frames_step("r2", 2, run=row(2, 50.0)), extra]
    plans = []
    outcomes = run_plan(steps, lambda: 30 - now[0], clock=clock, on_plan=plans.append)
    first = {d.step.key: d.keep for d in plans[0]}
    assert first == {"r1": True, "r2": True, "extra": False}  # 10 + 10 + 25 > 30
    assert [(o.key, o.status) for o in outcomes] == [("r1", "ran"), ("r2", "ran"), ("extra", "ran")]
    # r2 re-estimated from r1's 50 fps (with the 0.8 margin): 100 frames / 40 fps
    assert outcomes[1].estimate_s == pytest.approx(2.5)


def test_slower_than_planned_rows_drop_the_next_by_plan():
    from vidsr.bench_plan import run_plan

    now, clock = fake_clock()

    def slow():
        now[0] += 20
        return 5.0  # half the planned 10 fps

    outcomes = run_plan([frames_step("r1", 1, run=slow), frames_step("r2", 2)], lambda: 30 - now[0], clock=clock)
    assert [o.status for o in outcomes] == ["ran", "dropped: needs ~25 s, 10 s left after higher priorities"]
    assert outcomes[1].seconds is None and outcomes[1].estimate_s == pytest.approx(25.0)


def test_a_failing_step_is_recorded_and_the_plan_goes_on():
    from vidsr.bench_plan import outcomes_table, run_plan

    def broken():
        raise RuntimeError("no NVDEC | here")

    seen = []
    steps = [fixed("bad", 1, 1, 1, run=broken), fixed("good", 1, 1, 2, run=lambda: None)]
    outcomes = run_plan(steps, lambda: 100.0, on_outcome=seen.append)
    assert [o.status for o in outcomes] == ["failed: RuntimeError: no NVDEC | here", "ran"]
    assert seen == outcomes
    assert "| bad | – | 1.0 |" in outcomes_table(outcomes) and "no NVDEC / here" in outcomes_table(outcomes)


@pytest.fixture(scope="module")
def gpu_bench():
    yield load_script("gpu_bench")
    sys.modules.pop("gpu_bench", None)


def test_the_plan_for_a_lease_needs_no_gpu(gpu_bench, capsys, monkeypatch):
    from vidsr.backends import tensorrt

    monkeypatch.setattr(tensorrt, "tensorrt_available", lambda: False)  # as on the lent machines
    assert gpu_bench.main(["--plan-only", "--budget", "340"]) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = {line[5:50].strip(): line[77:].strip() for line in lines if line[:3].strip().isdigit()}
    assert len(steps) == 1 + 3 * 6 + 1 + 2 + 2  # inputs, 3 inputs x 6 rows, CLI, 2 encoder steps, 2 compile probes
    for size in ("480x270 x4", "960x540 x2", "1920x1080 x2"):
        for stage in ("io_ceiling", "pipeline espcn", "naive espcn", "bicubic"):
            key = f"{stage} {size}" + (" torch-cuda" if stage.startswith("pipeline") else "")
            assert steps[key] == "run", key
    assert steps["compile vs eager: srresnet 960x540 x2"].startswith("DROP (needs ~45 s")
    assert lines[-1].startswith("planned ") and "dropped by plan: " in lines[-1]


def test_gpu_check_plan_only_prints_the_checks_and_the_benchmark(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--plan-only", "--budget", "480"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gpu-check plan for 480 s (the hard net at 505 s):")
    assert 'pytest -m "cuda or tensorrt"' in r.stdout and "make inputs from vtest.avi" in r.stdout
    assert "io_ceiling 1920x1080 x2" in r.stdout


@pytest.mark.slow
def test_a_cpu_dry_run_goes_end_to_end_and_merges(gpu_check, gpu_bench, tmp_path, monkeypatch):
    """Everything the GPU run does, on the CPU with tiny clips: nothing fails; what does not fit is
    dropped by plan; the six files to bring back; the merge into a RESULTS.md.  The source clip is
    made here (a clean clone has no shared data), where the GPU run reads vtest.avi."""
    data = tmp_path / "data"
    (data / "video").mkdir(parents=True)
    make_clip(data / "video" / "vtest.avi", frames=24, size=(96, 64), codec="mpeg4")
    monkeypatch.setattr(gpu_check, "DATA", data)
    out, work = tmp_path / "out", tmp_path / "work"
    args = ["--device", "cpu", "--frames", "3", "--sizes", "48x32x4,64x36x2,96x54x2", "--budget", "65"]
    assert gpu_check.main([*args, "--out", str(out), "--work", str(work)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(gpu_check.OUT_FILES)
    payload = json.loads((out / "results.json").read_text())
    statuses = {o["key"]: o["status"] for o in payload["plan"]}
    assert not [k for k, s in statuses.items() if s.startswith("failed")], statuses
    assert statuses["compile vs eager: srresnet 64x36 x2"].startswith("dropped: needs ~45 s")
    pipelines = [r for r in payload["rows"] if r["stage"] == "pipeline"]
    assert pipelines and all(r["startup_s"] and r["steady_fps"] and r["stage_seconds"] for r in pipelines)
    assert "compile vs eager: srresnet" in (out / "RESULTS.md").read_text()
    into = tmp_path / "benchmarks"
    into.mkdir()
    shutil.copy(ROOT / "benchmarks" / "results.json", into / "results.json")
    gpu_bench.merge(out / "results.json", into)
    text = (into / "RESULTS.md").read_text()
    assert "## GPU run: no GPU (a CPU dry run)" in text and "## Results (the CPU run)" in text
    assert json.loads((into / "results.json").read_text())["gpu"]["plan"] == payload["plan"]


def test_a_benchmark_past_its_deadline_is_killed_and_what_it_wrote_is_kept(gpu_check, tmp_path, monkeypatch):
    """The hard net: the benchmark rewrites results.json after every step, so killing it keeps them."""
    out = tmp_path / "out"
    out.mkdir()
    partial = {"plan": [{"key": "io_ceiling 480x270 x4", "status": "ran"}], "rows": []}
    hang = f"import json, time; open({str(out / 'results.json')!r}, 'w').write({json.dumps(partial)!r}); time.sleep(60)"
    monkeypatch.setattr(gpu_check, "bench_command", lambda args, until: [sys.executable, "-c", hang])
    monkeypatch.setattr(gpu_check, "HARD_NET_GRACE_S", 2.0)
    monkeypatch.setattr(gpu_check, "WRITE_UP_S", 0.0)
    args = gpu_check.parse_args(["--out", str(out), "--work", str(tmp_path / "work")])
    checks = gpu_check.Checks(2.0)
    status, figures = gpu_check.benchmark(args, checks)
    assert status == "FAIL"
    assert figures.startswith("killed after 3 s (past its deadline); 1 steps ran, 0 dropped by plan")
    assert (out / "bench.log").exists()


def test_the_cli_start_up_bars_judge_the_median_of_the_warm_runs(gpu_bench):
    def run(name: str, cache: str, startup_s: float, steady_fps: float) -> dict:
        return {
            "command": f"vidsr upscale c.mp4 {name}",
            "run": name,
            "cache": cache,
            "backend": "torch-cuda",
            "precision": "float16",
            "frames": 48,
            "startup_s": startup_s,
            "startup_phases": {"model ready": 2.0},
            "steady_fps": steady_fps,
            "fps": 10.0,
            "wall_s": 8.0,
            "bound_by": "encode 30%",
        }

    cli = [run("defaults", "cold", 6.3, 30.0)]
    cli += [run("defaults", "warm", s, f) for s, f in ((4.4, 30.0), (2.9, 36.0), (3.2, 34.0))]
    cli += [run("-m bicubic", "warm", s, f) for s, f in ((3.5, 32.0), (2.6, 40.0), (2.8, 38.0))]
    lines = gpu_bench.render_cli(cli, "##")
    assert sum(line.startswith("| `vidsr upscale") for line in lines) == 7
    assert "* cold start-up 6.3 s (<= 10: yes)" in lines
    assert "* warm start-up 3.200 s of 3 (2.9-4.4) (<= 3: **no**)" in lines  # not the best run, not the worst
    assert "* defaults / bicubic, steady (medians): 0.89 (>= 0.9: **no**)" in lines  # 34 / 38
    assert not any("VIDSR_CUDA_SETUP" in line for line in lines)  # no A/B ran (a CPU host)

    cli += [run(gpu_bench.NO_EARLY_CUDA, "warm", s, 34.0) for s in (3.7, 3.4, 5.0)]
    lines = gpu_bench.render_cli(cli, "##")
    assert "* warm start-up 3.200 s of 3 (2.9-4.4) (<= 3: **no**)" in lines  # the A/B's runs are not the defaults'
    saved = [line for line in lines if line.startswith("* warm start-up without the early CUDA set-up")]
    assert len(saved) == 1 and saved[0].endswith(": 3.700 s median of 3; `vidsr.cuda_setup` saved 0.500 s")


def test_the_cli_runs_alternate_the_early_cuda_set_up_a_b_on_a_gpu():
    from vidsr.bench_gpu import NO_EARLY_CUDA, WARM_RUNS, cli_runs

    on_cpu, on_gpu = cli_runs(cuda=False), cli_runs(cuda=True)
    assert [r[0] for r in on_gpu] == [
        "defaults",
        *["defaults", NO_EARLY_CUDA] * WARM_RUNS,
        *["-m bicubic"] * WARM_RUNS,
    ]
    assert [r for r in on_gpu if r[0] != NO_EARLY_CUDA] == on_cpu
    assert all(env == {"VIDSR_CUDA_SETUP": "0"} for name, _, _, env in on_gpu if name == NO_EARLY_CUDA)
    assert all(env == {} for name, _, _, env in on_cpu)


def test_the_nvdec_check_makes_its_h264_clip_from_vtest_when_box_mp4_did_not_fit(gpu_check, tmp_path, monkeypatch):
    """A lease's 64 MiB may carry vtest.avi alone.  Here "NVDEC" is software decoding (no GPU), so the two
    decodes agree exactly; what is checked is the clip made for it and the comparison."""
    import av

    from vidsr.backends import hwvideo

    (tmp_path / "data" / "video").mkdir(parents=True)
    make_clip(tmp_path / "data" / "video" / "vtest.avi", frames=10, size=(96, 64), codec="mpeg4")
    monkeypatch.setattr(gpu_check, "DATA", tmp_path / "data")
    monkeypatch.setattr(hwvideo, "decode_hwaccel", lambda mode: "cuda")
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda path, *a, hwaccel=None, **k: real_open(path, *a, **k))
    status, figures = gpu_check.hwdec_check(tmp_path / "work")
    assert (status, figures.split(";")[-1].strip()) == ("PASS", "max Y diff 0"), figures
    with real_open(str(tmp_path / "work" / "nvdec_check.mp4")) as made:
        assert made.streams.video[0].codec_context.name == "h264" and made.streams.video[0].frames == 8
