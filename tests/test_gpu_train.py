"""Training sized to a GPU lease: batches drawn by worker processes, a run that stops at a deadline and
resumes, and benchmarks/gpu_train.py carrying a run across leases (its dry run, on the CPU)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import load_script, make_photos

from vidsr.cli.main import cli
from vidsr.degrade import downscale, quantise, video_codec
from vidsr.errors import InputError
from vidsr.models import arch_config, build_module
from vidsr.models.weights import read_metadata
from vidsr.split import side_of
from vidsr.train.data import ParallelPatchSampler, PatchSampler, load_folder
from vidsr.train.loop import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # runs compared bit for bit


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, Path]:
    val = make_photos(tmp_path / "val", 3, 40, 1)
    assert any(side_of(p) == "selection" for p in val.iterdir())  # something to validate on
    return make_photos(tmp_path / "train", 3, 64, 0), val


def _sampler(folder: Path, recipe: str = "robust-v4") -> PatchSampler:
    return PatchSampler(load_folder(folder), scale=2, patch=32, colour="rgb", seed=7, degradations=recipe)


def _draw(sampler, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [sampler.batch(3) for _ in range(count)]


@pytest.mark.parametrize("recipe", ["protocol", "robust-v4"])
def test_worker_batches_do_not_depend_on_the_worker_count(photos, recipe) -> None:
    one = ParallelPatchSampler(_sampler(photos[0], recipe), size=3, workers=1)
    two = ParallelPatchSampler(_sampler(photos[0], recipe), size=3, workers=2)
    try:
        a, b = _draw(one, 5), _draw(two, 5)
    finally:
        one.close()
        two.close()
    for (lr_a, hr_a), (lr_b, hr_b) in zip(a, b, strict=True):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    assert not torch.equal(a[0][1], a[1][1])  # each batch its own patches
    assert a[0][0].shape == (3, 3, 16, 16) and a[0][1].shape == (3, 3, 32, 32)


def test_worker_batches_resume_from_the_count_drawn(photos) -> None:
    whole = ParallelPatchSampler(_sampler(photos[0]), size=3, workers=2)
    first = _draw(whole, 5)
    state = whole.state_dict()
    rest = _draw(whole, 2)
    whole.close()
    resumed = ParallelPatchSampler(_sampler(photos[0]), size=3, workers=1)
    resumed.load_state_dict(state)
    again = _draw(resumed, 2)
    resumed.close()
    assert state["drawn"] == 5 and len(first) == 5
    for (lr_a, hr_a), (lr_b, hr_b) in zip(rest, again, strict=True):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)


def _h264_only(hr: torch.Tensor, scale: int, rng) -> torch.Tensor:
    """A degradation that always goes through PyAV's scaler and libx264 (picklable, for the workers)."""
    return video_codec(quantise(downscale(hr, scale, "bicubic-aa")), "h264", int(rng.integers(20, 30)))


def test_workers_do_not_inherit_the_training_process_s_pyav(photos) -> None:
    """The training process has used PyAV's scaler (validation degrades with it) before the workers
    start; forked workers inherited its slice threads' state and hung in their first H.264 frame."""
    video_codec(torch.rand(3, 32, 32), "h264", 28)  # this process's scaler, as validation leaves it
    sampler = _sampler(photos[0])
    sampler.degrade = _h264_only
    workers = ParallelPatchSampler(sampler, size=2, workers=2)
    try:
        lr, hr = workers.batch(2)
    finally:
        workers.close()
    assert lr.shape == (2, 3, 16, 16) and hr.shape == (2, 3, 32, 32)


def test_hundreds_of_photos_reach_a_worker_as_a_few_buffers(monkeypatch) -> None:
    """Each tensor went to a worker through a file descriptor of its own: 325 photos passed the fork
    server's limit of 256 ("too many fds").  They go packed, and come out the same photos."""
    from vidsr.train import data

    monkeypatch.setattr(data, "PACK_BYTES", 3 * 40 * 40 * 100)  # packs of 100 photos
    g = torch.Generator().manual_seed(3)
    images = [torch.randint(0, 256, (3, 40, 40 + i % 7), generator=g, dtype=torch.uint8) for i in range(300)]
    sampler = PatchSampler(images, scale=2, patch=32, colour="rgb", seed=7, degradations="protocol")
    workers = ParallelPatchSampler(sampler, size=3, workers=1)
    try:
        got = _draw(workers, 2)
    finally:
        workers.close()
    assert len(sampler._packs) > 2  # several buffers, each under the limit
    assert all(flat.numel() <= data.PACK_BYTES for flat, _ in sampler._packs)
    here = PatchSampler(images, scale=2, patch=32, colour="rgb", seed=7, degradations="protocol")
    expected = [here.draw(data.batch_rng(7, k), 3) for k in range(2)]
    for (lr_a, hr_a), (lr_b, hr_b) in zip(got, expected, strict=True):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)


