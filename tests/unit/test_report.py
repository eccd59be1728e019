"""Run reports: the --json record of every kind of terminal event, and the run's summary."""

from __future__ import annotations

from pathlib import Path

import jsonschema

from thunderline.dlq.record import dead_letter
from thunderline.errors import ArtifactTooLargeError
from thunderline.eventdata import (
    Artifact,
    Classified,
    Inference,
    InferenceCompleted,
    LabelScore,
    NlpAnalysis,
    NlpProcessed,
    Parent,
    data_of,
    extend,
    typed_event,
)
from thunderline.events import (
    DLQ_CLASSIFY,
    DLQ_NLP,
    INFERENCE_COMPLETED,
    NLP_PROCESSED,
    CloudEvent,
)
from thunderline.objects import LocalObjectStore
from thunderline.report import RunReport, percentile, record_from_event, record_schema
from thunderline.testing import classification, classified, ingest


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(record_schema())


def test_nlp_and_inference_results_are_in_the_record(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    start = classified(store, b"Paris", source="file:///in/p.txt", route=["nlp"])
    nlp = NlpAnalysis(doc_id="d", lang="fr", confidence=0.8)
    processed = typed_event(
        NLP_PROCESSED, extend(data_of(start, Classified), NlpProcessed, nlp=nlp), parent=start
    )
    inference = Inference(
        model="m", version="1", top_k=[LabelScore(label="cat", score=0.9)], inference_ms=1.0
    )
    inferred = typed_event(
        INFERENCE_COMPLETED,
        extend(data_of(processed, NlpProcessed), InferenceCompleted, inference=inference),
        parent=processed,
    )
    record = record_from_event(inferred)
    assert record.outcome == "ok" and record.path == "/in/p.txt"
    assert record.nlp is not None and record.nlp.lang == "fr"
    assert record.inference is not None and record.inference.top_k[0].label == "cat"
    assert record.label == "txt" and record.classification is not None
    assert not list(_validator().iter_errors(record.to_json_dict()))


def test_a_dead_letter_keeps_stage_reason_error_and_what_was_known(tmp_path: Path) -> None:
    start = ingest(Artifact(name="big.bin", path="/in/big.bin", source="file:///in/big.bin"))
    too_large = ArtifactTooLargeError("too big")
    too_large.details["classification"] = classification("pdf").to_dict()
    record = record_from_event(dead_letter("classify", DLQ_CLASSIFY, too_large, original=start))
    assert (record.outcome, record.stage, record.reason) == ("dlq", "classify", "too_large")
    assert record.error is not None and record.error.type == "ArtifactTooLargeError"
    assert record.label == "pdf" and record.path == "/in/big.bin" and record.voxel_id is None
    assert not list(_validator().iter_errors(record.to_json_dict()))


def test_a_malformed_original_still_gives_a_record() -> None:
    raw = b'{"not": "an event"'
    record = record_from_event(
        dead_letter("nlp", DLQ_NLP, ValueError("bad"), original=None, raw=raw)
    )
    assert record.outcome == "dlq" and record.path is None and record.label is None
    assert not list(_validator().iter_errors(record.to_json_dict()))


def test_archive_members_name_their_archive(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    member = classified(
        store,
        b"inside",
        name="m.txt",
        source="file:///in/bundle.zip!/m.txt",
        parent=Parent(voxel_id="v" * 36, event_id="e", index=0),
    )
    record = record_from_event(member)
    assert record.archive == "/in/bundle.zip" and record.name == "m.txt"


def test_run_report_summary(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    report = RunReport()
    ends: list[CloudEvent] = [
        classified(store, b"a"),
        classified(store, b"b", "png"),
        dead_letter(
            "classify",
            DLQ_CLASSIFY,
            ArtifactTooLargeError("x"),
            original=ingest(Artifact(name="c", path="/c")),
        ),
    ]
    for end in ends:
        report.add(end)
    assert len(report.ok) == 2 and len(report.dlq) == 1
    assert report.labels() == {"txt": 1, "png": 1}
    assert report.dlq_reasons() == {"classify:too_large": 1}
    assert percentile([], 50) is None and percentile([1.0, 3.0], 50) == 2.0
