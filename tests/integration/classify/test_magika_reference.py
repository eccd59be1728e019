"""Our classify stage reproduces Magika's own reference outputs (peer regression data)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from thunderline.bus import MemoryBus
from thunderline.classify import ClassifyStage
from thunderline.config import Settings
from thunderline.events import INGEST_RECEIVED, CloudEvent, new_event
from thunderline.flow import Pipeline
from thunderline.objects import LocalObjectStore

MODES = {
    "high_confidence": "high-confidence",
    "medium_confidence": "medium-confidence",
    "best_guess": "best-guess",
}


def _reference(peer: Path) -> list[dict[str, object]]:
    ref = peer / "reference" / "standard_v3_3-inference_examples_by_path.json.gz"
    with gzip.open(ref, "rt") as handle:
        data: list[dict[str, object]] = json.load(handle)
    return data


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_stage_matches_reference_labels(
    mode: str, peer_data: Path, make_settings: Callable[..., Settings]
) -> None:
    entries = [e for e in _reference(peer_data) if e["prediction_mode"] == mode]
    assert len(entries) > 60
    settings = make_settings(magika_prediction_mode=MODES[mode])
    store = LocalObjectStore(settings.home / "objects")
    ends: list[CloudEvent] = []
    pipeline = Pipeline(MemoryBus(), [ClassifyStage(settings, store)], on_terminal=ends.append)
    await pipeline.start()
    expected: dict[str, tuple[str, float]] = {}
    for entry in entries:
        rel = str(entry["path"]).removeprefix("tests_data/")
        path = peer_data / rel
        prediction = entry["prediction"]
        assert isinstance(prediction, dict)
        event = new_event(
            INGEST_RECEIVED,
            {
                "artifact": {
                    "name": path.name,
                    "path": str(path),
                    "root": str(peer_data),
                    "source": path.as_uri(),
                },
                "route": ["classify"],
            },
        )
        expected[event.id] = (str(prediction["output"]), float(prediction["score"]))
        await pipeline.submit(event)
    await pipeline.wait_idle(120)
    await pipeline.stop()
    assert len(ends) == len(entries)
    mismatches = []
    for event in ends:
        assert not event.is_dlq, event.data
        label, score = expected[event.correlationid]
        got = event.data["classification"]
        if got["label"] != label or abs(got["score"] - score) > 1e-3:
            mismatches.append(
                (event.data["artifact"]["name"], label, got["label"], score, got["score"])
            )
    assert not mismatches
