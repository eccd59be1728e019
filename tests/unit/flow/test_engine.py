"""The pipeline engine: batching, demand, retries, DLQ, timeouts, overflow, shutdown, telemetry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from thunderline.bus import MemoryBus
from thunderline.config import OverflowPolicy, RetryPolicy
from thunderline.errors import BackendError, EventContractError, StageError
from thunderline.eventdata import Routed, data_of
from thunderline.events import DLQ_OVERLOAD, CloudEvent
from thunderline.flow import Outcome, Pipeline, Stage, StageOptions
from thunderline.obs import metrics, telemetry
from thunderline.testing import StageContractError, check_contracts, event_types
from thunderline.testing import event as typed


class Work(Routed):
    """What the test stage is told to do with one event."""

    i: int = 0
    hang: bool = False
    boom: bool = False
    fail_times: int = 0
    permanent: bool = False


class Done(Routed):
    n: int


@pytest.fixture(autouse=True)
def _test_event_types() -> Iterator[None]:
    with event_types({"test.in": Work, "test.done": Done}):
        yield


class Recorder(Stage):
    """A stage whose behaviour per event is driven by the event's data."""

    name = "work"

    def __init__(self, options: StageOptions | None = None, delay: float = 0.0) -> None:
        super().__init__(options)
        self.batches: list[int] = []
        self.calls: dict[str, int] = {}
        self.delay = delay
        self.active = 0
        self.max_active = 0

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        self.batches.append(len(events))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            work = [data_of(e, Work) for e in events]
            if any(w.hang for w in work):
                await asyncio.sleep(3600)
            if any(w.boom for w in work):
                raise ValueError("handler exploded")
            if self.delay:
                await asyncio.sleep(self.delay)
            out: list[Outcome] = []
            for e, w in zip(events, work, strict=True):
                n = self.calls[e.id] = self.calls.get(e.id, 0) + 1
                if n <= w.fail_times:
                    out.append(BackendError(f"transient failure {n}"))
                elif w.permanent:
                    out.append(StageError("permanent failure"))
                else:
                    out.append([self.advance(e, "test.done", Done(n=w.i, route=w.route))])
            return out
        finally:
            self.active -= 1


def ev(**data: Any) -> CloudEvent:
    data.setdefault("route", ["work"])
    return typed("test.in", Work(**data))


async def run(stage: Stage, events: list[CloudEvent], **kw: Any) -> list[CloudEvent]:
    ends: list[CloudEvent] = []
    bus = kw.pop("bus", None) or MemoryBus()
    pipeline = Pipeline(bus, [stage], on_terminal=ends.append, **kw)
    await pipeline.start()
    for event in events:
        await pipeline.submit(event)
    await pipeline.wait_idle(20)
    await pipeline.stop()
    return ends


async def test_batches_respect_size_and_timeout() -> None:
    stage = Recorder(StageOptions(batch_size=4, batch_timeout_s=0.05))
    ends = await run(stage, [ev(i=i) for i in range(10)])
    assert len(ends) == 10
    assert all(e.type == "test.done" for e in ends)
    assert max(stage.batches) <= 4
    assert sum(stage.batches) == 10
    assert stage.batches[0] == 4  # the first batch filled up before the timeout


async def test_partial_batch_flushes_after_timeout() -> None:
    stage = Recorder(StageOptions(batch_size=100, batch_timeout_s=0.05))
    ends = await run(stage, [ev(i=i) for i in range(3)])
    assert len(ends) == 3 and sum(stage.batches) == 3


async def test_concurrency_runs_batches_in_parallel() -> None:
    stage = Recorder(StageOptions(batch_size=1, concurrency=3), delay=0.05)
    await run(stage, [ev(i=i) for i in range(9)])
    assert stage.max_active == 3


async def test_bounded_demand_caps_in_flight() -> None:
    stage = Recorder(StageOptions(batch_size=10, batch_timeout_s=0.01, concurrency=4), delay=0.02)
    ends = await run(stage, [ev(i=i) for i in range(40)], max_demand=3)
    assert len(ends) == 40
    assert max(stage.batches) <= 3  # never more than 3 messages taken at once


async def test_acknowledges_after_publishing() -> None:
    order: list[str] = []

    class TracingBus(MemoryBus):
        async def publish(
            self, topic: str, payload: bytes, *, block: bool = True, bounded: bool = True
        ) -> str:
            order.append(f"publish:{topic}")
            return await super().publish(topic, payload, block=block, bounded=bounded)

        async def ack(self, delivery: Any) -> None:
            order.append(f"ack:{delivery.topic}")
            await super().ack(delivery)

    bus = TracingBus()
    await run(Recorder(), [ev(i=1)], bus=bus)
    assert order.index("publish:terminal") < order.index("ack:work")
    assert bus.unacked("work") == 0


