"""ONNX export: dynamic batch/height/width, numerically equal to PyTorch in onnxruntime."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from vidsr.backends.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, onnx_io_names, verify_onnx
from vidsr.errors import BackendError
from vidsr.models import LoadedModel, build_model, get_spec
from vidsr.models.espcn import espcn
from vidsr.models.srresnet import srresnet

pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")

# Two batch sizes x two frame sizes (odd ones included): every dynamic axis changes.
SHAPES = ((1, 24, 40), (3, 37, 29))
TOLERANCE = 1e-4


def random_model(name: str, scale: int) -> LoadedModel:
    torch.manual_seed(1)
    module = espcn(scale=scale) if name == "espcn" else srresnet(scale=scale, blocks=2)
    if name == "srresnet":
        # Non-trivial batch-norm statistics, so eval-mode folding is really exercised.
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return LoadedModel(get_spec(name), scale, module.eval().requires_grad_(False))


@pytest.mark.parametrize(("name", "scale"), [("espcn", 4), ("srresnet", 2)])
def test_export_matches_pytorch_on_dynamic_shapes(tmp_path, name, scale):
    loaded = random_model(name, scale)
    loaded.module.to(torch.float64)  # the export works on a copy: the caller's module stays as it is
    path = export_onnx(loaded, tmp_path / f"{name}.onnx")
    assert next(loaded.module.parameters()).dtype == torch.float64
    model = onnx.load(str(path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == loaded.spec.channels
    assert all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3])), dims  # symbolic N, H, W
    assert onnx_io_names(path) == ([INPUT_NAME], [OUTPUT_NAME])
    error = verify_onnx(loaded, path, SHAPES)
    print(f"{name} x{scale}: onnxruntime max abs error {error:.3g}")
    assert error < TOLERANCE
    assert not list(tmp_path.glob(".*partial"))


def test_interpolation_models_are_not_exported(tmp_path):
    with pytest.raises(BackendError, match="interpolation baseline"):
        export_onnx(build_model("bicubic", 2), tmp_path / "b.onnx")


def test_unwritable_destination(tmp_path):
    with pytest.raises(BackendError, match=r"cannot write .*: folder .* does not exist"):
        export_onnx(random_model("espcn", 2), tmp_path / "missing" / "m.onnx")


def test_cli_export_onnx_with_random_weights(tmp_path):
    from vidsr.cli.main import cli

    out = tmp_path / "e.onnx"
    result = CliRunner().invoke(cli, ["export-onnx", "-m", "espcn", "-s", "3", "--random-weights", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "dynamic batch/height/width" in result.output
    assert "onnxruntime vs PyTorch: max abs error" in result.output
