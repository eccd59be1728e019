"""The infer stage end to end: real Pipeline, MemoryBus, object store and ONNX models."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.ml._events import classified_event
from tests.unit.ml._helpers import MODELS, MODELS_KEY, copy_models, tamper

from thunderline.bus.memory import MemoryBus
from thunderline.config import Settings
from thunderline.eventdata import Classification
from thunderline.events import DLQ_INFERENCE, INFERENCE_COMPLETED, CloudEvent
from thunderline.flow.engine import Pipeline
from thunderline.flow.stage import StageOptions
from thunderline.ml import ModelRegistry, ModelSupervisor
from thunderline.ml.stage import InferStage
from thunderline.objects.local import LocalObjectStore
from thunderline.obs import metrics
from thunderline.testing import classified
from thunderline.testing.samples import image_bytes


class Harness:
    def __init__(self, pipeline: Pipeline, store: LocalObjectStore, out: list[CloudEvent]) -> None:
        self.pipeline = pipeline
        self.store = store
        self.out = out

    async def run(self, events: list[CloudEvent], timeout: float = 30) -> list[CloudEvent]:
        for event in events:
            await self.pipeline.submit(event)
        await self.pipeline.wait_idle(timeout)
        by_cause = {e.causationid: e for e in self.out}
        return [by_cause[event.id] for event in events]


async def _harness(settings: Settings, tmp_path: Path, **stage_kw: Any) -> AsyncIterator[Harness]:
    store = LocalObjectStore(tmp_path / "objects")
    out: list[CloudEvent] = []
    stage = InferStage(settings, store, **stage_kw)
    pipeline = Pipeline(MemoryBus(), [stage], on_terminal=out.append, shutdown_timeout_s=5)
    await pipeline.start()
    try:
        yield Harness(pipeline, store, out)
    finally:
        await pipeline.stop()


@pytest.fixture
async def harness(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Harness]:
    settings = make_settings(onnx_model_dir=MODELS, model_public_key=MODELS_KEY, onnx_enabled=True)
    async for h in _harness(settings, tmp_path):
        yield h


async def test_image_gets_top_labels_with_ids_and_route(harness: Harness) -> None:
    event = classified_event(harness.store, image_bytes(0))
    [result] = await harness.run([event])
    assert result.type == INFERENCE_COMPLETED
    assert result.correlationid == event.correlationid and result.causationid == event.id
    inference = result.data["inference"]
    assert inference["model"] == "image_classifier" and inference["version"] == "1.0.0"
    scores = [t["score"] for t in inference["top_k"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    labels = ModelRegistry(MODELS, public_key=MODELS_KEY).entry("image_classifier").labels
    assert all(t["label"] in labels for t in inference["top_k"])
    assert inference["inference_ms"] > 0
    assert result.data["artifact"] == event.data["artifact"]
    assert result.data["classification"] == event.data["classification"]
    assert result.data["route"] == []


async def test_different_images_get_different_scores(harness: Harness) -> None:
    events = [classified_event(harness.store, image_bytes(seed)) for seed in (1, 2)]
    a, b = await harness.run(events)
    assert a.data["inference"]["top_k"] != b.data["inference"]["top_k"]


async def test_text_routed_to_infer_uses_the_text_model(harness: Harness) -> None:
    event = classified_event(harness.store, b"The quick brown fox jumps over the lazy dog.", "txt")
    [result] = await harness.run([event])
    assert result.type == INFERENCE_COMPLETED
    assert result.data["inference"]["model"] == "text_classifier"
    assert {t["label"] for t in result.data["inference"]["top_k"]} <= {
        "prose",
        "code",
        "data",
        "other",
    }


async def test_undecodable_image_is_dead_lettered_with_a_metric(harness: Harness) -> None:
    labels = {"model": "image_classifier", "reason": "preprocess"}
    before = metrics.sample("thunderline_onnx_infer_errors_total", labels)
    event = classified_event(harness.store, b"\x89PNG\r\n\x1a\n not really a png")
    [dlq] = await harness.run([event])
    assert dlq.type == DLQ_INFERENCE
    assert dlq.data["reason"] == "preprocess"
    assert "PreprocessError" in dlq.data["traceback"]
    assert dlq.data["original"]["id"] == event.id
    assert metrics.sample("thunderline_onnx_infer_errors_total", labels) == before + 1


async def test_content_no_model_applies_to_is_passed_on_with_a_note(harness: Harness) -> None:
    """An SVG (vector) for the raster model, an archive routed here: not failures of the
    artifact, so no DLQ record -- the event goes on to the next stage with a note."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect/></svg>'
    svg_kind = Classification(
        label="svg",
        group="image",
        mime="image/svg+xml",
        score=0.99,
        is_text=True,
        description="svg",
        dl_label="svg",
        overwrite_reason="none",
        model="test",
    )
    vector = classified(harness.store, svg, name="v.svg", route=["infer"], result=svg_kind)
    archive = classified_event(harness.store, b"PK\x03\x04 zip-ish", "zip")
    missing = classified_event(harness.store, image_bytes(5))
    sha = missing.data["artifact"]["sha256"]
    (harness.store.root / "sha256" / sha[:2] / sha[2:4] / sha).unlink()
    a, b, c = await harness.run([vector, archive, missing])
    assert a.type == vector.type and not a.is_dlq
    assert a.data["route"] == []  # on to the next stage (here: the end of the route)
    assert a.data["notes"] == [{"stage": "infer", "note": a.data["notes"][0]["note"]}]
    assert "SVG" in a.data["notes"][0]["note"]
    assert "inference" not in a.data
    assert b.type == archive.type and b.data["notes"][0]["stage"] == "infer"
    assert (c.type, c.data["reason"]) == (DLQ_INFERENCE, "not_found")