async def test_retryable_error_is_retried_then_succeeds() -> None:
    before = metrics.sample("thunderline_stage_retries_total", {"stage": "work"})
    stage = Recorder(StageOptions(retry=RetryPolicy(attempts=3, backoff_s=0.001)))
    ends = await run(stage, [ev(i=1, fail_times=2)])
    assert [e.type for e in ends] == ["test.done"]
    assert metrics.sample("thunderline_stage_retries_total", {"stage": "work"}) - before == 2


async def test_exhausted_retries_dead_letter_with_original_reason_and_traceback() -> None:
    stage = Recorder(StageOptions(retry=RetryPolicy(attempts=3, backoff_s=0.001)))
    original = ev(i=1, fail_times=5)
    ends = await run(stage, [original])
    assert len(ends) == 1
    dlq = ends[0]
    assert dlq.type == "system.dlq.work_failed"
    assert dlq.data["reason"] == "backend"
    assert dlq.data["attempts"] == 3
    assert dlq.data["original"] == original.to_dict()
    assert "BackendError: transient failure 3" in dlq.data["traceback"]
    assert dlq.correlationid == original.correlationid
    assert dlq.causationid == original.id


async def test_permanent_error_is_not_retried() -> None:
    stage = Recorder(StageOptions(retry=RetryPolicy(attempts=5, backoff_s=0.001)))
    before = metrics.sample("thunderline_dlq_total", {"stage": "work", "reason": "stage_error"})
    ends = await run(stage, [ev(i=1, permanent=True), ev(i=2)])
    kinds = sorted(e.type for e in ends)
    assert kinds == ["system.dlq.work_failed", "test.done"]
    dlq = next(e for e in ends if e.is_dlq)
    assert dlq.data["attempts"] == 1
    after = metrics.sample("thunderline_dlq_total", {"stage": "work", "reason": "stage_error"})
    assert after - before == 1


async def test_raising_handler_dead_letters_the_whole_batch() -> None:
    stage = Recorder(
        StageOptions(batch_size=3, batch_timeout_s=0.05, retry=RetryPolicy(attempts=1))
    )
    ends = await run(stage, [ev(i=0, boom=True), ev(i=1), ev(i=2)])
    assert len(ends) == 3
    assert all(e.is_dlq and e.data["reason"] == "internal" for e in ends)
    assert all("ValueError: handler exploded" in e.data["traceback"] for e in ends)


async def test_hanging_handler_times_out_and_is_dead_lettered() -> None:
    stage = Recorder(StageOptions(timeout_s=0.1, retry=RetryPolicy(attempts=2, backoff_s=0.001)))
    ends = await run(stage, [ev(i=1, hang=True)])
    assert len(ends) == 1
    assert ends[0].data["reason"] == "timeout"
    assert ends[0].data["attempts"] == 2


async def test_malformed_message_goes_to_the_dlq() -> None:
    bus = MemoryBus()
    ends: list[CloudEvent] = []
    pipeline = Pipeline(bus, [Recorder()], on_terminal=ends.append)
    await pipeline.start()
    pipeline._add_outstanding(1)  # what submit() does for a well-formed event
    await bus.publish("work", b'{"type": "no id or correlation"')
    await pipeline.wait_idle(5)
    await pipeline.stop()
    assert len(ends) == 1
    assert ends[0].type == "system.dlq.work_failed"
    assert ends[0].data["reason"] == "malformed_event"
    assert ends[0].data["original"] is None
    assert ends[0].data["original_raw"].startswith('{"type"')


async def test_drop_oldest_dead_letters_what_it_drops() -> None:
    ends: list[CloudEvent] = []
    pipeline: Pipeline | None = None

    async def on_drop(topic: str, payload: bytes) -> None:
        assert pipeline is not None
        await pipeline.on_overflow_drop(topic, payload)

    bus = MemoryBus(maxsize=5, overflow=OverflowPolicy.DROP_OLDEST, on_drop=on_drop)
    stage = Recorder(StageOptions(batch_size=1), delay=0.01)
    pipeline = Pipeline(bus, [stage], on_terminal=ends.append, max_demand=1)
    await pipeline.start()
    submitted = [ev(i=i) for i in range(40)]
    for event in submitted:
        await pipeline.submit(event)
    await pipeline.wait_idle(20)
    await pipeline.stop()
    dropped = [e for e in ends if e.type == DLQ_OVERLOAD]
    done = [e for e in ends if e.type == "test.done"]
    assert dropped, "a full queue with drop_oldest must drop something"
    assert len(dropped) + len(done) == 40  # nothing vanished
    assert all(e.data["reason"] == "overload" for e in dropped)
    ids = {e.data["original"]["id"] for e in dropped} | {e.causationid for e in done}
    assert ids == {e.id for e in submitted}


