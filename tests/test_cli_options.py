"""The CLI's model list is written out (so `vidsr --help` needs no torch); it must match the registry."""

from vidsr.cli.gpu import LEARNED
from vidsr.cli.options import MODEL_NAMES
from vidsr.models import REGISTRY


def test_cli_model_names_match_registry():
    assert list(REGISTRY) == MODEL_NAMES


def test_cli_learned_names_match_registry():
    assert [name for name, spec in REGISTRY.items() if spec.learned] == LEARNED


def test_cli_backend_and_precision_choices_match_the_library():
    from vidsr.backends import BACKENDS, PRECISIONS
    from vidsr.cli.main import cli

    params = {p.name: p for p in cli.commands["upscale"].params}
    assert list(params["backend"].type.choices) == list(BACKENDS)
    assert list(params["precision"].type.choices) == list(PRECISIONS)
