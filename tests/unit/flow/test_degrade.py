"""The engine's "degrade, don't drop": which failures go on to package, and in what form."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from thunderline.dlq.record import dead_letter
from thunderline.errors import StageError
from thunderline.eventdata import Classified, data_of, voxel_of
from thunderline.events import DLQ_NLP, CloudEvent
from thunderline.flow import Outcome, Stage
from thunderline.flow.engine import degraded
from thunderline.objects import LocalObjectStore
from thunderline.obs.metrics import terminal_outcome
from thunderline.testing import classified, run_stages


class Broken(Stage):
    """A stage with a fault injected on purpose: every event fails for good."""

    name = "nlp"

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        return [StageError("injected fault") for _ in events]


class Ends(Stage):
    """Stands in for package: passes what reaches it on to the terminal sink."""

    name = "package"

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        return [[self.advance(e, e.type, data_of(e, Classified))] for e in events]


def _event(tmp_path: Path, route: list[str]) -> CloudEvent:
    return classified(LocalObjectStore(tmp_path / "objects"), b"some text", route=route)


def test_a_failure_after_classify_goes_on_to_package_carrying_its_record(
    tmp_path: Path,
) -> None:
    event = _event(tmp_path, ["nlp", "infer", "package"])
    record = dead_letter("nlp", DLQ_NLP, StageError("boom"), original=event)
    onward = degraded("nlp", event, record)
    assert onward is not None
    assert onward.type == event.type and onward.route == ["package"]
    assert onward.correlationid == event.correlationid and onward.causationid == event.id
    data = data_of(onward, Classified)
    [failure] = data.failures or []
    assert (failure.stage, failure.reason, failure.error_type, failure.message) == (
        "nlp",
        "stage_error",
        "StageError",
        "boom",
    )
    assert failure.dlq_id == record.id and failure.record == record.to_dict()
    assert [(n.stage, n.note) for n in data.notes or []] == [("infer", "skipped: nlp failed")]


def test_what_is_not_degraded(tmp_path: Path) -> None:
    event = _event(tmp_path, ["nlp", "package"])
    record = dead_letter("nlp", DLQ_NLP, StageError("boom"), original=event)
    assert degraded("classify", event, record) is None  # nothing stored before classify
    assert degraded("package", event, record) is None  # no voxel to degrade to
    no_package = _event(tmp_path, ["nlp"])
    assert degraded("nlp", no_package, record) is None
    assert degraded("nlp", record, record) is None  # a DLQ record is an end


async def test_the_pipeline_degrades_where_it_packages_and_dead_letters_otherwise(
    tmp_path: Path,
) -> None:
    event = _event(tmp_path, ["nlp", "package"])
    ends = await run_stages([Broken(), Ends()], [event])
    [onward] = ends  # the record travels with it: a real package stage publishes it
    assert not onward.is_dlq and onward.data["failures"][0]["stage"] == "nlp"
    assert terminal_outcome(onward) == "degraded"

    alone = await run_stages([Broken()], [event])  # nothing would package it here
    [record] = alone
    assert record.is_dlq and record.data["reason"] == "stage_error"
    assert voxel_of(record) is None and terminal_outcome(record) == "dlq"
    named = record.model_copy(update={"data": {**record.data, "voxel_id": "v1"}})
    assert voxel_of(named) == "v1" and terminal_outcome(named) is None