def test_a_checkpoint_resumes_only_with_its_own_way_of_drawing(photos) -> None:
    in_process = _sampler(photos[0])
    in_process.batch(3)
    workers = ParallelPatchSampler(_sampler(photos[0]), size=3, workers=1)
    with pytest.raises(InputError, match="--data-workers 0"):
        workers.load_state_dict(in_process.state_dict())
    with pytest.raises(InputError, match="--data-workers"):
        _sampler(photos[0]).load_state_dict(workers.state_dict())
    with pytest.raises(InputError, match="at least 1"):
        ParallelPatchSampler(_sampler(photos[0]), size=3, workers=0)


def _config(photos: tuple[Path, Path], out: Path, **kw) -> TrainConfig:
    base = {"model": "espcn", "steps": 6, "batch": 3, "patch": 16, "lr": 3e-3, "val_every": 3, "progress": False}
    return TrainConfig(scale=2, data=str(photos[0]), val=str(photos[1]), out=str(out), **{**base, **kw})


def test_a_run_stops_at_its_deadline_and_resumes_to_the_uninterrupted_weights(photos, tmp_path: Path) -> None:
    whole = train(_config(photos, tmp_path / "whole.pt", data_workers=2))
    staged = _config(photos, tmp_path / "staged.pt", data_workers=1)
    stopped = train(staged, until=time.monotonic())  # already past: one step, then the checkpoint
    assert stopped.step == 1 and stopped.weights is None
    assert torch.load(stopped.checkpoint, weights_only=True)["step"] == 1
    final = train(replace(staged, resume=str(stopped.checkpoint)))
    assert final.step == 6 and final.weights is not None
    a = torch.load(whole.checkpoint, weights_only=True)
    b = torch.load(final.checkpoint, weights_only=True)
    for key, value in a["model"].items():  # the same batches, validations and steps: the same weights
        assert torch.equal(value, b["model"][key]), key
    assert a["best"] == b["best"]


def test_cli_time_limit_stops_and_says_how_to_go_on(photos, tmp_path: Path) -> None:
    out = tmp_path / "run.pt"
    args = ["train", "-m", "espcn", "-s", "2", "--data", str(photos[0]), "--val", str(photos[1]), "--steps", "4"]
    args += ["--batch", "2", "--patch", "16", "--val-every", "2", "--quiet", "--data-workers", "1", "--out", str(out)]
    stopped = CliRunner().invoke(cli, [*args, "--time-limit", "1e-6"])
    assert stopped.exit_code == 0, stopped.output
    assert "at step 1 of 4" in stopped.output and f"--resume {out}" in stopped.output
    done = CliRunner().invoke(cli, [*args, "--resume", str(out)])
    assert done.exit_code == 0, done.output
    assert "trained espcn x2: 4 steps" in done.output


def test_large_srresnet_is_the_lite_design_at_the_papers_size() -> None:
    large = arch_config("srresnet", "large")["config"]
    assert (large["features"], large["blocks"], large["batch_norm"], large["residual"]) == (64, 16, False, True)
    net = build_module("srresnet", 2, arch_config("srresnet", "large"))
    x = torch.rand(1, 3, 12, 12)
    assert net(x).shape == (1, 3, 24, 24)


