"""The in-process handoff: a stage takes the event this process published, not a re-decode."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from thunderline.bus import MemoryBus
from thunderline.errors import MalformedEventError
from thunderline.eventdata import Routed, data_of
from thunderline.events import CloudEvent, new_event
from thunderline.flow import Outcome, Pipeline, Stage
from thunderline.flow.engine import Handoff
from thunderline.testing import event as typed
from thunderline.testing import event_types


class Ping(Routed):
    """Input of the test stage."""

    n: int = 0


class Pong(Routed):
    """Output of the test stage."""

    n: int


@pytest.fixture(autouse=True)
def _test_event_types() -> Iterator[None]:
    with event_types({"test.ping": Ping, "test.pong": Pong}):
        yield


class Echo(Stage):
    """Keeps every event it is handed."""

    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[CloudEvent] = []

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        self.seen.extend(events)
        return [
            [self.advance(e, "test.pong", Pong(n=data_of(e, Ping).n, route=list(e.route)))]
            for e in events
        ]


async def test_stage_and_collector_take_the_published_events_themselves() -> None:
    stage = Echo()
    ends: list[CloudEvent] = []
    pipeline = Pipeline(MemoryBus(), [stage], on_terminal=ends.append)
    assert pipeline.handoff is not None
    sent = [typed("test.ping", Ping(n=i, route=["echo"])) for i in range(5)]
    await pipeline.start()
    for event in sent:
        await pipeline.submit(event)
    await pipeline.wait_idle(20)
    await pipeline.stop()
    assert [id(e) for e in stage.seen] == [id(e) for e in sent]  # no decode in between
    assert sorted(data_of(e, Pong).n for e in ends) == list(range(5))
    assert len(pipeline.handoff) == 0  # every entry was taken


def test_bytes_not_published_here_are_decoded_and_checked() -> None:
    handoff = Handoff(limit=2)
    event = new_event("test.ping", {"n": 1, "route": []})
    decoded = handoff.take(event.to_bytes())
    assert decoded == event and decoded is not event
    with pytest.raises(MalformedEventError):
        handoff.take(b"not json")


def test_bounded_oldest_first_and_a_miss_still_decodes() -> None:
    handoff = Handoff(limit=2)
    events = [new_event("test.ping", {"n": i, "route": []}) for i in range(3)]
    for event in events:
        handoff.put(event.to_bytes(), event)
    assert len(handoff) == 2
    assert handoff.take(events[2].to_bytes()) is events[2]
    evicted = handoff.take(events[0].to_bytes())
    assert evicted == events[0] and evicted is not events[0]
