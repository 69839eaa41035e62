"""Deliberate bugs, one at a time, in a copy of the tree: does the suite catch each of them?

    .venv/bin/python tests/mutations.py            # every mutation
    .venv/bin/python tests/mutations.py --list     # what they are
    .venv/bin/python tests/mutations.py trt-no-profile tiling-srresnet-radius

Each mutation replaces one piece of source text in a temporary copy of the working tree and
runs the tests named for it there (files, globs such as ``tests/*tensorrt*.py``, ``-k``
expressions); a failing run means the bug was caught.  The same tests first run on the
unmutated copy, so a suite that fails anyway is reported as such, not as a catch.  A mutation
whose text is no longer in the source says so ("not applied"): update it with the code.
Exit status 0 only when every mutation applied was caught.  Not collected by pytest (no
``test_`` prefix); nothing in the working tree is changed.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
    "build",
    "dist",
    "runs",
    "out",
)
TENSORRT_TESTS = ("tests/*tensorrt*.py",)
RGB_TESTS = ("tests/test_rgb_colour.py",)
RESUME_TESTS = ("tests/test_train.py", "-k", "resume")


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # source text to replace (every occurrence)
    new: str
    tests: tuple[str, ...]  # pytest arguments, run from the copy's root
    what: str


MUTATIONS = (
    Mutation(
        "rgb-input-matrix",
        "vidsr/upscaler.py",
        "rgb = ycbcr_to_rgb(torch.cat((y, full), 1), src)",
        "rgb = ycbcr_to_rgb(torch.cat((y, full), 1), BT601_STUDIO)",
        RGB_TESTS,
        "RGB models: input converted with BT.601 studio whatever the video says",
    ),
    Mutation(
        "rgb-output-matrix",
        "vidsr/upscaler.py",
        "ycc = rgb_to_ycbcr(out, dst)",
        "ycc = rgb_to_ycbcr(out, src)",
        RGB_TESTS,
        "RGB models: output converted with the input's matrix and range",
    ),
    Mutation(
        "bt709-coefficient",
        "vidsr/colour.py",
        '"bt709": (0.2126, 0.0722)',
        '"bt709": (0.2126, 0.0730)',
        RGB_TESTS,
        "BT.709's Kb off by 0.0008",
    ),
    Mutation(
        "full-range-chroma",
        "vidsr/colour.py",
        "return 0.0, 1.0, 1.0",
        "return 0.0, 1.0, 224.0 / 255.0",
        RGB_TESTS,
        "full-range chroma scaled like studio range",
    ),
    Mutation(
        "trt-no-profile",
        "vidsr/backends/tensorrt.py",
        "config.add_optimization_profile(profile) < 0",
        "False",
        TENSORRT_TESTS,
        "TensorRT build: the optimisation profile is never added",
    ),
    Mutation(
        "trt-ignore-mismatch",
        "vidsr/backends/tensorrt.py",
        "ignore_mismatch=False",
        "ignore_mismatch=True",
        TENSORRT_TESTS,
        "TensorRT build: a timing cache from another GPU or version is accepted",
    ),
    Mutation(
        "trt-weakly-typed",
        "vidsr/backends/tensorrt.py",
        "network = builder.create_network(_strongly_typed(trt))",
        "network = builder.create_network(0)",
        TENSORRT_TESTS,
        "TensorRT build: a weakly typed network on TensorRT 10 (precision then TensorRT's choice, not the graph's)",
    ),
    Mutation(
        "trt-fp16-graph-skipped",
        "vidsr/backends/tensorrt.py",
        'if precision == "fp32":',
        "if True:",
        TENSORRT_TESTS,
        "TensorRT build: fp16 engines parse the float32 export (strongly typed, they would run in fp32)",
    ),
    Mutation(
        "trt-pool-type",
        "vidsr/backends/tensorrt.py",
        "trt.MemoryPoolType.WORKSPACE",
        "trt.MemoryPoolType.DLA_MANAGED_SRAM",
        TENSORRT_TESTS,
        "TensorRT build: the workspace limit set on the wrong memory pool",
    ),
    Mutation(
        "trt-call-no-batch-split",
        "vidsr/backends/tensorrt.py",
        "if x.shape[0] > self.max_batch:",
        "if False:",
        TENSORRT_TESTS,
        "TensorRTBackend.__call__: batches over the profile's maximum go to the engine whole",
    ),
    Mutation(
        "trt-call-no-input-shape",
        "vidsr/backends/tensorrt.py",
        "if not ctx.set_input_shape(self.input_name, tuple(x.shape)):",
        "if False:",
        TENSORRT_TESTS,
        "TensorRTBackend.__call__: the input shape is never set on the context",
    ),
    Mutation(
        "trt-call-no-dtype-cast",
        "vidsr/backends/tensorrt.py",
        "if x.device != self._where or x.dtype != self.dtype:",
        "if False:",
        TENSORRT_TESTS,
        "TensorRTBackend.__call__: input handed over in whatever dtype and device it came in",
    ),
    Mutation(
        "trt-call-no-align",
        "vidsr/backends/tensorrt.py",
        "return self._run(_aligned(x))",
        "return self._run(x)",
        TENSORRT_TESTS,
        "TensorRTBackend.__call__: unaligned views (split batches) given to TensorRT as they are",
    ),
    Mutation(
        "trt-half-dtype",
        "vidsr/backends/tensorrt.py",
        "trt.DataType.HALF: torch.float16",
        "trt.DataType.HALF: torch.bfloat16",
        TENSORRT_TESTS,
        "TensorRT dtype mapping: half read as bfloat16",
    ),
    Mutation(
        "resume-no-rng-restore",
        "vidsr/train/loop.py",
        '_set_rng_state(ckpt["rng"])',
        "pass",
        RESUME_TESTS,
        "training resume: the torch/numpy/random generator states are not restored",
    ),
    Mutation(
        "resume-no-sampler-restore",
        "vidsr/train/loop.py",
        'sampler.load_state_dict(ckpt["sampler"])',
        "pass",
        RESUME_TESTS,
        "training resume: the patch sampler starts over",
    ),
    Mutation(
        "tiling-srresnet-radius",
        "vidsr/tiling.py",
        '"srresnet": 40',
        '"srresnet": 39',
        ("tests/test_tiling.py",),
        "tiling: SRResNet's receptive radius one pixel short (the old table value)",
    ),
    Mutation(
        "tiling-espcn-radius",
        "vidsr/tiling.py",
        '"espcn": 4',
        '"espcn": 3',
        ("tests/test_tiling.py",),
        "tiling: ESPCN's receptive radius one pixel short",
    ),
    Mutation(
        "tiling-cut-off-centre",
        "vidsr/tiling.py",
        "bounds.append((starts[i + 1] + starts[i] + tile) // 2)",
        "bounds.append(starts[i] + tile - 1)",
        ("tests/test_tiling.py",),
        "tiling: tiles cut at the edge of their overlap, not in its middle",
    ),
    Mutation(
        "weights-pickle-unsafe",
        "vidsr/models/weights.py",
        "weights_only=True",
        "weights_only=False",
        ("tests/test_models.py", "-k", "pickle"),
        "weights: pickles loaded with code execution allowed",
    ),
)


def copy_tree(dest: Path) -> Path:
    tree = dest / "tree"
    shutil.copytree(ROOT, tree, ignore=COPY_IGNORE, symlinks=True)
    return tree


def child_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The copy's vidsr, not the editable install of the working tree; the real data where it is.
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("VIDSR_DATA", str(ROOT.parent / "shared" / "data"))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_isolated(tree: Path) -> None:
    found = subprocess.run(
        [sys.executable, "-c", "import vidsr; print(vidsr.__file__)"],
        cwd=tree,
        env=child_env(tree),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        sys.exit(f"the copy imports vidsr from {found}, not from {tree}: mutations would not be tested")


def pytest_args(tree: Path, tests: tuple[str, ...]) -> list[str] | None:
    """The arguments with globs expanded in the copy; None when a glob matches nothing."""
    args: list[str] = []
    for arg in tests:
        if any(ch in arg for ch in "*?["):
            matches = sorted(glob.glob(arg, root_dir=tree))
            if not matches:
                return None
            args += matches
        else:
            args.append(arg)
    return args


def run_tests(tree: Path, args: list[str], timeout: int) -> tuple[int, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args]
    try:
        done = subprocess.run(command, cwd=tree, env=child_env(tree), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    lines = (done.stdout + done.stderr).strip().splitlines()
    # The test that caught it (pytest's short summary), else pytest's last line.
    failed = [line.split(" - ")[0] for line in lines if line.startswith(("FAILED tests/", "ERROR tests/"))]
    return done.returncode, failed[0] if failed else (lines[-1] if lines else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per pytest run")
    opts = parser.parse_args()
    known = {m.name: m for m in MUTATIONS}
    if opts.list:
        for m in MUTATIONS:
            print(f"{m.name:28} {m.what}  [{' '.join(m.tests)}]")
        return 0
    unknown = [n for n in opts.names if n not in known]
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; see --list")
    chosen = [known[n] for n in opts.names] if opts.names else list(MUTATIONS)

    results: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="vidsr-mutations-") as tmp:
        tree = copy_tree(Path(tmp))
        check_isolated(tree)
        baseline: dict[tuple[str, ...], tuple[int, str]] = {}
        for m in chosen:
            started = time.perf_counter()
            args = pytest_args(tree, m.tests)
            source = tree / m.path
            text = source.read_text() if source.is_file() else ""
            if args is None:
                verdict, detail = "no tests", f"nothing matches {' '.join(m.tests)}"
            elif m.old not in text:
                verdict, detail = "not applied", f"{m.old!r} is not in {m.path}"
            else:
                key = tuple(args)
                if key not in baseline:
                    baseline[key] = run_tests(tree, args, opts.timeout)
                rc, summary = baseline[key]
                if rc != 0:
                    verdict, detail = "suite fails", f"unmutated: {summary}"
                else:
                    source.write_text(text.replace(m.old, m.new))
                    try:
                        rc, summary = run_tests(tree, args, opts.timeout)
                    finally:
                        source.write_text(text)
                    verdict = {0: "MISSED", 1: "caught"}.get(rc, f"error (pytest exit {rc})")
                    if rc < -1:  # killed by a signal: the run failed, though not by an assertion
                        verdict = f"caught (crash, signal {-rc})"
                    detail = summary
            seconds = time.perf_counter() - started
            results.append((m.name, verdict, detail))
            print(f"{m.name:28} {verdict:12} {seconds:6.1f} s  {detail}", flush=True)

    caught = sum(v.startswith("caught") for _, v, _ in results)
    print(f"\n{caught} of {len(results)} caught")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
