"""Settings: environment, TOML file, validation, and the README table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from thunderline.config import (
    DEFAULT_ROUTES,
    OverflowPolicy,
    RetryPolicy,
    Settings,
    flat_names,
    load_settings,
)
from thunderline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = Settings()
    assert s.enable_ml_pipeline is True
    assert s.onnx.enabled is False and s.onnx.threadpool == 4
    assert s.onnx.execution_provider == "cpu" and s.allow_untrusted_models is False
    assert s.bus.url == "memory://"
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
    assert s.classify.batch_size == 7
    assert s.spacy.workers == 1


def test_each_part_is_a_sub_model_read_from_the_same_flat_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "tl.toml"
    toml.write_text("nlp_concurrency = 5\n[package]\nbatch_size = 9\n[api]\nport = 9001\n")
    monkeypatch.setenv("TL_CONFIG", str(toml))
    monkeypatch.setenv("TL_API_PORT", "9002")  # the environment wins over the file
    monkeypatch.setenv("TL_NLP_BREAKER_WINDOW_S", "12.5")  # split once: nlp.breaker_window_s
    monkeypatch.setenv("TL_RETRY_BACKOFF_MAX_S", "0.5")
    s = load_settings(spacy_workers=3, nlp_batch_docs=4)  # flat arguments nest too
    assert (s.nlp.concurrency, s.nlp.breaker_window_s, s.nlp.batch_docs) == (5, 12.5, 4)
    assert (s.package.batch_size, s.api.port, s.spacy.workers) == (9, 9002, 3)
    assert s.stage_budget("package") is s.package  # a stage part is its own budget
    assert s.stage_budget("infer").batch_size == s.onnx.max_batch_size
    policy = s.retry_policy
    assert (policy.attempts, policy.backoff_s, policy.backoff_max_s) == (3, 0.05, 0.5)
    assert "nlp_breaker_window_s" in flat_names() and "nlp" not in flat_names()
    with pytest.raises(ConfigError, match="TL_NLP_BATCH_DOCS"):
        load_settings(nlp_batch_docs=0)


def test_retry_policy_doubles_caps_jitters_and_counts_attempts() -> None:
    policy = RetryPolicy(attempts=3, backoff_s=0.1, backoff_max_s=0.3)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.3, 0.3]
    assert [policy.allows(n) for n in (1, 2, 3)] == [True, True, False]
    assert RetryPolicy().allows(10_000)  # no limit: the loop's own deadline stops it
    jittered = RetryPolicy(backoff_s=1.0, backoff_max_s=1.0, jitter=0.5)
    delays = {jittered.delay(1) for _ in range(50)}
    assert all(0.5 <= d <= 1.0 for d in delays) and len(delays) > 1


def test_nlp_max_retries_sets_the_nlp_stage_attempts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from thunderline.flow.stage import StageOptions

    monkeypatch.setenv("TL_MAX_ATTEMPTS", "5")
    unset = load_settings()
    assert unset.nlp.max_retries is None
    assert StageOptions.for_stage(unset, "nlp").retry.attempts == 5  # unset: TL_MAX_ATTEMPTS
    monkeypatch.setenv("TL_NLP_MAX_RETRIES", "0")
    monkeypatch.setenv("TL_RETRY_BACKOFF_S", "0.3")
    s = load_settings()
    nlp = StageOptions.for_stage(s, "nlp").retry
    assert (nlp.attempts, nlp.backoff_s) == (1, 0.3)  # retries + 1, the engine's backoff
    for other in ("classify", "extract", "infer", "package"):
        assert StageOptions.for_stage(s, other).retry.attempts == 5
    monkeypatch.setenv("TL_NLP_MAX_RETRIES", "3")  # the old default: 4 attempts
    assert load_settings().stage_retry_policy("nlp").attempts == 4
    monkeypatch.setenv("TL_NLP_MAX_RETRIES", "-1")
    with pytest.raises(ConfigError, match="TL_NLP_MAX_RETRIES"):
        load_settings()


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
    expected = {f"TL_{name.upper()}" for name in flat_names()}
    assert len(expected) > len(Settings.model_fields)  # the sub-models' fields are listed too
    assert expected <= documented, f"missing from README: {sorted(expected - documented)}"
    # and every row of the table is a setting that is read (a renamed or dropped variable
    # would stay in the table and fail here)
    rows = set(re.findall(r"^\| `(TL_[A-Z0-9_]+)` \|", readme, re.M))
    assert rows == expected, f"table rows that name no setting: {sorted(rows - expected)}"


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
    assert load_settings(log_level="debug").log.level == "DEBUG"


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


def _changed(name: str, value: object) -> object:
    """A valid value other than the default, as it reads back in ``flat_dump``."""
    special: dict[str, object] = {
        "log_level": "INFO",
        "log_format": "json",
        "overflow_policy": "drop_oldest",
        "magika_prediction_mode": "best-guess",
        "s3_endpoint_url": "http://127.0.0.1:8333",
        "metrics_port": 9100,
        "nlp_max_retries": 2,
        "database_url": "sqlite:///tmp/tl-test.db",
        "object_store_url": "file:///tmp/tl-test-objects",
        "bus_url": "amqp://guest:guest@127.0.0.1:5672/tl",
        "routes": {**DEFAULT_ROUTES, "txt": ["package"]},
        "extract_ocr": "off",
        "extract_timeouts": {"pdf": 60.0},
        "source_delete_policy": "delete",
        "duplicate_policy": "flag",
    }
    if name in special:
        return special[name]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5 if value < 0.5 else value * 2
    if value is None:
        if name.endswith("_s"):
            return 7.5
        return "/tmp/some/where" if name.endswith(("_dir", "_key")) else "value"
    return f"{value}-changed" if not str(value).startswith("/") else "/tmp/changed"


def test_every_flat_name_reaches_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from thunderline.config import flat_dump

    defaults = flat_dump(Settings())
    assert sorted(defaults) == sorted(flat_names())
    expected = {}
    for name, value in defaults.items():
        if name == "home":
            continue
        changed = _changed(name, value)
        text = json.dumps(changed) if isinstance(changed, dict) else str(changed).lower()
        if isinstance(changed, str):
            text = changed
        monkeypatch.setenv(f"TL_{name.upper()}", text)
        expected[name] = changed
    read = flat_dump(load_settings())
    assert {n: read[n] for n in expected} == expected
