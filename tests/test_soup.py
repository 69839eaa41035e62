"""Weight averaging ("model soups") and benchmarks/soup.py, which exports one as a run's pick is exported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import load_script, tiny_kept_run
from safetensors.torch import load_file

from vidsr.errors import ModelError
from vidsr.models.espcn import espcn
from vidsr.models.weights import average_states, interpolate_states, read_metadata


@pytest.fixture(scope="module")
def soup():
    yield load_script("soup", "soup_benchmark")
    sys.modules.pop("soup_benchmark", None)


def test_the_average_of_networks_is_their_tensorwise_mean() -> None:
    torch.manual_seed(0)
    states = [espcn(scale=2).state_dict() for _ in range(3)]
    mean = average_states(states)
    for key, value in mean.items():
        assert value.dtype == torch.float32
        assert torch.allclose(value, (states[0][key] + states[1][key] + states[2][key]) / 3, atol=1e-7)
    pair = average_states(states[:2])
    halfway = interpolate_states(states[0], states[1], 0.5)
    assert all(torch.allclose(pair[k], halfway[k]) for k in pair)
    assert all(torch.equal(average_states(states[:1])[k], states[0][k].float()) for k in mean)


def test_averaging_refuses_networks_that_do_not_match() -> None:
    x2 = espcn(scale=2).state_dict()
    with pytest.raises(ModelError, match=r"cannot average: .* differ in shape"):
        average_states([x2, espcn(scale=3).state_dict()])
    with pytest.raises(ModelError, match="differ in 1 tensors"):
        average_states([x2, x2, dict(list(x2.items())[:-1])])
    with pytest.raises(ModelError, match="no networks"):
        average_states([])


def test_a_soup_exports_with_its_run_and_its_members_in_the_recipe(soup, tmp_path: Path) -> None:
    config, run = tiny_kept_run(tmp_path), tmp_path / "run.pt"
    # A step file carries no recipe; the run's export does.
    members = [tmp_path / "run.step2.safetensors", tmp_path / "run.safetensors"]

    dest = tmp_path / "soup.safetensors"
    meta = soup.make_soup(members, run, dest)
    assert read_metadata(dest) == meta
    assert meta["recipe"]["soup"]["method"] == soup.METHOD
    step2, export = meta["recipe"]["soup"]["members"]
    assert (step2["file"], step2["run"]) == ("run.step2.safetensors", None)
    assert export["file"] == "run.safetensors" and export["run"]["seed"] == config.seed
    assert meta["history"][-1] == meta["recipe"] and meta["recipe"]["steps"] == 4
    expected = average_states([load_file(str(path)) for path in members])
    written = load_file(str(dest))
    assert all(torch.equal(written[k], expected[k].half()) for k in expected)
    assert isinstance(meta["val_psnr"], float) and "matrix" in meta  # measured on the soup that ships

    with pytest.raises(SystemExit, match="at least two"):
        soup.make_soup(members[:1], run, tmp_path / "one.safetensors")
