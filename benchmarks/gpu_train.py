"""Training on a lent GPU, sized to the lease: one command that goes on where the last lease stopped.

Here (no GPU needed), once, and again after each lease:

    python benchmarks/gpu_train.py --bundle          # .gpu-train/: the photos and PyAV, small enough to travel
    python benchmarks/gpu_train.py --plan-only       # what the next lease trains, from which step
    python benchmarks/gpu_train.py --collect DIR     # after a lease: its $OUT into benchmarks/training/

On the GPU host (carry ``.gpu-train``; nothing to install first):

    python3 benchmarks/gpu_train.py --out $OUT [--budget 300]

A CPU dry run of the same path: ``--device cpu --dry-run --budget 60 --out DIR``.

Issue 24 needs more capacity trained for longer than a 2-core CPU gives: the full-size SRResNet (the
paper's 16 blocks of 64 channels) on the robust-v4 degradations, tens of thousands of steps.  A lease is 15
minutes of device time, at most 10 a command, and the tree it sees is limited to 64 MiB, so the runs
of :data:`PLAN` go on from lease to lease, in order, one at a time:

* each lease resumes the first unfinished run from ``benchmarks/training/<run>.resume.pt`` (or starts
  it from its ``init`` weights), trains until ``--budget`` seconds from this process's start (less
  what writing the results takes) and writes to ``--out``: the compact checkpoint (bfloat16 moments,
  float16 best weights: under the 16 MiB a file that comes back), the run's validation log so far and
  ``gpu_train.json`` (the lease: GPU, steps from and to, steps a second); a run that reaches its
  steps also writes its exported weights (fp16, with the metadata ``vidsr models`` reads, measured on
  the selection photos only, as every vidsr run is);
* ``--collect`` puts those files into ``benchmarks/training/`` (a finished run's resume file is then
  removed: its weights are what is kept) for the next session to commit.  Shipping a finished run's
  weights is a separate, reviewed step: measure the report side with ``benchmarks/quality.py``.

Batches are drawn by worker processes (``--data-workers``; batch *k* seeded by (seed, *k*), so the
count does not change the run), which is what lets one GPU step faster than one core degrades
patches.  ``.gpu-train`` holds ``shared/data/train``, the selection half of ``shared/data/val`` (the
report half is never trained or picked on, so it does not travel) and PyAV repacked as ``av.tar.xz``
(its wheel is 33 MiB, over what fits beside the rest; xz brings it to 24), unpacked into
``/tmp/vidsr-site`` when ``import av`` fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

STARTED = time.monotonic()  # the budget counts from here: the interpreter is up, nothing heavy imported yet
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout's vidsr, installed or not

BUNDLE = ROOT / ".gpu-train"  # git-ignored; carried to the GPU host
PYAV_PACK = "av.tar.xz"
SITE = Path(tempfile.gettempdir()) / "vidsr-site"
STATE = ROOT / "benchmarks" / "training"
WEIGHTS = ROOT / "vidsr" / "models" / "weights"
TREE_LIMIT_MIB = 64.0  # what travels to a GPU host: the tree, shared/ and carried paths
FILE_LIMIT_MIB = 16.0  # one file back from $OUT
WRITE_UP_S = 30.0  # kept back from the budget: compacting the checkpoint, copying, the summary
SUMMARY = "gpu_train.json"
LEASES = "gpu_train.leases.jsonl"  # every lease's summary, appended by --collect


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan: a name (its files' stem) and the ``vidsr train`` options that decide it."""

    name: str
    options: dict[str, Any]


