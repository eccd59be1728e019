"""``thunderline events`` and docs/EVENTS.md (its generated tables must be current)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.eventcli import events_markdown, replace_generated
from thunderline.eventdata import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"


def test_events_md_tables_are_current() -> None:
    text = DOC.read_text("utf-8")
    assert replace_generated(text, events_markdown()) == text, (
        "run: thunderline events docs --write docs/EVENTS.md"
    )


def test_events_schema_prints_every_type() -> None:
    result = CliRunner().invoke(app, ["events", "schema"])
    assert result.exit_code == 0, result.output
    schemas = json.loads(result.stdout)
    assert set(schemas) == {*REGISTRY, "system.dlq.*"}
    one = CliRunner().invoke(app, ["events", "schema", "system.nlp.processed"])
    assert list(json.loads(one.stdout)) == ["system.nlp.processed"]
    bad = CliRunner().invoke(app, ["events", "schema", "no.such.type"])
    assert bad.exit_code == 2


def test_ingest_json_schema_needs_no_settings_and_no_paths() -> None:
    result = CliRunner().invoke(app, ["ingest", "--json-schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"classification", "nlp", "inference", "voxel_id", "outcome"} <= set(
        schema["properties"]
    )
    missing = CliRunner().invoke(app, ["ingest"])
    assert missing.exit_code == 2
