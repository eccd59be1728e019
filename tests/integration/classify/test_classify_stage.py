"""The classify stage through the real engine: edge cases end as a result or a typed DLQ entry."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thunderline.classify import ClassifyStage, iter_candidates
from thunderline.config import Settings
from thunderline.events import CloudEvent
from thunderline.objects import LocalObjectStore
from thunderline.runtime import ingest_event
from thunderline.testing import run_stages


async def classify(settings: Settings, paths: list[Path], root: Path) -> dict[str, CloudEvent]:
    store = LocalObjectStore(settings.home / "objects")
    events = [ingest_event(c) for c in iter_candidates(paths)]
    ends = await run_stages([ClassifyStage(settings, store)], events)
    return {
        Path(
            e.data.get(
                "artifact", e.data.get("original", {}).get("data", {}).get("artifact", {})
            ).get("path", "?")
        ).name: e
        for e in ends
    }


def _artifact(event: CloudEvent) -> dict[str, Any]:
    data = event.data["original"]["data"] if event.is_dlq else event.data
    artifact: dict[str, Any] = data["artifact"]
    return artifact


async def test_edge_cases(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "empty").write_bytes(b"")
    (root / "one byte").write_bytes(b"{")
    (root / "café menu.txt").write_text(
        "Le café du coin sert une soupe à l'oignon le midi et une crème brûlée le soir.\n"
        "Nous sommes ouverts du mardi au dimanche et fermés le lundi.\n" * 5
    )
    (root / "escape").symlink_to(tmp_path / "elsewhere.txt")
    (tmp_path / "elsewhere.txt").write_text("outside")
    settings = make_settings()
    out = await classify(settings, [root], root)
    assert out["empty"].data["classification"]["label"] == "empty"
    assert out["one byte"].data["classification"]["label"] in {"txt", "unknown"}
    menu = out["café menu.txt"]
    assert menu.data["classification"]["label"] == "txt"
    assert menu.data["classification"]["is_text"] is True
    stored = _artifact(menu)
    assert stored["payload_ref"] == f"sha256:{stored['sha256']}"
    assert (
        LocalObjectStore(settings.home / "objects")
        .get_bytes(stored["sha256"])
        .startswith(b"Le caf")
    )
    escape = out["escape"]
    assert escape.type == "system.dlq.classify_failed"
    assert escape.data["reason"] == "path_escape"
    assert "Traceback" in escape.data["traceback"]


async def test_huge_file_is_classified_from_head_and_tail_then_dead_lettered(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as handle:
        handle.write(b"%PDF-1.7\n" + b"x" * 4096)
        handle.truncate(10 * 1024**3)  # 10 GiB, sparse: reading it whole would take minutes
    settings = make_settings(max_artifact_bytes=64 * 1024**2)
    out = await classify(settings, [huge], tmp_path)
    event = out["huge.bin"]
    assert event.data["reason"] == "too_large"
    details = event.data["error"]["details"]
    assert details["size"] == 10 * 1024**3
    assert "label" in details["classification"]
    assert not any((settings.home / "objects" / "sha256").rglob("*"))  # nothing was copied


async def test_unreadable_file_is_dead_lettered(
    tmp_path: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "locked.txt"
    target.write_text("you may not read me")
    real_open = os.open

    def refusing_open(file: Any, *args: Any, **kwargs: Any) -> Any:  # injected fault
        if os.fspath(file).endswith("locked.txt"):  # admission opens it once, by any route
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    out = await classify(make_settings(), [target], tmp_path)
    assert out["locked.txt"].data["reason"] == "unreadable"


async def test_ml_disabled_classifies_nothing_and_still_ingests(
    tmp_path: Path, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.json").write_text('{"a": 1}')
    settings = make_settings(enable_ml_pipeline=False)
    with caplog.at_level("INFO", logger="thunderline"):
        out = await classify(settings, [tmp_path / "a.json"], tmp_path)
    classification = out["a.json"].data["classification"]
    assert classification["model"] == "none" and classification["label"] == "unknown"
    assert _artifact(out["a.json"])["sha256"]
    assert not [r for r in caplog.records if r.levelname in {"WARNING", "ERROR", "CRITICAL"}]