# The options below were fixed before any run of them was measured (issue 24: capacity and time),
# from the recipes that made the shipped robust sets: robust-v4 degradations, the scikit-image photos
# beside shared/data/train, L1, the paper's 96-pixel HR crops and batch 16, a cosine schedule, the
# checkpoint picked on the selection photos by vidsr's robust score.  The network is SRResNet
# ``large`` (the shipped sets' design at the paper's 16 blocks of 64 channels; no shipped set has its
# shape, so it starts from scratch, as bicubic through its residual).  Steps: estimated, not measured,
# at about 100 a second on an H100/H200; the first lease's gpu_train.json says.
ROBUST_LARGE = {
    "model": "srresnet",
    "arch": "large",
    "degradations": "robust-v4",
    "extra_photos": ("scikit-image",),
    "steps": 40000,
    "batch": 16,
    "patch": 96,
    "lr": 2e-4,
    "loss": "l1",
    "val_every": 2000,
    "seed": 0,
}
# The x4 run's pick came at step 16000 of 40000 and later steps validated lower: the network had learnt what
# 29 photos teach.  So, fixed before it ran (2026-12-05): the picked weights go on for 16000 steps at half
# the learning rate, each crop showing its photo at 0.5-1x its size (more scales of the same photos) and
# an average of the weights validated (EMA), seed 1 for new patches.
X4_ZOOM = {
    **ROBUST_LARGE,
    "scale": 4,
    "init": "srresnet_x4.large.safetensors",
    "hr_zoom": 0.5,
    "ema": 0.999,
    "lr": 1e-4,
    "steps": 16000,
    "seed": 1,
}
PLAN: tuple[PlannedRun, ...] = (
    *(PlannedRun(f"srresnet_x{scale}_robust_large", {**ROBUST_LARGE, "scale": scale}) for scale in (2, 4)),
    PlannedRun("srresnet_x4_robust_large_zoom", X4_ZOOM),
)
# --dry-run: the same runs, shrunk to seconds on a CPU (the path is what is checked, not the figures).
DRY_RUN = {"steps": 4, "batch": 2, "patch": 32, "val_every": 2, "extra_photos": ()}


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# -- where each run stands -------------------------------------------------------------------------
def finished_weights(state: Path, run: PlannedRun) -> Path:
    return state / f"{run.name}.safetensors"


def resume_file(state: Path, run: PlannedRun) -> Path:
    return state / f"{run.name}.resume.pt"


def steps_done(state: Path, run: PlannedRun) -> int:
    """The step the run's committed checkpoint reached (0: not started)."""
    path = resume_file(state, run)
    if not path.is_file():
        return 0
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def finished_by_log(state: Path) -> set[str]:
    """The runs a collected lease finished, by the leases log (``--collect`` keeps dry runs out of the real one):
    what says a run is done once its exported weights have left the tree for the history (the tree travels to
    every lease, in 64 MiB)."""
    log = state / LEASES
    records = (r for line in (log.read_text().splitlines() if log.is_file() else ()) for r in json.loads(line)["runs"])
    return {r["run"] for r in records if r["finished"]}


def next_runs(state: Path, plan: tuple[PlannedRun, ...]) -> list[PlannedRun]:
    """The runs not finished yet, in the plan's order."""
    done = finished_by_log(state)
    return [run for run in plan if not finished_weights(state, run).is_file() and run.name not in done]


def lease_precision(device: str) -> str:
    """The arithmetic a lease trains in: a CPU with bfloat16 in hardware steps 2.4x faster in it (AMX; the
    network's bicubic residual and output stay float32); a GPU keeps vidsr train's float16 autocast."""
    if device.startswith("cuda"):
        return "auto"
    import torch

    native = (
        getattr(torch.cpu, name, lambda: False)() for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    )
    return "bf16" if any(native) else "fp32"


def train_config(run: PlannedRun, *, data: Path, work: Path, device: str, workers: int, dry_run: bool, precision: str):
    from vidsr.train.loop import TrainConfig

    options = {**run.options, **(DRY_RUN if dry_run else {})}
    init = options.pop("init", None)
    return TrainConfig(
        **options,
        data=str(data / "train"),
        val=str(data / "val"),
        out=str(work / f"{run.name}.pt"),
        init=str(WEIGHTS / init) if init else None,
        device=device,
        data_workers=workers,
        precision=precision,
        progress=False,
    )


# -- on the GPU host ---------------------------------------------------------------------------------
def ensure_pyav() -> str:
    """``import av`` works, from the bundle's pack if need be (set on PYTHONPATH for worker processes)."""
    try:
        import av

        return av.__version__
    except ImportError:
        pass
    pack = BUNDLE / PYAV_PACK
    if not pack.is_file():
        raise SystemExit(f"Error: PyAV is not importable and {pack} is missing: run --bundle where pip works")
    if not (SITE / "av").is_dir():
        SITE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(pack, "r:xz") as tar:
            tar.extractall(SITE, filter="tar")
    sys.path.insert(0, str(SITE))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    import av

    return av.__version__