async def test_shutdown_drains_messages_in_flight() -> None:
    stage = Recorder(StageOptions(batch_size=2, concurrency=2), delay=0.02)
    ends: list[CloudEvent] = []
    pipeline = Pipeline(MemoryBus(), [stage], on_terminal=ends.append)
    await pipeline.start()
    for i in range(30):
        await pipeline.submit(ev(i=i))
    await pipeline.stop(drain=True, timeout_s=20)
    assert len(ends) == 30 and all(e.type == "test.done" for e in ends)


async def test_shutdown_timeout_dead_letters_the_rest() -> None:
    stage = Recorder(StageOptions(batch_size=1), delay=0.05)
    ends: list[CloudEvent] = []
    bus = MemoryBus()
    pipeline = Pipeline(bus, [stage], on_terminal=ends.append)
    await pipeline.start()
    for i in range(30):
        await pipeline.submit(ev(i=i))
    await pipeline.stop(drain=True, timeout_s=0.2)
    done = [e for e in ends if e.type == "test.done"]
    shut = [e for e in ends if e.is_dlq]
    assert len(done) + len(shut) == 30
    assert shut and all(e.data["reason"] == "shutdown" for e in shut)
    assert bus.depth("work") == 0 and bus.unacked("work") == 0


async def test_telemetry_start_stop_error() -> None:
    seen: list[tuple[str, ...]] = []
    telemetry.attach("test", lambda name, m, meta: seen.append(name))
    try:
        await run(
            Recorder(StageOptions(retry=RetryPolicy(attempts=1))),
            [ev(i=1), ev(i=2, permanent=True)],
        )
    finally:
        telemetry.detach("test")
    names = {n[-1] for n in seen if n[:3] == ("thunderline", "stage", "work")}
    assert names == {"start", "stop", "error"}


async def test_fan_out_and_chain_across_two_stages() -> None:
    class Split(Stage):
        name = "split"

        async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
            return [
                [
                    self.advance(e, "test.in", Work(i=k, route=data_of(e, Work).route))
                    for k in range(3)
                ]
                for e in events
            ]

    ends: list[CloudEvent] = []
    pipeline = Pipeline(MemoryBus(), [Split(), Recorder()], on_terminal=ends.append)
    await pipeline.start()
    root = ev(route=["split", "work"])
    await pipeline.submit(root)
    await pipeline.wait_idle(5)
    await pipeline.stop()
    assert len(ends) == 3
    assert {e.correlationid for e in ends} == {root.id}
    assert all(e.causationid != root.id for e in ends)  # caused by the split's events


async def test_data_not_matching_its_model_is_dead_lettered_as_malformed() -> None:
    bad = typed("test.in", Work(route=["work"], i=1))
    raw = bad.to_dict()
    raw["data"] = {"route": ["work"], "i": "not a number", "surprise": 1}
    ends: list[CloudEvent] = []
    bus = MemoryBus()
    pipeline = Pipeline(bus, [Recorder()], on_terminal=ends.append)
    await pipeline.start()
    pipeline._add_outstanding(1)
    await bus.publish("work", CloudEvent.from_dict(raw).to_bytes())
    await pipeline.wait_idle(5)
    await pipeline.stop()
    [dlq] = ends
    assert dlq.data["reason"] == "malformed_event"
    errors = dlq.data["error"]["details"]["errors"]
    assert {e["loc"] for e in errors} == {"i", "surprise"}
    assert dlq.data["original"]["data"]["surprise"] == 1  # the original as it came


async def test_unknown_event_type_is_dead_lettered_as_malformed() -> None:
    ends: list[CloudEvent] = []
    bus = MemoryBus()
    pipeline = Pipeline(bus, [Recorder()], on_terminal=ends.append)
    await pipeline.start()
    pipeline._add_outstanding(1)
    stray = CloudEvent(type="test.unknown", data={"route": ["work"]}, correlationid="c-1")
    await bus.publish("work", stray.to_bytes())
    await pipeline.wait_idle(5)
    await pipeline.stop()
    [dlq] = ends
    assert dlq.data["reason"] == "malformed_event"
    assert "unknown event type 'test.unknown'" in dlq.data["error"]["message"]


