"""Export a learned model to ONNX with dynamic batch, height and width (the input to TensorRT).

The graph takes and returns float32 NCHW in [0, 1]-ish code values, exactly like the
PyTorch module.  TensorRT's FP16 engines are built from its float16 conversion
(:mod:`vidsr.backends.onnx_fp16`): strongly typed networks compute in the graph's types.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from vidsr.backends.engine_cache import unique_temp
from vidsr.errors import BackendError
from vidsr.models import LoadedModel

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "output"
DEFAULT_OPSET = 18  # the dynamo exporter's native opset; TensorRT 10 and 11 parse it


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_exportable(loaded: LoadedModel) -> None:
    if not loaded.spec.learned:
        raise BackendError(
            f"{loaded.spec.name} is an interpolation baseline; it runs on torch backends, not as ONNX/TensorRT"
        )


def _check_exporter() -> None:
    """``torch.onnx.export(dynamo=True)`` needs onnxscript (and onnx); say so before seconds of tracing."""
    import importlib.util

    missing = [name for name in ("onnxscript", "onnx") if _find(importlib.util, name) is None]
    if missing:
        raise BackendError(
            f"ONNX export needs {' and '.join(missing)}: pip install 'vidsr[tensorrt]' (or 'vidsr[onnx]')"
        )


def _find(util, name: str):
    try:
        return util.find_spec(name)
    except (ImportError, ValueError):  # a module set to None in sys.modules raises ValueError
        return None


def export_onnx(
    loaded: LoadedModel,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    max_hw: tuple[int, int] = (4096, 4096),
    max_batch: int = 256,
) -> Path:
    """Write ``loaded``'s module as ONNX to ``path``; returns the path.

    Batch, height and width are dynamic (symbolic ``batch``/``height``/``width``).
    """
    check_exportable(loaded)
    _check_exporter()
    path = Path(path)
    if not path.parent.is_dir():  # before the export, which takes seconds
        raise BackendError(f"cannot write {path}: folder {path.parent} does not exist")
    # A copy: the caller's module may live on a GPU in fp16 and must stay there.
    module = copy.deepcopy(loaded.module).float().eval().cpu()
    channels = loaded.spec.channels
    example = torch.rand(2, channels, 32, 48)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    height = torch.export.Dim("height", min=8, max=max_hw[0])
    width = torch.export.Dim("width", min=8, max=max_hw[1])
    # Unique per process and thread: parallel batch workers export the same model to one path.
    temp = unique_temp(path)
    try:
        # The exporter narrates every step on stdout and warns about torchvision; keep the CLI quiet.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_logger("torch.onnx"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes={"x": {0: batch, 2: height, 3: width}},
                verbose=False,
            )
            program.save(str(temp))
        temp.replace(path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise BackendError(f"cannot write {path}: {exc.strerror}") from None
    except Exception as exc:  # exporter failures come in many types
        temp.unlink(missing_ok=True)
        raise BackendError(f"ONNX export of {loaded.spec.name} x{loaded.scale} failed: {exc}") from exc
    log.info("exported %s x%d to %s", loaded.spec.name, loaded.scale, path)
    return path


def onnx_io_names(path: str | Path) -> tuple[list[str], list[str]]:
    """Input and output names of an ONNX file (needs the ``onnx`` package)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [i.name for i in model.graph.input], [o.name for o in model.graph.output]


def verify_onnx(
    loaded: LoadedModel,
    path: str | Path,
    shapes: tuple[tuple[int, int, int], ...] = ((1, 24, 40), (3, 37, 29)),
    seed: int = 0,
) -> float:
    """Max abs difference between onnxruntime on ``path`` and the PyTorch module, over ``shapes``.

    ``shapes`` are (batch, height, width): two batch sizes and two frame sizes by default,
    which exercises every dynamic axis.  Needs ``onnxruntime`` (the ``onnx`` extra).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    module = copy.deepcopy(loaded.module).float().eval().cpu()
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch, height, width in shapes:
        x = torch.rand(batch, loaded.spec.channels, height, width, generator=generator)
        with torch.inference_mode():
            expected = module(x).numpy()
        (got,) = session.run(None, {name: x.numpy()})
        if got.shape != expected.shape:
            raise BackendError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape}")
        worst = max(worst, float(abs(got - expected).max()))
    return worst
