"""The dlq package without services: the one record builder, Subject (which artifact), and the
replay's claim -> submit -> settle over a real SQLite outcome store."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from thunderline.config import Settings
from thunderline.dlq.record import BrokerDeadLetterError, Subject, dead_letter
from thunderline.dlq.replay import REPLAY_SOURCE, NotReplayableError, replay
from thunderline.dlq.store import DeadLetters
from thunderline.errors import ArtifactTooLargeError, OverloadError
from thunderline.eventdata import DlqRecord, data_of
from thunderline.events import DLQ_CLASSIFY, DLQ_OVERLOAD, INGEST_RECEIVED, CloudEvent, new_event
from thunderline.outcomes import OPEN, REPLAYED, OutcomeStore

ARTIFACT = {"name": "a.txt", "path": "/in/a.txt", "source": "file:///in/a.txt"}


def _ingest(**artifact: str) -> CloudEvent:
    return new_event(INGEST_RECEIVED, {"artifact": artifact or ARTIFACT, "route": ["classify"]})


def test_a_record_keeps_the_original_chain_and_the_error() -> None:
    original = _ingest()
    error = ArtifactTooLargeError("too big", details={"classification": {"group": "text"}})
    record = dead_letter("classify", DLQ_CLASSIFY, error, original=original, attempts=2)
    data = data_of(record, DlqRecord)
    assert (data.stage, data.reason, data.attempts) == ("classify", "too_large", 2)
    assert data.error.type == "ArtifactTooLargeError" and data.original == original.to_dict()
    assert record.correlationid == original.correlationid and record.causationid == original.id
    subject = Subject.of(record)
    assert subject.original == original and subject.key == "file:///in/a.txt"
    assert subject.name == "a.txt" and subject.classification == {"group": "text"}


def test_a_record_without_an_event_keeps_the_raw_message_under_a_fixed_id() -> None:
    record = dead_letter(
        "nlp",
        DLQ_OVERLOAD,
        BrokerDeadLetterError("gone", reason="delivery_limit", details={"queue": "q"}),
        original=None,
        raw=b"\xffnot an event",
        record_id="0190d0a0-0000-7000-8000-000000000000",
        extra={"broker": {"x-first-death-queue": "q"}},
    )
    assert record.id == record.correlationid == "0190d0a0-0000-7000-8000-000000000000"
    assert record.data["reason"] == "delivery_limit" and record.data["broker"]
    assert record.data["original"] is None and record.data["original_raw"].endswith("not an event")
    assert Subject.of(record).original is None and Subject.of(record).key is None


@pytest.mark.parametrize(
    ("artifact", "key", "name"),
    [
        ({"name": "n", "path": "/p", "source": "s"}, "s", "n"),
        ({"name": "n", "path": "/p"}, "/p", "n"),
        ({"path": "/p"}, "/p", "/p"),
        ({"payload_ref": "sha256:" + "0" * 64}, "sha256:" + "0" * 64, "sha256:" + "0" * 64),
    ],
)
def test_the_subject_of_an_end_is_its_artifact(
    artifact: dict[str, str], key: str, name: str
) -> None:
    event = _ingest(**artifact)
    assert (Subject.of(event).key, Subject.of(event).name) == (key, name)
    failed = dead_letter("classify", DLQ_CLASSIFY, OverloadError("x"), original=event)
    assert (Subject.of(failed).key, Subject.of(failed).name) == (key, name)


async def test_replay_claims_once_and_releases_when_the_submit_fails(
    make_settings: Callable[..., Settings],
) -> None:
    original = _ingest()
    record = dead_letter("classify", DLQ_CLASSIFY, ArtifactTooLargeError("big"), original=original)
    rawless = dead_letter("nlp", DLQ_CLASSIFY, OverloadError("x"), original=None, raw=b"?")
    with OutcomeStore(make_settings()) as store:
        store.record_many([record, rawless])
        letters = DeadLetters(store)
        assert [r.id for r in letters.all(OPEN)] == [record.id, rawless.id]

        async def refused(event: CloudEvent) -> None:
            raise OverloadError("queue full")

        letter = letters.get(record.id)
        assert letter is not None
        with pytest.raises(OverloadError):
            await replay(letters, letter, refused)
        assert store.dlq_get(record.id).status == OPEN  # type: ignore[union-attr]

        sent: list[CloudEvent] = []

        async def submit(event: CloudEvent) -> None:
            sent.append(event)

        event = await replay(letters, letter, submit)
        assert event is not None and sent == [event]
        assert event.source == REPLAY_SOURCE and event.type == original.type
        assert event.correlationid == original.correlationid and event.id != original.id
        claimed = store.dlq_get(record.id)
        assert claimed is not None and claimed.status == REPLAYED
        assert claimed.replay_event_id == event.id
        assert await replay(letters, claimed, submit) is None and len(sent) == 1
        with pytest.raises(NotReplayableError):
            await replay(letters, letters.get(rawless.id), submit)  # type: ignore[arg-type]
        newest = letters.newest(1)
        assert [r.id for r in newest] == [rawless.id]