async def test_output_breaking_its_contract_is_a_contract_violation() -> None:
    class Sloppy(Stage):
        """Publishes a dict by hand where the contract says Done."""

        name = "work"

        async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
            return [[e.derive("test.done", {"route": [], "n": "many"})] for e in events]

    ends = await run(Sloppy(), [ev(i=1)])
    [dlq] = ends
    assert dlq.is_dlq and dlq.data["reason"] == "contract_violation"
    with pytest.raises(StageContractError, match="broke its output contract"):
        check_contracts(ends)


async def test_advance_refuses_data_of_another_model() -> None:
    stage = Recorder()
    with pytest.raises(EventContractError, match=r"test.done must carry Done, got Work"):
        stage.advance(ev(i=1), "test.done", Work(route=[]))


class Relay(Stage):
    """``first`` passes each event on; ``last`` fans an event with ``i > 0`` out into ``i``
    children routed back to ``first`` (as ``package`` does with archive members)."""

    def __init__(self, name: str) -> None:
        super().__init__(StageOptions(batch_size=2, concurrency=2))
        self.name = name

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        out: list[Outcome] = []
        for e in events:
            w = data_of(e, Work)
            if self.name == "first":
                out.append([self.advance(e, "test.in", w)])
                continue
            children = [
                self.advance(e, "test.in", Work(i=0), route=["first", "last"]) for _ in range(w.i)
            ]
            out.append([self.advance(e, "test.done", Done(n=w.i, route=w.route)), *children])
        return out


@pytest.mark.parametrize("policy", list(OverflowPolicy))
async def test_children_back_up_the_route_do_not_deadlock_bounded_queues(
    policy: OverflowPolicy,
) -> None:
    """A cycle of bounded queues (children back to the first stage) must not fill both ways.

    Before back edges passed the bound, ``first`` waited on a full ``last`` queue while ``last``
    waited on a full ``first`` queue: ``wait_idle`` timed out.
    """
    ends: list[CloudEvent] = []
    dropped: list[bytes] = []

    async def on_drop(topic: str, payload: bytes) -> None:
        dropped.append(payload)
        await pipeline.on_overflow_drop(topic, payload)

    bus = MemoryBus(maxsize=1, overflow=policy, on_drop=on_drop)
    pipeline = Pipeline(bus, [Relay("first"), Relay("last")], on_terminal=ends.append)
    assert pipeline.reenters("last", "first") and pipeline.reenters("last", "last")
    assert not pipeline.reenters("first", "last") and not pipeline.reenters("first", "terminal")
    await pipeline.start()

    async def ingest() -> None:  # submit itself blocked for good in the deadlock
        for _ in range(10):
            await pipeline.submit(ev(i=5, route=["first", "last"]))
        await pipeline.wait_idle()

    try:
        await asyncio.wait_for(ingest(), 10)
    finally:
        await pipeline.stop(timeout_s=1)
    done = [e for e in ends if e.type == "test.done"]
    overload = [e for e in ends if e.type == DLQ_OVERLOAD]
    assert len(overload) == len(dropped)
    if policy is OverflowPolicy.BLOCK:
        assert len(done) == 10 * (1 + 5) and not dropped
    # every drop is dead-lettered: a parent (i=5) dropped makes no children, a child dropped
    # (on the forward edge first -> last; never on the way back) is one done fewer
    originals = [data_of(pipeline_original(r), Work).i for r in overload]
    assert len(done) == (10 - originals.count(5)) * 6 - originals.count(0)


def pipeline_original(record: CloudEvent) -> CloudEvent:
    """The event a DLQ record holds."""
    return CloudEvent.from_dict(record.data["original"])


async def test_the_native_memory_trimmer_runs_with_the_pipeline_and_stops_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thunderline import malloc

    monkeypatch.setattr(malloc, "available", lambda: True)
    bus = MemoryBus()
    ends: list[CloudEvent] = []
    pipeline = Pipeline(bus, [Recorder()], on_terminal=ends.append, malloc_trim_mb=64.0)
    assert pipeline.trimmer is not None and pipeline.trimmer.min_growth == 64 * 2**20
    await pipeline.start()
    names = [task.get_name() for task in pipeline._tasks]
    assert "malloc-trim" in names
    trim_task = pipeline._tasks[names.index("malloc-trim")]
    for i in range(5):
        await pipeline.submit(ev(i=i))
    await pipeline.wait_idle(5)
    await pipeline.stop()
    assert len(ends) == 5 and trim_task.done() and not pipeline._tasks
    assert Pipeline(bus, [Recorder()]).trimmer is None  # not asked: none
