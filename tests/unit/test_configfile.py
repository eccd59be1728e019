"""The settings file and backend URLs through the CLI: every bad case exits 2 naming the file
(and line) or the variable, never a traceback, for every command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.config import Settings
from thunderline.errors import ConfigError

runner = CliRunner()
COMMANDS = (
    ["config", "show"],
    ["ingest", "."],
    ["dlq", "list"],
    ["models", "verify"],
    ["tokens", "list"],
    ["voxels", "list"],
    ["doctor"],
    ["serve"],
    ["worker"],
)


def _invoke_all(env: dict[str, str], named: str) -> None:
    for command in COMMANDS:
        result = runner.invoke(app, command, env=env)
        assert result.exit_code == 2, (command, result.output)
        assert named in result.output, (command, result.output)
        assert "Traceback" not in result.output, (command, result.output)
        assert isinstance(result.exception, SystemExit), (command, result.exception)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"queue_max = 10\nroutes = = 3\nlog_level = 'INFO'\n", ":2:"),  # malformed TOML
        (b"queue_max = 10\nroutes = {txt = [\n", ":2:"),  # unterminated at the end
        (b"queue_max = 10\n\x7fELF\x02\x01\x01\x00\x00\x00\x00\xff\xfe\x00", ":2:"),  # binary
        (b"queue_max = 10\nspacy_worker = 3\n", ":2: unknown setting 'spacy_worker'"),
        (b"[bus]\nurl = 'amqp://x'\n", ":1: unknown setting 'bus'"),
    ],
)
def test_a_bad_settings_file_exits_2_naming_file_and_line(
    tmp_path: Path, content: bytes, named: str
) -> None:
    config = tmp_path / "mine.toml"
    config.write_bytes(content)
    env = {"TL_HOME": str(tmp_path / "home"), "TL_CONFIG": str(config)}
    _invoke_all(env, f"mine.toml{named}")


def test_unknown_key_suggests_the_closest_setting(tmp_path: Path) -> None:
    from thunderline.configfile import read_config_file

    config = tmp_path / "c.toml"
    config.write_text("spacy_worker = 3\n")
    with pytest.raises(ConfigError, match=r"did you mean spacy_workers\?"):
        read_config_file(config, explicit=True, known=Settings.model_fields)


@pytest.mark.parametrize("kind", ["missing", "directory", "not_a_dir", "fifo"])
def test_an_explicit_config_that_cannot_be_read_exits_2(tmp_path: Path, kind: str) -> None:
    target = {
        "missing": tmp_path / "absent.toml",
        "directory": tmp_path,
        "not_a_dir": tmp_path / "file" / "x.toml",  # a path through a file: ENOTDIR
        "fifo": tmp_path / "pipe.toml",
    }[kind]
    (tmp_path / "file").write_text("")
    if kind == "fifo":
        os.mkfifo(target)  # never opened for writing: a blocking read would hang forever
    env = {"TL_HOME": str(tmp_path / "home"), "TL_CONFIG": str(target)}
    for command in (["config", "show"], ["dlq", "list"], ["models", "list"]):
        result = runner.invoke(app, command, env=env)
        assert result.exit_code == 2, (command, result.output)
        assert f"TL_CONFIG={target}" in result.output and "Traceback" not in result.output


def test_a_junk_default_file_in_the_working_folder_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TL_CONFIG", raising=False)
    (tmp_path / "thunderline.toml").write_bytes(b"\x00\x01binary\xff junk")
    result = runner.invoke(app, ["config", "show"], env={"TL_HOME": str(tmp_path / "home")})
    assert result.exit_code == 2, result.output
    assert "thunderline.toml:1" in result.output and "Traceback" not in result.output


def test_no_default_file_is_fine_and_a_good_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TL_CONFIG", raising=False)
    env = {"TL_HOME": str(tmp_path / "home")}
    assert runner.invoke(app, ["config", "show"], env=env).exit_code == 0
    (tmp_path / "thunderline.toml").write_text('queue_max = 7\nroutes = {txt = ["package"]}\n')
    result = runner.invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert '"queue_max": 7' in result.output


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TL_BUS_URL", "ftp://files.example/q"),
        ("TL_BUS_URL", "rabbitmq-host:5672"),
        ("TL_DATABASE_URL", "mysql://u:pw@db.example/tl"),
        ("TL_OBJECT_STORE_URL", "gs://bucket"),
        ("TL_STAGE_TIMEOUT_S", "inf"),
        ("TL_RETRY_BACKOFF_S", "nan"),
    ],
)
def test_unsupported_url_schemes_and_infinite_numbers_exit_2(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = {"TL_HOME": str(tmp_path / "home"), variable: value}
    _invoke_all(env, f"{variable}:")


def test_supported_schemes_pass(tmp_path: Path) -> None:
    env = {
        "TL_HOME": str(tmp_path / "home"),
        "TL_BUS_URL": "amqps://u@rabbit.example/vh",
        "TL_DATABASE_URL": "postgresql+psycopg://u@db.example/tl",
        "TL_OBJECT_STORE_URL": "s3://bucket/prefix",
    }
    result = runner.invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