# -- benchmarks/gpu_train.py ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpu_train():
    yield load_script("gpu_train")
    sys.modules.pop("gpu_train", None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without a GPU")
def test_without_a_gpu_it_says_so_and_trains_nothing(gpu_train, tmp_path: Path, capsys) -> None:
    assert gpu_train.main(["--out", str(tmp_path / "out")]) == 0
    assert "no GPU here, nothing trained" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_a_run_goes_on_from_lease_to_lease(gpu_train, photos, tmp_path: Path, capsys) -> None:
    data = photos[0].parent
    state = tmp_path / "state"
    dry = ["--device", "cpu", "--dry-run", "--data", str(data), "--state", str(state), "--data-workers", "1"]
    first = gpu_train.PLAN[0].name

    # Lease 1: a budget already spent, so one step and the checkpoint.
    assert gpu_train.main([*dry, "--budget", "0", "--out", str(tmp_path / "lease1")]) == 0
    lease = json.loads((tmp_path / "lease1" / "gpu_train.json").read_text())
    assert [(r["run"], r["from_step"], r["to_step"], r["finished"]) for r in lease["runs"]] == [(first, 0, 1, False)]
    resume = tmp_path / "lease1" / f"{first}.resume.pt"
    assert resume.stat().st_size < gpu_train.FILE_LIMIT_MIB * 2**20
    assert gpu_train.main(["--collect", str(tmp_path / "lease1"), "--state", str(state)]) == 0
    assert (state / f"{first}.resume.pt").is_file()

    # Lease 2: goes on from step 1 (in bfloat16, whatever lease 1 used), finishes the first run, then the rest.
    assert gpu_train.main([*dry, "--budget", "600", "--precision", "bf16", "--out", str(tmp_path / "lease2")]) == 0
    lease = json.loads((tmp_path / "lease2" / "gpu_train.json").read_text())
    assert lease["precision"] == "bf16"
    assert lease["runs"][0]["from_step"] == 1 and lease["runs"][0]["to_step"] == 4 and lease["runs"][0]["finished"]
    assert [r["run"] for r in lease["runs"]] == [run.name for run in gpu_train.PLAN]
    assert len(list((tmp_path / "lease2").iterdir())) <= 8  # what $OUT gives back
    assert not list((tmp_path / "lease2").glob("*.resume.pt"))  # finished runs resume no more
    assert gpu_train.main(["--collect", str(tmp_path / "lease2"), "--state", str(state)]) == 0
    assert not (state / f"{first}.resume.pt").exists()  # finished: the weights are what is kept
    meta = read_metadata(state / f"{first}.safetensors")
    assert meta["arch_config"] == arch_config("srresnet", "large")
    assert meta["recipe"]["degradations"] == "robust-v4" and meta["selected_on"]["side"] == "selection"
    assert meta["recipe"]["batch_seeds"] == "per batch" and meta["recipe"]["precision"] == "bf16"
    zoom = read_metadata(state / f"{gpu_train.PLAN[2].name}.safetensors")["recipe"]
    assert (zoom["init"], zoom["hr_zoom"], zoom["ema"]) == ("srresnet_x4.large.safetensors", 0.5, 0.999)
    assert len((state / gpu_train.LEASES).read_text().splitlines()) == 2
    capsys.readouterr()
    assert gpu_train.main(["--plan-only", "--state", str(state)]) == 0
    assert "every planned run is finished" in capsys.readouterr().out
    for run in gpu_train.PLAN:  # a finished run's weights may leave the tree: the leases log still says so
        (state / f"{run.name}.safetensors").unlink()
    assert gpu_train.main(["--plan-only", "--state", str(state)]) == 0
    assert "every planned run is finished" in capsys.readouterr().out


def test_a_lease_trains_in_bf16_where_the_cpu_has_it(gpu_train, monkeypatch) -> None:
    assert gpu_train.lease_precision("cuda") == "auto"  # vidsr train's float16 autocast
    for amx, avx512_bf16, want in ((True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        assert gpu_train.lease_precision("cpu") == want


def test_a_dry_run_is_never_collected_into_the_real_state(gpu_train, photos, tmp_path: Path) -> None:
    out = tmp_path / "lease"
    dry = ["--device", "cpu", "--dry-run", "--data", str(photos[0].parent), "--data-workers", "1", "--budget", "0"]
    assert gpu_train.main([*dry, "--out", str(out)]) == 0
    before = sorted(p.name for p in gpu_train.STATE.iterdir())
    assert gpu_train.main(["--collect", str(out)]) == 1
    assert sorted(p.name for p in gpu_train.STATE.iterdir()) == before
