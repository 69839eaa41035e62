"""benchmarks/precision.py's row filter: a misspelt row is an error, not an empty table."""

from __future__ import annotations

import sys

import pytest
from conftest import load_script

from vidsr.models.weights import shipped_sets


@pytest.fixture(scope="module")
def precision():
    yield load_script("precision", "precision_benchmark")
    sys.modules.pop("precision_benchmark", None)


def test_an_unknown_row_is_refused_before_anything_runs(precision, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        precision.main(["--only", "srresnet:large,espcn:nope"])
    assert stop.value.code == 2
    assert "no such rows: espcn:nope" in capsys.readouterr().err


def test_every_shipped_srresnet_x2_set_below_paper_has_a_row(precision) -> None:
    rows = {precision.row_name(row) for row in precision.SETS if row[2] == 2}
    assert {f"srresnet:{name}" for name in shipped_sets("srresnet", 2) if name != "paper"} <= rows