def environment(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        gpu = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    else:
        gpu = "no GPU (CPU run)"
    return f"{gpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}, Python {sys.version.split()[0]}"


def print_validation(run: PlannedRun, record: dict[str, Any]) -> None:
    """One line a validation, so a lease's output says how far it got even if it is cut."""
    print(
        f"gpu_train: {run.name} step {record['step']}: loss {record['loss']:.4f}, score {record['val_score']:.3f} "
        f"(best {record['best_score']:.3f} at step {record['best_step']}), {record['seconds']:.0f} s"
    )


def train_lease(args: argparse.Namespace) -> int:
    deadline = STARTED + args.budget - WRITE_UP_S
    if args.device.startswith("cuda"):
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from gpu_check import no_gpu_reason

        reason = no_gpu_reason()
        if reason:
            print(f"gpu_train: no GPU here, nothing trained: {reason}")
            return 0
    pyav = ensure_pyav()
    # The runs' checkpoints: what comes back is copied to --out, the rest goes with the directory.
    with tempfile.TemporaryDirectory(prefix="vidsr-gpu-train-") as work:
        return run_lease(args, Path(work), pyav, deadline)


def run_lease(args: argparse.Namespace, work: Path, pyav: str, deadline: float) -> int:
    from vidsr.train.checkpoint import compact
    from vidsr.train.loop import train

    data = args.data or (BUNDLE / "shared" / "data" if (BUNDLE / "shared").is_dir() else default_data())
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    workers = args.data_workers if args.data_workers is not None else max(1, min(12, (os.cpu_count() or 2) - 2))
    precision = args.precision or lease_precision(args.device)
    lease: dict[str, Any] = {
        "machine": environment(args.device),
        "pyav": pyav,
        "budget_s": args.budget,
        "precision": precision,
        "runs": [],
    }
    print(
        f"gpu_train: {lease['machine']}, PyAV {pyav}, {workers} data workers, precision {precision}, "
        f"budget {args.budget:.0f} s"
    )
    for run in next_runs(args.state, PLAN):
        if lease["runs"] and time.monotonic() > deadline - 60:
            break  # under a minute left: not worth another run's set-up (the first always starts)
        config = train_config(
            run, data=data, work=work, device=args.device, workers=workers, dry_run=args.dry_run, precision=precision
        )
        resume = resume_file(args.state, run)
        if resume.is_file():
            config = replace(config, resume=str(resume))
            log = args.state / f"{run.name}.jsonl"
            if log.is_file():  # the log goes on where the last lease left it
                shutil.copyfile(log, work / f"{run.name}.jsonl")
        start_step = steps_done(args.state, run)
        began = time.monotonic()
        print(f"gpu_train: {run.name} from step {start_step} of {config.steps}")
        result = train(config, until=deadline, on_validation=partial(print_validation, run))
        seconds = time.monotonic() - began
        if result.weights is None:  # a finished run resumes no more (and with an EMA its state is over 16 MiB)
            compact(result.checkpoint, out / f"{run.name}.resume.pt")
        if result.log.is_file():  # none before the first validation
            shutil.copyfile(result.log, out / f"{run.name}.jsonl")
        if result.weights:
            shutil.copyfile(result.weights, out / f"{run.name}.safetensors")
        record = {
            "run": run.name,
            "from_step": start_step,
            "to_step": result.step,
            "of_steps": config.steps,
            "seconds": round(seconds, 1),
            "steps_per_s": round((result.step - start_step) / seconds, 2) if seconds else None,
            "best_step": result.best_step,
            "finished": result.weights is not None,
            "dry_run": args.dry_run,
        }
        lease["runs"].append(record)
        print(f"gpu_train: {json.dumps(record)}")
        if not record["finished"]:
            break  # the budget ran out inside this run
    lease["seconds"] = round(time.monotonic() - STARTED, 1)
    (out / SUMMARY).write_text(json.dumps(lease, indent=2) + "\n")
    too_big = [p.name for p in out.iterdir() if mib(p.stat().st_size) > FILE_LIMIT_MIB]
    if too_big:
        print(f"gpu_train: over {FILE_LIMIT_MIB:.0f} MiB, will not come back: {', '.join(too_big)}")
        return 1
    return 0


# -- here, before and after a lease ---------------------------------------------------------------------
def default_data() -> Path:
    return Path(os.environ.get("VIDSR_DATA", ROOT.parent / "shared" / "data"))


def tree_mib() -> float:
    """What travels besides the carried paths: the tracked files and the untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    paths = [ROOT / p for p in listed.decode().split("\0") if p]
    return mib(sum(p.stat().st_size for p in paths if p.is_file()))


def pyav_wheel(folder: Path) -> Path:
    """A cp312 manylinux PyAV wheel (the GPU host's Python): the one in .whl/, else from the registry."""
    found = sorted((ROOT / ".whl").glob("av-*.whl"))
    if found:
        return found[-1]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version"]
    cmd += ["3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform"]
    cmd += ["manylinux_2_17_x86_64", "-d", str(folder), "av"]
    subprocess.run(cmd, check=True)
    return sorted(folder.glob("av-*.whl"))[-1]


def bundle(data: Path) -> int:
    """Fill .gpu-train/ and say whether it fits beside the tree."""
    from vidsr.evaluate import list_images
    from vidsr.split import on_side

    target = BUNDLE / "shared" / "data"  # the same last three parts as shared/data: the metadata names it so
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(data / "train", target / "train")
    (target / "val").mkdir(parents=True)
    for photo in on_side(list_images(data / "val"), "selection"):
        shutil.copyfile(photo, target / "val" / photo.name)
    pack = BUNDLE / PYAV_PACK
    if not pack.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            wheel = pyav_wheel(Path(tmp))
            unpacked = Path(tmp) / "site"
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(unpacked)
            for lib in unpacked.rglob("*.so*"):
                lib.chmod(0o755)  # zip keeps no modes; the loader needs them readable, not writable
            with tarfile.open(pack.with_suffix(".tmp"), "w:xz") as tar:
                tar.add(unpacked, arcname=".")
            pack.with_suffix(".tmp").replace(pack)
        print(f"{pack.relative_to(ROOT)}: PyAV from {wheel.name}")
    bundled = mib(sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file()))
    tree = tree_mib()
    fits = tree + bundled <= TREE_LIMIT_MIB
    print(
        f"travels: tree {tree:.1f} MiB + .gpu-train {bundled:.1f} MiB = {tree + bundled:.1f} MiB "
        f"(limit {TREE_LIMIT_MIB:.0f}){'' if fits else ': TOO BIG'}"
    )
    print("on the GPU host: python3 benchmarks/gpu_train.py --out $OUT   (carry .gpu-train)")
    return 0 if fits else 1


def plan_only(state: Path) -> int:
    pending = next_runs(state, PLAN)
    for run in PLAN:
        if run not in pending:
            weights = finished_weights(state, run)
            where = weights if weights.is_file() else "by the leases log; its weights are in the history"
            print(f"{run.name}: finished ({where})")
            continue
        step = steps_done(state, run)
        print(f"{run.name}: {'step ' + str(step) if step else 'not started'} of {run.options['steps']}")
    print(f"next: {pending[0].name}" if pending else "every planned run is finished")
    return 0


def collect(fetched: Path, state: Path) -> int:
    """Copy a lease's results into ``state``; a finished run's resume file goes (its weights stay)."""
    summary = json.loads((fetched / SUMMARY).read_text())
    if state.resolve() == STATE.resolve() and any(record["dry_run"] for record in summary["runs"]):
        print(f"Error: {fetched} holds a dry run: collect it with --state DIR, not into {STATE}")
        return 1
    state.mkdir(parents=True, exist_ok=True)
    for record in summary["runs"]:
        name = record["run"]
        for suffix in (".resume.pt", ".jsonl", ".safetensors"):
            if (fetched / f"{name}{suffix}").is_file():
                shutil.copyfile(fetched / f"{name}{suffix}", state / f"{name}{suffix}")
        if record["finished"]:
            (state / f"{name}.resume.pt").unlink(missing_ok=True)
        print(f"{name}: step {record['to_step']} of {record['of_steps']}{' (finished)' if record['finished'] else ''}")
    with (state / LEASES).open("a") as log:
        log.write(json.dumps(summary) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--bundle", action="store_true", help="fill .gpu-train/ (here, where pip works)")
    what.add_argument("--plan-only", action="store_true", help="say what the next lease trains")
    what.add_argument("--collect", type=Path, metavar="DIR", help="a lease's fetched $OUT into --state")
    parser.add_argument("--out", type=Path, help="where the lease's files go ($OUT)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds from this process's start [300]")
    parser.add_argument("--device", default="cuda", help="cuda [default] or cpu (a dry run's)")
    parser.add_argument("--data", type=Path, default=None, help="a folder with train/ and val/ [.gpu-train's]")
    parser.add_argument(
        "--state", type=Path, default=None, help="where runs resume from [benchmarks/training; a dry run: none]"
    )
    parser.add_argument("--data-workers", type=int, default=None, help="batch-drawing processes [cores - 2, <= 12]")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default=None,
        help="vidsr train --precision [fp16 on CUDA; bf16 on a CPU with AMX or AVX512-BF16, else fp32]",
    )
    parser.add_argument("--dry-run", action="store_true", help="the plan shrunk to seconds (a CPU check)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # a lease's output arrives as it is printed, even if cut
    if args.state is None:  # a dry run never resumes, nor feeds, the real runs
        args.state = Path(tempfile.mkdtemp(prefix="vidsr-dry-state-")) if args.dry_run else STATE
    if args.bundle:
        return bundle(args.data or default_data())
    if args.plan_only:
        return plan_only(args.state)
    if args.collect:
        return collect(args.collect, args.state)
    if args.out is None:
        parser.error("--out DIR is needed to train")
    return train_lease(args)


if __name__ == "__main__":
    sys.exit(main())
