"""The testing kit: typed builders, test_message, StageRunner, contract checks, samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from thunderline.errors import MalformedEventError
from thunderline.eventdata import Classified, Routed, data_of
from thunderline.events import INGEST_CLASSIFIED, INGEST_RECEIVED, CloudEvent
from thunderline.flow.stage import Outcome, Stage
from thunderline.objects import LocalObjectStore
from thunderline.testing import (
    StageContractError,
    StageRunner,
    classified,
    event,
    event_types,
    ingest_file,
    test_message,
)
from thunderline.testing.samples import image_bytes, text_corpus


class Echo(Routed):
    text: str


class Shout(Stage):
    name = "shout"

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        return [
            [self.advance(e, "kit.echo", Echo(text=data_of(e, Echo).text.upper(), route=["shout"]))]
            for e in events
        ]


class Careless(Stage):
    name = "shout"

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        return [[e.derive("kit.echo", {"route": [], "txt": "typo"})] for e in events]


async def test_test_message_runs_one_event_through_one_stage() -> None:
    with event_types({"kit.echo": Echo}):
        end = await test_message(Shout(), event("kit.echo", Echo(text="hi", route=["shout"])))
        assert end.type == "kit.echo" and end.data == {"route": [], "text": "HI"}
    with pytest.raises(MalformedEventError, match="unknown event type"):
        event("kit.echo", Echo(text="gone"))


async def test_a_broken_output_contract_fails_the_test() -> None:
    with event_types({"kit.echo": Echo}):
        async with StageRunner([Careless()]) as runner:
            await runner.submit(event("kit.echo", Echo(text="hi", route=["shout"])))
            with pytest.raises(StageContractError, match="broke its output contract"):
                await runner.drain(10)
        lenient = StageRunner([Careless()], strict=False)
        async with lenient:
            await lenient.submit(event("kit.echo", Echo(text="hi", route=["shout"])))
            [end] = await lenient.drain(10)
        assert end.data["reason"] == "contract_violation"


def test_builders_make_events_as_the_pipeline_does(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    made = classified(store, b"hello", "txt", route=["nlp", "package"])
    data = data_of(made, Classified)
    assert made.type == INGEST_CLASSIFIED and made.causationid == made.correlationid
    assert store.get_bytes(data.artifact.sha256) == b"hello"
    assert data.classification.label == "txt" and data.route == ["nlp", "package"]
    start = ingest_file("/data/in put/a.txt", root="/data")
    assert start.type == INGEST_RECEIVED and start.data["artifact"]["name"] == "a.txt"


def test_samples_are_deterministic() -> None:
    assert image_bytes(3) == image_bytes(3) != image_bytes(4)
    assert image_bytes(1, fmt="JPEG")[:2] == b"\xff\xd8"
    docs = text_corpus(5, 512)
    assert len(docs) == 5 and len(set(docs)) == 5
    assert all(len(d.encode()) >= 460 for d in docs)