async def test_concurrent_events_are_batched(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        onnx_model_dir=MODELS,
        model_public_key=MODELS_KEY,
        onnx_enabled=True,
        onnx_max_batch_size=8,
        onnx_max_queue_delay_ms=50,
    )
    supervisor = ModelSupervisor.from_settings(settings, adaptive=False)
    options = StageOptions(batch_size=8, batch_timeout_s=0.05, concurrency=1)
    async for h in _harness(settings, tmp_path, supervisor=supervisor, options=options):
        events = [classified_event(h.store, image_bytes(seed)) for seed in range(8)]
        results = await h.run(events)
        assert all(r.type == INFERENCE_COMPLETED for r in results)
        assert max(r.data["inference"]["batch_size"] for r in results) > 1
    supervisor.close()


async def test_unhealthy_model_skips_its_route_with_a_note_instead_of_dead_lettering(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = copy_models(tmp_path / "models")
    tamper(folder / "image_classifier" / "onnx" / "image_classifier.onnx")
    settings = make_settings(
        onnx_model_dir=folder, model_public_key=MODELS_KEY, onnx_enabled=True, stage_timeout_s=30
    )
    supervisor = ModelSupervisor.from_settings(settings, adaptive=False, restart_backoff_s=0.01)
    before = metrics.sample(
        "thunderline_onnx_infer_errors_total",
        {"model": "image_classifier", "reason": "model_unhealthy"},
    )
    async for h in _harness(settings, tmp_path, supervisor=supervisor):
        events = [classified_event(h.store, image_bytes(seed)) for seed in range(3)]
        results = await h.run(events, timeout=20)
        # the model is at fault, not the artifacts: each goes on without an inference, noted
        assert [r.type for r in results] == [events[0].type] * 3
        for result in results:
            assert "inference" not in result.data
            (note,) = result.data["notes"]
            assert note["stage"] == "infer"
            assert note["note"].startswith("skipped: model image_classifier model unhealthy")
    supervisor.close()
    after = metrics.sample(
        "thunderline_onnx_infer_errors_total",
        {"model": "image_classifier", "reason": "model_unhealthy"},
    )
    assert after - before == 3  # still counted, so the dashboards and alerts see it
    # a checksum refusal is not retried by the supervisor either: one load attempt, one line
    security = [r for r in caplog.records if "[security] Model checksum mismatch" in r.message]
    assert len(security) == 1


async def test_a_route_to_a_model_that_is_not_registered_is_skipped_not_dead_lettered(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        onnx_model_dir=MODELS,
        model_public_key=MODELS_KEY,
        onnx_enabled=True,
        onnx_image_model="no_such_model",
    )
    async for h in _harness(settings, tmp_path):
        events = [classified_event(h.store, image_bytes(seed)) for seed in range(2)]
        results = await h.run(events)
    assert [r.type for r in results] == [events[0].type] * 2
    assert all("model no_such_model model not found" in r.data["notes"][0]["note"] for r in results)


async def test_applies_to_routes_by_label_and_a_registry_edit_is_picked_up_live(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = copy_models(tmp_path / "models")
    settings = make_settings(onnx_model_dir=folder, model_public_key=MODELS_KEY, onnx_enabled=True)
    async for h in _harness(settings, tmp_path):
        (first,) = await h.run([classified_event(h.store, image_bytes(1))])
        assert first.data["inference"]["model"] == "image_classifier"  # the default for images
        registry = folder / "registry.toml"
        text = registry.read_text(encoding="utf-8")
        marker = 'name = "image_classifier_fixed"\n'
        assert marker in text
        registry.write_text(text.replace(marker, marker + 'applies_to = ["PNG"]\n'))
        png, jpeg = await h.run(
            [
                classified_event(h.store, image_bytes(2)),
                classified_event(h.store, image_bytes(3), "jpeg"),
            ]
        )
    assert png.data["inference"]["model"] == "image_classifier_fixed"  # named by label
    assert jpeg.data["inference"]["model"] == "image_classifier"  # not named: the default
