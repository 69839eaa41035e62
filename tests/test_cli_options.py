"""The CLI's model list is written out (so `vidsr --help` needs no torch); it must match the registry."""

from vidsr.cli.gpu import LEARNED
from vidsr.cli.options import MODEL_NAMES
from vidsr.models import REGISTRY


def test_cli_model_names_match_registry():
    assert list(REGISTRY) == MODEL_NAMES


def test_cli_learned_names_match_registry():
    assert [name for name, spec in REGISTRY.items() if spec.learned] == LEARNED
