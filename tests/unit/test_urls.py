"""Masking credentials in URLs and messages: user-info split at the last '@', every
credential-like query parameter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.config import mask_secrets


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("postgresql://tl:hunter2@db/x", "postgresql://tl:***@db/x"),
        ("postgresql://tl:p@ss@w0rd@db.example:5432/x", "postgresql://tl:***@db.example:5432/x"),
        ("amqp://guest@rabbit/", "amqp://guest@rabbit/"),
        (
            "postgresql://tl@db/x?sslmode=require&sslpassword=hunter2",
            "postgresql://tl@db/x?sslmode=require&sslpassword=***",
        ),
        (
            "s3://b?access_token=t0k&X-Amz-Signature=abc&api_key=k1&client_secret=s3",
            "s3://b?access_token=***&X-Amz-Signature=***&api_key=***&client_secret=***",
        ),
        ("cannot reach amqp://u:pw@h:5672/ now", "cannot reach amqp://u:***@h:5672/ now"),
        ("plain text with user@host and a=b", "plain text with user@host and a=b"),
    ],
)
def test_mask_secrets(raw: str, shown: str) -> None:
    assert mask_secrets(raw) == shown


def test_config_show_masks_sslpassword_and_an_unencoded_at(tmp_path: Path) -> None:
    env = {
        "TL_HOME": str(tmp_path),
        "TL_DATABASE_URL": "postgresql+psycopg://tl:hunt@er2@db.example/tl"
        "?sslpassword=s3cr3t&sslmode=verify-full&options=-csearch_path%3Dx",
        "TL_BUS_URL": "amqp://u:p@ss@rabbit:5672/vh?auth_token=tk123",
    }
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    for secret in ("hunt", "er2", "s3cr3t", "ss@rabbit", "tk123"):
        assert secret not in result.output, secret
    shown = json.loads(result.output)
    assert shown["database_url"] == (
        "postgresql+psycopg://tl:***@db.example/tl"
        "?sslpassword=***&sslmode=verify-full&options=-csearch_path%3Dx"
    )
    assert shown["bus_url"] == "amqp://u:***@rabbit:5672/vh?auth_token=***"
