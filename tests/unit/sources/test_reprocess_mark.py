"""The reprocess mark on events: backward compatible, found on results and on DLQ records (with
the original event or only its raw text), and a pinned spaCy pipeline the NLP stage cannot run
refused as ``model_pin`` before any text is read."""

from __future__ import annotations

from collections.abc import Callable

from thunderline.config import Settings
from thunderline.dlq.record import dead_letter
from thunderline.errors import ModelPinError, StageTimeoutError
from thunderline.eventdata import (
    Classification,
    Classified,
    ReprocessMark,
    StoredArtifact,
    data_of,
    to_wire,
    typed_event,
)
from thunderline.events import INGEST_CLASSIFIED, CloudEvent, dlq_type_for
from thunderline.nlp.stage import NlpStage, pipeline_version
from thunderline.objects.factory import open_object_store
from thunderline.sources.reprocess import item_correlation
from thunderline.sources.reprocess_bus import mark_of

SHA = "ab" * 32


def _classified(mark: ReprocessMark | None) -> CloudEvent:
    data = Classified(
        artifact=StoredArtifact(name="a.txt", size=3, sha256=SHA, payload_ref=f"sha256:{SHA}"),
        classification=Classification(
            label="txt",
            group="text",
            mime="text/plain",
            score=1.0,
            is_text=True,
            description="Generic text document",
            dl_label="txt",
            overwrite_reason="none",
            model="standard_v3_3",
        ),
        route=["nlp"],
        reprocess=mark,
    )
    return typed_event(INGEST_CLASSIFIED, data)


def test_the_mark_is_optional_and_left_out_when_unset() -> None:
    plain = _classified(None)
    assert "reprocess" not in plain.data  # an older reader sees the event it always saw
    assert mark_of(plain) is None
    mark = ReprocessMark(run_id="r1", voxel_id="v1", stage="nlp", model="x@1")
    marked = _classified(mark)
    assert to_wire(data_of(marked, Classified))["reprocess"] == {
        "run_id": "r1",
        "voxel_id": "v1",
        "stage": "nlp",
        "model": "x@1",
    }
    again = CloudEvent.from_json(marked.to_bytes())
    assert mark_of(again) == mark


def test_the_mark_of_a_dlq_record_is_its_originals() -> None:
    mark = ReprocessMark(run_id="r1", voxel_id="v1", stage="extract")
    event = _classified(mark)
    failure = StageTimeoutError("slow")
    record = dead_letter("extract", dlq_type_for("extract"), failure, original=event)
    assert mark_of(record) == mark
    raw_only = dead_letter(
        "extract", dlq_type_for("extract"), failure, original=None, raw=event.to_bytes()
    )
    assert mark_of(raw_only) == mark  # a broker's dead letter holds only the raw message
    garbage = dead_letter("extract", dlq_type_for("extract"), failure, original=None, raw=b"{")
    assert mark_of(garbage) is None


def test_copies_of_an_item_share_a_correlation_id_other_runs_do_not() -> None:
    one = item_correlation("run-a", "voxel-1")
    assert one == item_correlation("run-a", "voxel-1")
    assert one != item_correlation("run-b", "voxel-1")
    assert one != item_correlation("run-a", "voxel-2")


def test_the_nlp_stage_refuses_a_pin_it_cannot_run(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    stage = NlpStage(settings, open_object_store(settings))
    mine = settings.spacy.model
    version = pipeline_version(mine)
    for pin, words in (
        ("other_pipeline@1.0", f"this stage runs {mine}"),
        (f"{mine}@0.0.0", f"is version {version} here"),
    ):
        mark = ReprocessMark(run_id="r", voxel_id="v", stage="nlp", model=pin)
        got = stage._read_text(_classified(mark))
        assert isinstance(got, ModelPinError) and words in str(got), got
        assert got.reason == "model_pin" and not got.retryable
    # its own pipeline at its version passes the pin (then wants the extracted text)
    mark = ReprocessMark(run_id="r", voxel_id="v", stage="nlp", model=f"{mine}@{version}")
    got = stage._read_text(_classified(mark))
    assert not isinstance(got, ModelPinError) and "no extracted text" in str(got)
