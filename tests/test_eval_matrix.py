"""`vidsr eval --degradations`: the matrix, against the protocol and an independent Lanczos."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import data_path
from PIL import Image

from vidsr.cli import cli
from vidsr.degrade import matrix_rows
from vidsr.evaluate import evaluate_images, evaluate_matrix, load_rgb


@pytest.fixture(scope="module")
def crops():
    return [(n, load_rgb(data_path("val", n))[:, 100:220, 100:244]) for n in ("butterfly.png", "smarties.png")]


def test_protocol_row_equals_the_protocol(crops) -> None:
    matrix = evaluate_matrix(crops, 2, None, matrix_rows("bicubic-aa"))
    protocol = evaluate_images(crops, 2, None)
    row = matrix.rows[0]
    assert row.bicubic_psnr == pytest.approx(protocol.bicubic_psnr, abs=1e-9)
    assert row.psnr == row.bicubic_psnr and row.gain == 0.0  # no model: bicubic in the model's columns


def test_lanczos_column_is_pillows_lanczos(crops) -> None:
    _name, hr = crops[0]
    row = evaluate_matrix([crops[0]], 3, None, matrix_rows("area")).rows[0]
    # Independently: numpy block mean for the LR, Pillow Lanczos up, MATLAB's Y, shave 3.
    arr = (hr.permute(1, 2, 0).numpy() * 255).round()
    lr = arr.reshape(40, 3, 48, 3, 3).mean(axis=(1, 3)).round().clip(0, 255).astype(np.uint8)
    up = np.asarray(Image.fromarray(lr).resize((144, 120), Image.LANCZOS), dtype=np.float64) / 255

    def y(rgb):
        return 16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]

    err = (y(up) - y(arr / 255))[3:-3, 3:-3]
    assert row.lanczos_psnr == pytest.approx(10 * math.log10(255**2 / np.mean(err**2)), abs=1e-6)


def test_eval_cli_prints_the_matrix_and_json(tmp_path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.open(data_path("val", "smarties.png")).convert("RGB").crop((100, 100, 196, 196)).save(folder / "a.png")
    args = ["eval", str(folder), "--model", "espcn", "--scale", "2", "--weights", "paper", "--degradations", "all"]
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert [ln.split()[0] for ln in lines[2:]] == [r.name for r in matrix_rows("all")] + ["mean"]
    data = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    assert [r["degradation"] for r in data["rows"]] == [r.name for r in matrix_rows("all")]
    assert data["mean_gain"] == pytest.approx(np.mean([r["gain"] for r in data["rows"]]))
    bad = CliRunner().invoke(cli, [*args[:-1], "sharpen"])
    assert bad.exit_code == 1 and "Error: unknown degradation sharpen" in bad.output
