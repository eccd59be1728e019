"""Roadmap 1.1 and 1.2: real files through the whole engine, the DLQ route, correlation ids,
the CLI, and the ML pipeline switched off."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thunderline.classify import iter_candidates
from thunderline.cli import app
from thunderline.config import Settings
from thunderline.events import INGEST_CLASSIFIED, INGEST_RECEIVED, CloudEvent
from thunderline.journal import Journal
from thunderline.runtime import Runtime

# peer file -> the label Magika must give it
CASES = {
    "basic/pdf/magika_test.pdf": "pdf",
    "basic/png/magika_test.png": "png",
    "basic/jpeg/magika_test.jpg": "jpeg",
    "basic/json/doc.json": "json",
    "basic/html/doc.html": "html",
    "basic/python/code.py": "python",
    "basic/zip/magika_test.zip": "zip",
    "basic/docx/magika_test.docx": "docx",
    "basic/csv/magika_test.csv": "csv",
    "basic/markdown/README.md": "markdown",
}


@pytest.fixture
def corpus(peer_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "in put é"  # a space and a non-ASCII character in the path
    folder.mkdir()
    for rel in CASES:
        source = peer_data / rel
        if not source.exists():
            pytest.fail(f"peer file missing: {source}")
        shutil.copy(source, folder / source.name)
    (folder / "escape.txt").symlink_to(
        peer_data / "basic/txt" / next(p.name for p in (peer_data / "basic/txt").iterdir())
    )
    return folder


async def test_real_files_through_the_engine(
    corpus: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    terminal: list[CloudEvent] = []
    async with Runtime(settings, on_terminal=terminal.append) as runtime:
        submitted = await runtime.submit_files(iter_candidates([corpus]))
        await runtime.wait_idle(300)
    assert submitted == len(CASES) + 1

    events = list(Journal(settings.home).iter_events())
    received = {e.id: e for e in events if e.type == INGEST_RECEIVED}
    members = [e for e in received.values() if "parent" in e.data]  # archive fan-out
    assert members, "the zip's members go through the pipeline too"
    # every artifact, archive members included, ends in exactly one terminal record
    assert len(terminal) == submitted + len(members)
    by_id = {e.id: e for e in events}
    labels = {
        e.data["artifact"]["name"]: e.data["classification"]["label"]
        for e in events
        if e.type == INGEST_CLASSIFIED
    }
    for rel, label in CASES.items():
        assert labels[Path(rel).name] == label, rel

    roots = {e.id for e in received.values() if "parent" not in e.data}
    for end in terminal:
        # correlation: one id from ingest to the end; causation: a chain back to the ingest
        assert end.correlationid in roots
        hop = end
        while hop.causationid is not None:
            hop = by_id[hop.causationid]
            assert hop.correlationid == end.correlationid
        assert hop.type == INGEST_RECEIVED
        assert hop.id == end.correlationid

    dlq = [e for e in terminal if e.is_dlq]
    assert len(dlq) == 1
    assert dlq[0].type == "system.dlq.classify_failed"
    assert dlq[0].data["reason"] == "path_escape"
    assert dlq[0].data["original"]["type"] == INGEST_RECEIVED
    assert [e.id for e in Journal(settings.home).iter_dlq()] == [dlq[0].id]


def test_cli_json_and_summary(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(corpus), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == len(CASES) + 1 + 1  # + the zip's one member
    for line in lines:
        assert set(line) >= {"path", "label", "group", "mime", "score", "correlation_id", "outcome"}
    assert {line["outcome"] for line in lines} == {"ok", "dlq"}

    result = runner.invoke(app, ["ingest", str(corpus)])
    assert result.exit_code == 0, result.output
    assert "Counts by label" in result.stdout
    assert "classify:path_escape" in result.stdout
    assert "p50 / p95 / p99" in result.stdout

    listed = runner.invoke(app, ["dlq", "list"])
    assert listed.exit_code == 0 and "path_escape" in listed.stdout


def test_cli_exit_code_only_for_run_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    missing = runner.invoke(app, ["ingest", str(tmp_path / "does-not-exist")])
    assert missing.exit_code == 2  # a path that does not exist is a usage error (issue 24)
    assert "does-not-exist" in missing.output
    monkeypatch.setenv("TL_BUS_URL", "kafka://nowhere")
    broken = runner.invoke(app, ["ingest", str(tmp_path)])
    assert broken.exit_code != 0


def test_ml_pipeline_switched_off_boots_and_ingests(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TL_ENABLE_ML_PIPELINE", "false")
    monkeypatch.setenv("TL_ONNX_ENABLED", "true")  # the master switch wins
    with caplog.at_level("INFO", logger="thunderline"):
        result = CliRunner().invoke(app, ["ingest", str(corpus), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == len(CASES) + 1
    assert all(line["label"] == "unknown" for line in lines if line["outcome"] == "ok")
    assert not [r for r in caplog.records if r.levelname in {"ERROR", "CRITICAL"}]
    events = list(Journal(tmp_path / "home").iter_events())
    assert not [
        e for e in events if e.type in {"system.nlp.processed", "system.ml.inference.completed"}
    ]
    doctor = CliRunner().invoke(app, ["doctor"])
    assert "TL_ENABLE_ML_PIPELINE=false" in doctor.stdout
