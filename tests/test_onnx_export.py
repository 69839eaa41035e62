"""ONNX export: dynamic batch/height/width, numerically equal to PyTorch in onnxruntime."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from vidsr.backends.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, onnx_io_names, verify_onnx
from vidsr.errors import BackendError
from vidsr.models import LoadedModel, build_model, get_spec
from vidsr.models.espcn import espcn
from vidsr.models.mean import ModelMean
from vidsr.models.srresnet import srresnet

pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")

# Two batch sizes x two frame sizes (odd ones included): every dynamic axis changes.
SHAPES = ((1, 24, 40), (3, 37, 29))
TOLERANCE = 1e-4


def random_model(name: str, scale: int, config: str = "paper") -> LoadedModel:
    torch.manual_seed(1)
    module = espcn(scale=scale) if name == "espcn" else srresnet(scale=scale, blocks=2, config=config)
    if name == "srresnet":
        # Non-trivial batch-norm statistics, so eval-mode folding is really exercised.
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return LoadedModel(get_spec(name), scale, module.eval().requires_grad_(False))


@pytest.mark.parametrize(
    ("name", "scale", "config"), [("espcn", 4, ""), ("srresnet", 2, "paper"), ("srresnet", 4, "cascade")]
)
def test_export_matches_pytorch_on_dynamic_shapes(tmp_path, name, scale, config):
    loaded = random_model(name, scale, config)
    if config == "cascade":  # its output convs start at zero (exactly bicubic): draw them, so the passes show
        for one_pass in loaded.module.passes:
            torch.nn.init.normal_(one_pass.upsample[0].weight, std=0.05)
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
    assert not list(tmp_path.glob(".*tmp"))


def test_a_mean_of_networks_exports_as_one_graph(tmp_path):
    """``--weights large+cascade`` runs as one module: its ONNX graph gives the members' mean."""
    members = [random_model("srresnet", 4, config).module for config in ("large", "cascade")]
    for one_pass in members[1].passes:  # output convs start at zero (exactly bicubic): draw them
        torch.nn.init.normal_(one_pass.upsample[0].weight, std=0.05)
    mean = ModelMean(members, max(m.receptive_radius for m in members)).eval().to(torch.float64)
    loaded = LoadedModel(get_spec("srresnet"), 4, mean)
    path = export_onnx(loaded, tmp_path / "mean.onnx")
    assert verify_onnx(loaded, path, SHAPES) < TOLERANCE


class ResidualESPCN(nn.Module):
    """The shape of the deeper ESPCN family: conv stack + PixelShuffle, plus an in-graph bicubic of the input.

    Built here (not imported) so the export is tested whatever the shipped ESPCN looks like.
    ``by_size``: the upscale size taken from the input's shape, rather than a scale factor.
    """

    def __init__(self, scale: int, width: int = 12, layers: int = 4, by_size: bool = False) -> None:
        super().__init__()
        self.scale, self.by_size = scale, by_size
        body: list[nn.Module] = [nn.Conv2d(1, width, 5, padding=2), nn.ReLU()]
        for _ in range(layers - 2):
            body += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        body += [nn.Conv2d(width, scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.by_size:
            h, w = x.shape[-2:]
            base = F.interpolate(x, size=(h * self.scale, w * self.scale), mode="bicubic", align_corners=False)
        else:
            base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.body(x)


@pytest.mark.parametrize(("scale", "by_size"), [(4, False), (3, True)])
def test_bicubic_residual_espcn_exports_with_dynamic_size(tmp_path, scale, by_size):
    torch.manual_seed(2)
    module = ResidualESPCN(scale, by_size=by_size).eval().requires_grad_(False)
    loaded = LoadedModel(get_spec("espcn"), scale, module)
    path = export_onnx(loaded, tmp_path / "residual.onnx")
    model = onnx.load(str(path))
    assert any(node.op_type == "Resize" for node in model.graph.node)  # the bicubic is in the graph
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    mode = next(a.s for a in resize.attribute if a.name == "mode")
    assert mode == b"cubic"
    # Odd sizes and two batch sizes: a size frozen at export time would fail here.
    error = verify_onnx(loaded, path, ((1, 24, 40), (3, 37, 29), (2, 50, 17)))
    assert error < TOLERANCE


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
