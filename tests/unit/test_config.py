"""Settings: environment, TOML file, validation, and the README table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from thunderline.config import OverflowPolicy, Settings, load_settings
from thunderline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = Settings()
    assert s.enable_ml_pipeline is True
    assert s.onnx_enabled is False and s.onnx_threadpool == 4
    assert s.onnx_execution_provider == "cpu" and s.allow_untrusted_models is False
    assert s.bus_url == "memory://"
    assert s.resolved_database_url.startswith("sqlite:///")


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TL_ENABLE_ML_PIPELINE", "false")
    monkeypatch.setenv("TL_OVERFLOW_POLICY", "drop_oldest")
    monkeypatch.setenv("TL_ROUTES", '{"*": ["package"]}')
    monkeypatch.setenv("TL_HOME", str(tmp_path))
    s = load_settings()
    assert s.enable_ml_pipeline is False
    assert s.overflow_policy is OverflowPolicy.DROP_OLDEST
    assert s.routes == {"*": ["package"]}
    assert s.home == tmp_path


def test_toml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "tl.toml"
    toml.write_text("classify_batch_size = 7\nspacy_workers = 3\n")
    monkeypatch.setenv("TL_CONFIG", str(toml))
    monkeypatch.setenv("TL_SPACY_WORKERS", "1")
    s = load_settings()
    assert s.classify_batch_size == 7
    assert s.spacy_workers == 1


def test_invalid_settings_are_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_QUEUE_MAX", "0")
    with pytest.raises(ConfigError, match="queue_max"):
        load_settings()
    monkeypatch.delenv("TL_QUEUE_MAX")
    monkeypatch.setenv("TL_OVERFLOW_POLICY", "explode")
    with pytest.raises(ConfigError, match="overflow_policy"):
        load_settings()


def test_readme_table_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(TL_[A-Z0-9_]+)`", readme))
    expected = {f"TL_{name.upper()}" for name in Settings.model_fields}
    assert expected <= documented, f"missing from README: {sorted(expected - documented)}"
