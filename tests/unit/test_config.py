"""Settings: environment, TOML file, validation, and the README table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from thunderline.config import DEFAULT_ROUTES, OverflowPolicy, Settings, load_settings
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
    assert s.routes["*"] == ["package"]
    assert s.routes["txt"] == DEFAULT_ROUTES["txt"]  # user routes merge over the defaults
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
    with pytest.raises(ConfigError, match="TL_QUEUE_MAX"):
        load_settings()
    monkeypatch.delenv("TL_QUEUE_MAX")
    monkeypatch.setenv("TL_OVERFLOW_POLICY", "explode")
    with pytest.raises(ConfigError, match="TL_OVERFLOW_POLICY"):
        load_settings()


def test_readme_table_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(TL_[A-Z0-9_]+)`", readme))
    expected = {f"TL_{name.upper()}" for name in Settings.model_fields}
    assert expected <= documented, f"missing from README: {sorted(expected - documented)}"


def test_routes_merge_end_in_package_and_refuse_unknown_stages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = load_settings(routes={"txt": ["nlp"], "png": []})
    assert s.routes["txt"] == ["nlp", "package"]  # every route ends in package
    assert s.routes["png"] == ["package"]
    assert s.routes["image"] == ["extract", "infer", "package"]  # defaults kept
    for bad, why in (
        ({"txt": ["nlp", "sumarize"]}, "unknown stage"),
        ({"txt": ["package", "nlp"]}, "must be the last"),
        ({"txt": ["nlp", "nlp"]}, "twice"),
    ):
        with pytest.raises(ConfigError, match=f"TL_ROUTES.*{why}"):
            load_settings(routes=bad)
    from thunderline.config import ROUTE_STAGES
    from thunderline.runtime import WIRING

    assert tuple(spec.name for spec in WIRING if spec.name != "classify") == ROUTE_STAGES


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TL_ROUTES", "not json", "TL_ROUTES"),
        ("TL_LOG_LEVEL", "LOUD", "TL_LOG_LEVEL: 'LOUD' is not a log level"),
        ("TL_S3_ENDPOINT_URL", "not a url", "TL_S3_ENDPOINT_URL"),
        ("TL_S3_ENDPOINT_URL", "http://host:99999", "TL_S3_ENDPOINT_URL"),
        ("TL_QUEUE_MAX", "many", "TL_QUEUE_MAX"),
        ("TL_MAGIKA_PREDICTION_MODE", "psychic", "TL_MAGIKA_PREDICTION_MODE"),
    ],
)
def test_every_bad_value_is_a_config_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_settings()


def test_log_level_is_case_insensitive() -> None:
    assert load_settings(log_level="debug").log_level == "DEBUG"


def test_unusable_home_is_a_config_error(tmp_path: Path) -> None:
    from thunderline.config import check_home

    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"TL_HOME=.*not a directory"):
        check_home(load_settings(home=tmp_path / "file"))
    with pytest.raises(ConfigError, match=r"TL_HOME=.*cannot be created"):
        check_home(load_settings(home=tmp_path / "file" / "sub"))
    check_home(load_settings(home=tmp_path / "new" / "home"))
    assert (tmp_path / "new" / "home").is_dir()


def test_unknown_variables_are_reported_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from thunderline.config import unknown_variables

    monkeypatch.setenv("TL_SPACY_WORKER", "4")
    monkeypatch.setenv("TL_ZZZ_QQQ", "1")
    monkeypatch.setenv("TL_TEST_WHATEVER", "1")  # test harness variables are not settings
    assert unknown_variables() == [("TL_SPACY_WORKER", "TL_SPACY_WORKERS"), ("TL_ZZZ_QQQ", None)]
    with caplog.at_level("WARNING", logger="thunderline.config"):
        load_settings()
    assert "TL_SPACY_WORKER is ignored (did you mean TL_SPACY_WORKERS?)" in caplog.text


def test_secrets_are_masked() -> None:
    from thunderline.config import mask_secrets, masked_dump

    url = "postgresql+psycopg://tl:s3cr3t-pw@db:5432/tl?sslpassword=x&token=abc"
    assert "s3cr3t-pw" not in mask_secrets(url) and "abc" not in mask_secrets(url)
    assert mask_secrets(url).startswith("postgresql+psycopg://tl:***@db:5432/tl")
    dumped = masked_dump(load_settings(database_url=url))
    assert "s3cr3t-pw" not in str(dumped)
    with pytest.raises(ConfigError) as info:
        load_settings(database_url="postgresql://u:hunter2@h/db", queue_max=0, log_level="x")
    assert "hunter2" not in str(info.value)
