"""Settings through the CLI: a bad value exits 2 naming it (no traceback); secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thunderline.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TL_ROUTES": "not json"}, "TL_ROUTES"),
        ({"TL_ROUTES": '{"txt": ["nlp", "sumarize"]}'}, "TL_ROUTES"),
        ({"TL_LOG_LEVEL": "LOUD"}, "TL_LOG_LEVEL"),
        ({"TL_S3_ENDPOINT_URL": "not a url"}, "TL_S3_ENDPOINT_URL"),
        ({"TL_HOME": "/proc/thunderline-cannot-be-here"}, "TL_HOME"),
    ],
)
def test_bad_settings_exit_2_naming_the_setting(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    env = {"TL_HOME": str(tmp_path / "home"), **env}
    for command in (["config", "show"], ["ingest", str(tmp_path)], ["dlq", "list"]):
        result = runner.invoke(app, command, env=env)
        assert result.exit_code == 2, (command, result.output)
        assert named in result.output and "Traceback" not in result.output


def test_a_file_as_home_exits_2(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("not a folder")
    result = runner.invoke(app, ["config", "show"], env={"TL_HOME": str(tmp_path / "home")})
    assert result.exit_code == 2 and "TL_HOME" in result.output


def test_config_show_masks_the_database_password(tmp_path: Path) -> None:
    env = {
        "TL_HOME": str(tmp_path),
        "TL_DATABASE_URL": "postgresql+psycopg://tl:hunter2@db.example:5432/tl",
    }
    result = runner.invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    shown = json.loads(result.output)
    assert shown["database_url"] == "postgresql+psycopg://tl:***@db.example:5432/tl"


def test_unknown_variable_is_reported_with_the_closest_name(tmp_path: Path) -> None:
    env = {"TL_HOME": str(tmp_path), "TL_SPACY_WORKER": "4"}
    result = runner.invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0
    assert "TL_SPACY_WORKER is ignored (did you mean TL_SPACY_WORKERS?)" in result.output


def test_log_lines_are_masked_and_escaped() -> None:
    import logging

    from thunderline.console import MaskingFilter

    record = logging.LogRecord(
        "thunderline.x",
        logging.WARNING,
        __file__,
        1,
        "cannot reach %s for %s",
        ("postgresql://u:hunter2@db/x", "a\x1b[2Jb"),
        None,
    )
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "cannot reach postgresql://u:***@db/x for a\\x1b[2Jb"


def test_every_command_group_is_mounted() -> None:
    # mounted by plain imports: a misspelt module or name fails at import, never silently
    import typer

    assert set(typer.main.get_group(app).commands) == {
        "ingest",
        "doctor",
        "config",
        "dlq",
        "models",
        "voxels",
        "serve",
        "tokens",
        "events",
        "stages",
        "worker",
        "status",
        "index",
        "search",
        "export",
        "sources",
        "webhooks",
        "sync",
        "watch",
        "reprocess",
    }
