"""Degrade, don't drop: a stage after classify that fails for good still leaves a voxel.

Real classify (Magika), extract (pypdf in its worker) and package stages on SQLite and
PostgreSQL: a truncated PDF is stored with its classification, the failed extract stage and
the skipped nlp stage marked in the voxel, and its DLQ record (original, reason, traceback)
names the voxel. An NLP failure (a fault injected on purpose: the one fake here) replayed
completes the SAME voxel as a new revision, and ``verify`` stays clean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tests.unit.voxel._helpers import classified_event

from thunderline.classify import ClassifyStage
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.dlq.replay import replay_event
from thunderline.errors import StageError
from thunderline.eventdata import (
    Classified,
    NlpAnalysis,
    NlpProcessed,
    data_of,
    extend,
    voxel_of,
)
from thunderline.events import DLQ_EXTRACT, DLQ_NLP, NLP_PROCESSED, VOXEL_CREATED, CloudEvent
from thunderline.extract.stage import ExtractStage
from thunderline.flow.stage import Outcome, Stage
from thunderline.objects import LocalObjectStore
from thunderline.obs.metrics import terminal_outcome
from thunderline.outcomes import OPEN, RESOLVED, OutcomeStore
from thunderline.report import RunReport
from thunderline.runtime import ingest_event
from thunderline.testing import run_stages
from thunderline.voxel.stage import PackageStage
from thunderline.voxel.store import VoxelStore

REPO = Path(__file__).resolve().parents[3]
PDF = REPO / "examples" / "shared-mime-info-spec.pdf"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    if request.param == "sqlite":
        return make_settings(max_attempts=1)
    return make_settings(database_url=request.getfixturevalue("pg_schema_url"), max_attempts=1)


def _split(ends: Sequence[CloudEvent]) -> tuple[CloudEvent, list[CloudEvent]]:
    [created] = [e for e in ends if e.type == VOXEL_CREATED]
    return created, [e for e in ends if e.is_dlq]


async def test_truncated_pdf_is_stored_with_the_failed_stage_marked(
    backend: Settings, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(PDF.read_bytes()[:20_000])  # real PDF, cut: text extraction fails
    store = LocalObjectStore(backend.home / "objects")
    stages: list[Stage] = [
        ClassifyStage(backend, store, available_stages=("extract", "nlp", "package")),
        ExtractStage(backend, store),
        PackageStage(backend, store),
    ]
    ends = await run_stages(stages, [ingest_event(Candidate(truncated, tmp_path))], timeout_s=180)

    created, records = _split(ends)
    [record] = records
    voxel_id = created.data["voxel"]["id"]
    # the DLQ record is complete (original, reason, traceback) and names the voxel
    assert record.type == DLQ_EXTRACT and record.correlationid == created.correlationid
    assert record.data["stage"] == "extract" and record.data["reason"] == "extraction"
    assert "Traceback" in record.data["traceback"]
    assert record.data["original"]["data"]["route"][0] == "extract"
    assert voxel_of(record) == voxel_id
    # the terminal event and its record: degraded, the failure and the skipped nlp stage
    failure = created.data["failures"][0]
    assert (failure["stage"], failure["dlq_id"]) == ("extract", record.id)
    assert "record" not in failure  # the record went out on its own
    report = RunReport()
    assert report.add(record) is None  # the voxel's record is the artifact's
    line = report.add(created)
    assert line is not None and line.outcome == "degraded" and line.label == "pdf"
    assert [(f.stage, f.error_type) for f in line.failed] == [("extract", "ExtractionError")]
    assert [(s.stage, s.reason) for s in line.skipped] == [("nlp", "skipped: extract failed")]
    # accounting: the artifact ends once, as degraded; its record is not a second end
    assert [terminal_outcome(created), terminal_outcome(record)] == ["degraded", None]

    with VoxelStore(backend, store) as voxels:
        voxel = voxels.get(voxel_id)
        assert voxel.label == "pdf" and "extract" not in voxel.traits
        [mark] = voxel.traits["failures"]
        assert mark == {
            "stage": "extract",
            "reason": "extraction",
            "error_type": "ExtractionError",
            "message": failure["message"],
            "dlq_id": record.id,
        }
        assert voxel.traits["skipped"] == [{"stage": "nlp", "reason": "skipped: extract failed"}]
        assert voxels.verify(voxel_id).ok
    with OutcomeStore(backend) as outcomes:
        outcomes.record_many(ends)
        [row] = outcomes.dlq(OPEN)
        assert (row.id, row.voxel_id, row.stage) == (record.id, voxel_id, "extract")


class FlakyNlp(Stage):
    """An NLP stage with a fault injected on purpose: it fails while ``fail`` is set."""

    name = "nlp"

    def __init__(self, *, fail: bool) -> None:
        super().__init__()
        self.fail = fail

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        out: list[Outcome] = []
        for event in events:
            if self.fail:
                out.append(StageError("injected NLP fault"))
                continue
            nlp = NlpAnalysis(doc_id=event.id, lang="en", confidence=0.9)
            data = extend(data_of(event, Classified), NlpProcessed, nlp=nlp)
            out.append([self.advance(event, NLP_PROCESSED, data)])
        return out


async def test_replay_of_a_failed_nlp_stage_completes_the_same_voxel(backend: Settings) -> None:
    store = LocalObjectStore(backend.home / "objects")
    start = classified_event(store, b"Marie Curie worked in Paris.", route=["nlp", "package"])

    first = await run_stages([FlakyNlp(fail=True), PackageStage(backend, store)], [start])
    created, [record] = _split(first)
    voxel_id = created.data["voxel"]["id"]
    assert record.type == DLQ_NLP and voxel_of(record) == voxel_id
    assert created.data["voxel"]["revision"] == 1

    with OutcomeStore(backend) as outcomes:
        outcomes.record_many(first)
        [letter] = outcomes.dlq(OPEN)
        again = replay_event(letter)
        assert again.data["voxel_id"] == voxel_id and again.route == ["nlp", "package"]
        assert outcomes.mark_replayed(letter.id, again.id)

        second = await run_stages([FlakyNlp(fail=False), PackageStage(backend, store)], [again])
        [completed] = second  # no second record, no second voxel
        assert completed.type == VOXEL_CREATED and "failures" not in completed.data
        assert completed.data["voxel"]["id"] == voxel_id
        assert completed.data["voxel"]["revision"] == 2
        outcomes.record_many(second)

        resolved = outcomes.dlq_get(letter.id)
        assert resolved is not None and resolved.status == RESOLVED
        rows = [r for r in outcomes.by_correlation(start.correlationid) if r.kind == "voxel"]
        assert len(rows) == 1 and rows[0].voxel_id == voxel_id
        assert rows[0].event.data["voxel"]["revision"] == 2  # the row says what is stored now

    with VoxelStore(backend, store) as voxels:
        assert voxels.count() == 1
        voxel = voxels.get(voxel_id)
        assert voxel.traits["nlp"]["lang"] == "en" and "failures" not in voxel.traits
        packaged = completed.causationid  # the event the package stage completed it from
        assert voxel.event_id == packaged
        assert {start.id, again.id, packaged} <= set(voxel.lineage.parent_event_ids)
        [old] = voxels.revisions(voxel_id)
        assert old["revision"] == 1 and old["replaced_by_event"] == packaged
        assert old["voxel"].traits["failures"][0]["dlq_id"] == record.id
        assert "failed before: nlp; failed now: -" in old["reason"]
        assert voxels.verify(voxel_id).ok
        voxels.delete([voxel_id], actor="test", reason="erasure")  # its revisions go with it
        assert voxels.revisions(voxel_id) == []


async def test_a_replay_that_fails_again_updates_the_voxel_and_opens_a_new_record(
    backend: Settings,
) -> None:
    store = LocalObjectStore(backend.home / "objects")
    start = classified_event(store, b"Nothing works today.", route=["nlp", "package"])
    first = await run_stages([FlakyNlp(fail=True), PackageStage(backend, store)], [start])
    created, _ = _split(first)
    with OutcomeStore(backend) as outcomes:
        outcomes.record_many(first)
        [letter] = outcomes.dlq(OPEN)
        again = replay_event(letter)
        assert outcomes.mark_replayed(letter.id, again.id)
        second = await run_stages([FlakyNlp(fail=True), PackageStage(backend, store)], [again])
        recreated, [new_record] = _split(second)
        assert recreated.data["voxel"]["id"] == created.data["voxel"]["id"]
        outcomes.record_many(second)
        old = outcomes.dlq_get(letter.id)
        assert old is not None and old.status == "replayed"  # not fixed: not resolved
        assert [r.id for r in outcomes.dlq(OPEN)] == [new_record.id]
    with VoxelStore(backend, store) as voxels:
        assert voxels.count() == 1
        assert voxels.verify(created.data["voxel"]["id"]).ok
