"""Our classify stage reproduces Magika's own reference outputs (peer regression data)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from thunderline.classify import ClassifyStage
from thunderline.config import Settings
from thunderline.eventdata import Artifact
from thunderline.events import CloudEvent
from thunderline.objects import LocalObjectStore
from thunderline.testing import ingest, run_stages

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
    expected: dict[str, tuple[str, float]] = {}
    events: list[CloudEvent] = []
    for entry in entries:
        rel = str(entry["path"]).removeprefix("tests_data/")
        path = peer_data / rel
        prediction = entry["prediction"]
        assert isinstance(prediction, dict)
        event = ingest(
            Artifact(name=path.name, path=str(path), root=str(peer_data), source=path.as_uri())
        )
        expected[event.id] = (str(prediction["output"]), float(prediction["score"]))
        events.append(event)
    ends = await run_stages([ClassifyStage(settings, store)], events, timeout_s=120)
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
