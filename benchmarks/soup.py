"""Average fine-tunes of one network into one weights file (a uniform "model soup"), exported as a run's pick is.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/soup.py --run runs/RUN.pt --out runs/RUN.soup.safetensors \
        MEMBER.safetensors MEMBER.safetensors [...]

The members must be one network (the same tensors, the same shapes) fine-tuned from one set of weights
(:func:`vidsr.models.weights.average_states`); each tensor of the soup is their mean in float32, stored as
fp16.  ``--run`` is the checkpoint of the run whose options the soup's metadata records (normally the newest
member's): it is measured and written by that run's own export, on the selection photos only, and its
recipe gains ``soup``, each member's file name and the last run of its history.  Whether a soup ships is
decided as for any run, with ``benchmarks/selection.py`` and a rule written first
(``benchmarks/training/README.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHOD = "uniform weight average (model soup)"


def member_record(path: Path) -> dict[str, Any]:
    from vidsr.models.weights import read_metadata, training_runs

    runs = training_runs(read_metadata(path))
    return {"file": path.name, "run": runs[-1] if runs else None}


def make_soup(members: list[Path], run: Path, dest: Path) -> dict[str, Any]:
    """Write the average of ``members`` to ``dest`` with ``run``'s metadata, measured on what is written."""
    from safetensors.torch import load_file

    from vidsr.models.weights import average_states, rewrite_metadata
    from vidsr.train.loop import export_weights, run_of_checkpoint

    if len(members) < 2:
        raise SystemExit("Error: a soup needs at least two members")
    config, checkpoint = run_of_checkpoint(run)
    state = average_states([load_file(str(path)) for path in members])
    best_step = (checkpoint.get("best") or {}).get("step")
    meta = export_weights(config, state, dest, checkpoint["seconds"], checkpoint["step"], best_step)
    # The recipe is also the history's last run: one dict, both updated.
    meta["recipe"]["soup"] = {"method": METHOD, "members": [member_record(path) for path in members]}
    rewrite_metadata(dest, meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", type=Path, nargs="+", help="weights files (.safetensors) of one network")
    parser.add_argument("--run", type=Path, required=True, help="the run checkpoint (RUN.pt) the metadata names")
    parser.add_argument("--out", type=Path, required=True, help="the soup's weights file")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    meta = make_soup(args.members, args.run, args.out)
    print(f"wrote {args.out}: {len(args.members)} members, selection-side protocol PSNR {meta['val_psnr']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
