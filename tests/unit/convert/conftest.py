"""Fixtures for the converter tests: real Keras (the ``convert`` extra) and real .keras files.

Without TensorFlow/Keras these tests skip with the reason, except under
``TL_TEST_REQUIRE_SERVICES=1`` (CI, where ``make test`` installs the extra): then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from tests.unit.ml._helpers import drop_cli_log_handlers

from thunderline.convert import ConvertUnavailableError, import_keras


@pytest.fixture(scope="session")
def keras() -> ModuleType:
    try:
        module = import_keras()
    except ConvertUnavailableError as exc:
        if os.environ.get("TL_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{exc} (TL_TEST_REQUIRE_SERVICES=1: the convert extra is required)")
        pytest.skip(str(exc))
    return module


def small_model(keras: ModuleType, *, seed: int = 7) -> Any:
    """A tiny image classifier: pixels [None, 8, 8, 1] -> probabilities [None, 3]."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture
def keras_file(keras: ModuleType, tmp_path: Path) -> Path:
    """A real .keras file of :func:`small_model`."""
    path = tmp_path / "small.keras"
    small_model(keras).save(path)
    return path


@pytest.fixture
def custom_layer_file(keras: ModuleType, tmp_path: Path) -> Path:
    """A .keras file whose model uses a custom (registered) layer class."""

    @keras.saving.register_keras_serializable(package="thunderline_tests")
    class Doubler(keras.layers.Layer):  # type: ignore[misc, name-defined]
        def call(self, x: Any) -> Any:
            return x * 2.0

    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Dense(2, activation="softmax", name="y")(Doubler()(inputs))
    path = tmp_path / "custom.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture(autouse=True)
def _drop_cli_log_handlers() -> Iterator[None]:
    """The CLI installs a stderr handler bound to CliRunner's stream, closed after invoke."""
    yield
    drop_cli_log_handlers()


def zeros(shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    return np.zeros(shape, dtype=np.float32)
