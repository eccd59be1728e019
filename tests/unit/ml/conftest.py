"""Fixtures for the ML tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.ml._helpers import copy_models


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A private copy of models/ (registry + ONNX files) that a test may tamper with."""
    return copy_models(tmp_path / "models")
