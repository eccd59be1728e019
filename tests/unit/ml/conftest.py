"""Fixtures for the ML tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.ml._helpers import copy_models, drop_cli_log_handlers


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A private copy of models/ (registry + ONNX files) that a test may tamper with."""
    return copy_models(tmp_path / "models")


@pytest.fixture(autouse=True)
def _drop_cli_log_handlers() -> Iterator[None]:
    """The CLI installs a stderr handler bound to CliRunner's stream, closed after invoke."""
    yield
    drop_cli_log_handlers()
