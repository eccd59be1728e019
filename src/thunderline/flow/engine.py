"""The pipeline engine (our Broadway): runs every stage the same way on asyncio.

For each stage, ``concurrency`` workers pull from the stage's topic with bounded demand, gather
a batch (``batch_size`` messages or ``batch_timeout_s`` after the first), call
``handle_batch`` under a timeout, publish the outputs to the next stage on each event's route,
and only then acknowledge the inputs. Retryable errors are retried with exponential backoff;
permanent errors and exhausted retries are dead-lettered with the original event, the reason
and the traceback. **Degrade, don't drop**: when the failed stage comes after classify and the
route still reaches ``package``, the artifact goes on to ``package`` without that stage's
result (the stages between are skipped, each with a note) and carries the DLQ record, which
the package stage publishes naming the voxel it stored (:func:`degraded`). The collector (:mod:`thunderline.flow.collector`, the same one a worker runs)
consumes the terminal and DLQ topics, records them in the outcome store
(:mod:`thunderline.outcomes`), counts and reports each finished artifact, so the engine knows
when everything submitted has ended.

Telemetry: ``("thunderline", "stage", <stage>, "start" | "stop" | "error")`` per batch (the
metadata carries the batch's ``events``; :mod:`thunderline.obs.tracing` makes spans of them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC, Delivery, EventBus
from thunderline.dlq.record import dead_letter
from thunderline.errors import (
    EventContractError,
    MalformedEventError,
    OverloadError,
    StageTimeoutError,
    is_retryable,
    reason_of,
)
from thunderline.eventdata import (
    Classified,
    Note,
    StageFailure,
    ensure_valid,
    typed_event,
    validate_data,
)
from thunderline.events import DLQ_OVERLOAD, CloudEvent
from thunderline.flow.collector import Collector
from thunderline.flow.stage import Outcome, Stage
from thunderline.journal import Journal
from thunderline.malloc import Trimmer, trim_while_running
from thunderline.obs import metrics, telemetry
from thunderline.obs.logs import correlation_id

if TYPE_CHECKING:
    from thunderline.outcomes import OutcomeStore

_log = logging.getLogger("thunderline.flow")

TerminalCallback = Callable[[CloudEvent], object]
_POLL_S = 0.05
#: How long an idle stage worker waits for its first message before it looks again. A message
#: wakes it at once (the bus notifies waiting pullers); the wait only bounds how often an idle
#: worker runs at all (``stop`` cancels the workers, it does not wait for this). 0.05 s made
#: each idle worker cost the event loop 20 wake-ups a second.
_IDLE_WAIT_S = 1.0
_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once per label set.

    Per event it was the engine's most frequent lock-and-dict walk; no metric's children are
    ever removed, so a cached child stays the one ``labels`` would give.
    """
    key = (id(metric), values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child


#: Events published here on the in-process bus and not yet taken, at most (see :class:`Handoff`).
HANDOFF_MAX = 8192


class Handoff:
    """The events this process put on an in-process bus, by their wire bytes, until taken.

    On the in-process bus the bytes a stage takes are the bytes this process encoded a moment
    before from an event it had validated (stage outputs are checked against their contract,
    submissions are validated when built). Taking the event itself saves decoding the JSON and
    validating the envelope and the data again; bytes this process did not publish (another
    process, a replayed journal) are decoded and validated as always. Equal bytes decode to an
    equal event, so a hit is exactly what decoding would give. Bounded: the oldest entries go
    first (a message taken by no one then costs a decode, never a wrong event).
    """

    def __init__(self, limit: int = HANDOFF_MAX) -> None:
        self.limit = limit
        self._events: dict[bytes, CloudEvent] = {}

    def put(self, payload: bytes, event: CloudEvent) -> None:
        """Remember ``event`` as the decoded form of ``payload``."""
        events = self._events
        if len(events) >= self.limit:
            del events[next(iter(events))]
        events[payload] = event

    def take(self, payload: bytes) -> CloudEvent:
        """The event of ``payload``: the one published here, else decoded (and validated).

        Raises:
            MalformedEventError: bytes not published here that are not an event.
        """
        event = self._events.pop(payload, None)
        return event if event is not None else CloudEvent.from_json(payload)

    def forget(self, payload: bytes) -> None:
        """Drop the entry of ``payload`` (its publish failed: no one will take it)."""
        self._events.pop(payload, None)

    def __len__(self) -> int:
        return len(self._events)


#: Stages whose failure dead-letters the artifact as before: nothing is stored before
#: classify, and a failure of ``package`` itself has no voxel to degrade to.
NOT_DEGRADED: frozenset[str] = frozenset({"classify", "package"})
PACKAGE = "package"


def degraded(stage: str, event: CloudEvent, record: CloudEvent) -> CloudEvent | None:
    """``event`` on to ``package`` without the result of ``stage``, which failed for good.

    ``stage`` failed with the DLQ ``record``: the record travels in ``data.failures`` and the
    stages between are skipped with a note. None when the artifact cannot go on (before classify,
    no ``package`` on its route, or ``package`` failed): then the record is the artifact's end.
    """
    route = event.route
    if stage in NOT_DEGRADED or event.is_dlq or PACKAGE not in route:
        return None
    try:
        data = validate_data(event)
    except Exception:
        return None
    if not isinstance(data, Classified):
        return None
    rest = route[route.index(PACKAGE) :]
    skipped = [s for s in route[: route.index(PACKAGE)] if s != stage]
    error = record.data.get("error") or {}
    failure = StageFailure(
        stage=stage,
        reason=str(record.data.get("reason") or "internal"),
        error_type=str(error.get("type") or "Exception"),
        message=str(error.get("message") or "")[:1000],
        dlq_id=record.id,
        record=record.to_dict(),
    )
    notes = [
        *(data.notes or []),
        *(Note(stage=s, note=f"skipped: {stage} failed") for s in skipped),
    ]
    update = {"failures": [*(data.failures or []), failure], "notes": notes or None, "route": rest}
    return typed_event(
        event.type,
        data.model_copy(update=update),
        parent=event,
        source=f"urn:thunderline:stage:{stage}",
    )


def topic_for(event: CloudEvent) -> str:
    """Where the bus delivers ``event``: its next stage, the DLQ, or the terminal sink."""
    if event.is_dlq:
        return DLQ_TOPIC
    route = event.route
    return route[0] if route else TERMINAL_TOPIC


class _Demand:
    """Bounded demand: at most ``limit`` messages of one stage taken and not yet settled."""

    def __init__(self, limit: int) -> None:
        self.available = limit
        self._cond = asyncio.Condition()

    async def reserve(self, want: int) -> int:
        async with self._cond:
            await self._cond.wait_for(lambda: self.available > 0)
            n = min(want, self.available)
            self.available -= n
            return n

    def try_reserve(self, want: int) -> int:
        n = min(want, self.available)
        self.available -= n
        return n

    async def release(self, n: int = 1) -> None:
        if n <= 0:
            return
        async with self._cond:
            self.available += n
            self._cond.notify_all()


class Pipeline:
    """Runs stages over a bus until stopped; tracks every submitted message to its end."""

    def __init__(
        self,
        bus: EventBus,
        stages: Sequence[Stage],
        *,
        max_demand: int = 256,
        shutdown_timeout_s: float = 30.0,
        on_terminal: TerminalCallback | None = None,
        journal: Journal | None = None,
        run_collector: bool = True,
        outcomes: OutcomeStore | None = None,
        malloc_trim_mb: float | None = None,
    ) -> None:
        self.bus = bus
        #: ``TL_MALLOC_TRIM_MB`` (None: off): this process gives freed native memory back.
        self.trimmer = Trimmer(malloc_trim_mb) if malloc_trim_mb is not None else None
        self.stages = {stage.name: stage for stage in stages}
        self.max_demand = max_demand
        self.shutdown_timeout_s = shutdown_timeout_s
        self.on_terminal = on_terminal
        self.journal = journal
        self.outcomes = outcomes
        self.run_collector = run_collector
        self.collector: Collector | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._demand = {name: _Demand(max_demand) for name in self.stages}
        #: Each stage's place in route order: a stage publishing to a topic of the same or a
        #: lower rank closes a cycle (archive members back into ``classify``).
        self._rank = {name: i for i, name in enumerate(self.stages)}
        self._in_flight: dict[str, dict[str, tuple[Delivery, CloudEvent | None]]] = {
            name: {} for name in self.stages
        }
        self._started = False
        #: In-process bus only: what a stage takes is what this process just published.
        self.handoff: Handoff | None = None if bus.durable else Handoff()

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Set up every stage, start its ``concurrency`` workers and, if enabled, the collector."""
        for stage in self.stages.values():
            await stage.setup()
        for stage in self.stages.values():
            for n in range(stage.options.concurrency):
                self._tasks.append(
                    asyncio.create_task(
                        self._worker(stage, f"{stage.name}-{n}"), name=f"{stage.name}-{n}"
                    )
                )
        for name in self.stages:
            metrics.declare_stage(name)
        if self.trimmer is not None and self.trimmer.enabled:
            self._tasks.append(
                asyncio.create_task(trim_while_running(self.trimmer), name="malloc-trim")
            )
        if self.run_collector:
            self.collector = Collector(
                self.bus,
                self.outcomes,
                on_event=self.on_terminal,
                on_settled=self._settled,
                decode=self.handoff.take if self.handoff is not None else None,
            )
            self._tasks.append(asyncio.create_task(self.collector.run(), name="collector"))
        self._started = True

    def _settled(self, n: int) -> None:
        self._add_outstanding(-n)
        if self.journal is not None:
            self.journal.flush()

    async def stop(self, *, drain: bool = True, timeout_s: float | None = None) -> None:
        """Stop: drain (bounded by the timeout), then close the stages.

        Draining waits for what was submitted here to end (on the in-process bus), then asks
        the bus to stop feeding this process (:meth:`EventBus.prepare_for_draining`) and waits
        until it holds nothing. What could not finish in time is dead-lettered with reason
        ``shutdown`` on a bus that is not durable, so that no message vanishes; a durable bus
        gets it back when it closes (the broker redelivers it to another worker).
        """
        timeout = self.shutdown_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        if drain and not self.bus.durable:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                _log.warning(
                    "drain timed out after %.1fs with %d messages open", timeout, self._outstanding
                )
        if drain:
            await self.bus.prepare_for_draining()
            while self.bus.held and time.monotonic() < deadline:
                await asyncio.sleep(_POLL_S)
            if self.bus.held and self.bus.durable:
                _log.warning(
                    "shutdown: %d messages unfinished after %.0fs go back to their queues",
                    self.bus.held,
                    timeout,
                )
        self._stopping.set()
        workers = [t for t in self._tasks if t.get_name() != "collector"]
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if not self.bus.durable:
            await self._dead_letter_leftovers()
            if self.run_collector:
                try:
                    await asyncio.wait_for(self._idle.wait(), 10.0)
                except TimeoutError:
                    _log.error("collector did not settle %d messages", self._outstanding)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for stage in self.stages.values():
            try:
                await stage.close()
            except Exception:
                _log.exception("closing stage %s failed", stage.name)

    async def _dead_letter_leftovers(self) -> None:
        shutdown = StageTimeoutError("pipeline shut down before the message was processed")
        shutdown.reason = "shutdown"
        for name, stage in self.stages.items():
            for delivery, event in list(self._in_flight[name].values()):
                await self._dead_letter(stage, delivery, event, shutdown, attempts=1)
            self._in_flight[name].clear()
            while self.bus.depth(name):
                for delivery in await self.bus.pull(name, "shutdown", 256, 0.0):
                    event = self._decode_quiet(delivery.payload)
                    await self._dead_letter(stage, delivery, event, shutdown, attempts=0)

    # ---- submission -----------------------------------------------------------------------
    async def submit(self, event: CloudEvent, *, block: bool = True) -> None:
        """Publish an event into the pipeline.

        A full first queue makes it wait (``block``) or raise
        :class:`~thunderline.errors.OverloadError`: the one place back-pressure holds work back
        (stage outputs going back up the route are not bounded, see :meth:`reenters`).
        """
        self._add_outstanding(1)
        try:
            await self._publish(event, block=block)
        except Exception:  # refused (OverloadError) or failed: it never entered the pipeline
            self._add_outstanding(-1)
            raise

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Wait until every submitted message has reached the terminal sink or the DLQ."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    @property
    def outstanding(self) -> int:
        """Messages submitted or derived that have not reached the terminal sink or the DLQ."""
        return self._outstanding

    def _add_outstanding(self, n: int) -> None:
        self._outstanding += n
        if self._outstanding <= 0:
            self._outstanding = 0
            self._idle.set()
        else:
            self._idle.clear()

    def reenters(self, origin: str, topic: str) -> bool:
        """Whether stage ``origin`` publishing to ``topic`` goes back up the route (a back edge).

        Archive members and embedded parts that ``package`` sends back into ``classify`` make
        the stage graph a cycle. With every edge blocking at a bounded queue, both ends of the
        cycle could fill and wait on each other for good (the 3,000-file benchmark did at
        ``TL_QUEUE_MAX=1024``). A back edge's publish is therefore not held to the bound: the
        forward edges left form a DAG, whose last stage always drains, so every stage does.
        What a back edge adds is bounded already (the demand of the stage that publishes it,
        the archive limits); back-pressure stays at admission (:meth:`submit`), which waits
        while the first queue holds as many as its bound, re-entered messages included.
        """
        rank = self._rank.get(topic)
        return rank is not None and rank <= self._rank.get(origin, -1)

    async def _publish(
        self, event: CloudEvent, *, block: bool = True, origin: str | None = None
    ) -> None:
        topic = topic_for(event)
        encoded = event.to_bytes()
        if self.handoff is not None:
            self.handoff.put(encoded, event)
        bounded = origin is None or not self.reenters(origin, topic)
        try:
            await self.bus.publish(topic, encoded, block=block, bounded=bounded)
        except BaseException:
            if self.handoff is not None:
                self.handoff.forget(encoded)
            raise
        labelled(metrics.EVENTS_PUBLISHED, event.type).inc()
        if self.journal is not None:
            self.journal.record(event, encoded)

    async def on_overflow_drop(self, topic: str, payload: bytes) -> None:
        """Bus callback for ``drop_oldest``: the dropped message becomes a DLQ record."""
        event = self._decode_quiet(payload)
        exc = OverloadError(f"queue {topic!r} was full; oldest message dropped (drop_oldest)")
        record = dead_letter(topic, DLQ_OVERLOAD, exc, original=event, raw=payload, attempts=0)
        metrics.DLQ_TOTAL.labels(topic, "overload").inc()
        await self._publish(record)

    def _decode_quiet(self, payload: bytes) -> CloudEvent | None:
        try:
            if self.handoff is not None:
                return self.handoff.take(payload)
            return CloudEvent.from_json(payload)
        except MalformedEventError:
            return None

    # ---- stage workers --------------------------------------------------------------------
    async def _collect(self, stage: Stage, consumer: str) -> list[Delivery]:
        opts = stage.options
        demand = self._demand[stage.name]
        batch: list[Delivery] = []
        deadline: float | None = None
        while len(batch) < opts.batch_size:
            if deadline is None:
                wait = _IDLE_WAIT_S
            else:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
            want = opts.batch_size - len(batch)
            # block for demand only while the batch is empty: a worker holding messages must
            # never wait for permits that only its own batch can give back
            permits = await demand.reserve(want) if not batch else demand.try_reserve(want)
            if permits == 0:
                break
            got = await self.bus.pull(stage.name, consumer, permits, wait)
            await demand.release(permits - len(got))
            batch.extend(got)
            if not got and deadline is None:
                return batch  # idle poll: let the caller check for shutdown
            if deadline is None:
                deadline = time.monotonic() + opts.batch_timeout_s
        return batch

    async def _worker(self, stage: Stage, consumer: str) -> None:
        while not self._stopping.is_set():
            deliveries = await self._collect(stage, consumer)
            if not deliveries:
                continue
            try:
                await self._process(stage, deliveries)
            except asyncio.CancelledError:
                raise
            except Exception:  # the engine itself must not die on a bug in one batch
                _log.exception("engine error in stage %s", stage.name)

    async def _process(self, stage: Stage, deliveries: list[Delivery]) -> None:
        in_flight = self._in_flight[stage.name]
        pending: list[tuple[Delivery, CloudEvent]] = []
        for delivery in deliveries:
            event: CloudEvent | None = None
            try:
                if self.handoff is not None:
                    event = self.handoff.take(delivery.payload)
                else:
                    event = CloudEvent.from_json(delivery.payload)
                validate_data(event)  # the one place event data is validated (cached on it)
            except MalformedEventError as exc:
                in_flight[delivery.message_id] = (delivery, event)
                await self._dead_letter(stage, delivery, event, exc, attempts=1)
                continue
            in_flight[delivery.message_id] = (delivery, event)
            pending.append((delivery, event))
        labelled(metrics.STAGE_IN_FLIGHT, stage.name).set(len(in_flight))

        attempt = 1
        while pending:
            outcomes = await self._run_batch(stage, [event for _, event in pending])
            retry: list[tuple[Delivery, CloudEvent]] = []
            settle: list[Awaitable[None]] = []
            for (delivery, event), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    metrics.STAGE_ERRORS.labels(stage.name, reason_of(outcome)).inc()
                    if is_retryable(outcome) and stage.options.retry.allows(attempt):
                        retry.append((delivery, event))
                        continue
                    settle.append(
                        self._dead_letter(stage, delivery, event, outcome, attempts=attempt)
                    )
                else:
                    settle.append(self._finish(stage, delivery, outcome))
            # each message still publishes before it is acked; the batch's messages settle
            # together, so a broker's publisher confirms overlap instead of adding up
            failures = [
                r for r in await asyncio.gather(*settle, return_exceptions=True) if r is not None
            ]
            if failures:
                raise failures[0]
            if retry:
                metrics.STAGE_RETRIES.labels(stage.name).inc(len(retry))
                await asyncio.sleep(stage.options.retry.delay(attempt))
            pending = retry
            attempt += 1
        labelled(metrics.STAGE_IN_FLIGHT, stage.name).set(len(in_flight))

    async def _run_batch(self, stage: Stage, events: list[CloudEvent]) -> list[Outcome]:
        meta = {"stage": stage.name, "count": len(events), "events": events}
        if len(events) == 1:
            correlation_id.set(events[0].correlationid)
        telemetry.emit(("thunderline", "stage", stage.name, "start"), {"count": len(events)}, meta)
        started = time.perf_counter()
        try:
            outcomes = await asyncio.wait_for(stage.handle_batch(events), stage.options.timeout_s)
            if len(outcomes) != len(events):
                raise RuntimeError(
                    f"stage {stage.name} returned {len(outcomes)} outcomes for {len(events)} events"
                )
        except TimeoutError:
            exc: BaseException = StageTimeoutError(
                f"stage {stage.name} did not finish within {stage.options.timeout_s}s"
            )
            outcomes = [exc] * len(events)
        except asyncio.CancelledError:
            raise
        except Exception as batch_error:
            outcomes = [batch_error] * len(events)
        outcomes = [self._checked(stage, outcome) for outcome in outcomes]
        duration = time.perf_counter() - started
        labelled(metrics.STAGE_DURATION, stage.name).observe(duration)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for failure in errors:
            telemetry.emit(
                ("thunderline", "stage", stage.name, "error"),
                {"duration": duration},
                {**meta, "reason": reason_of(failure), "error": failure},
            )
        telemetry.emit(
            ("thunderline", "stage", stage.name, "stop"),
            {"duration": duration, "errors": len(errors)},
            meta,
        )
        return outcomes

    @staticmethod
    def _checked(stage: Stage, outcome: Outcome) -> Outcome:
        """An outcome whose every output event fits its type's model, else the contract error.

        A contract error is a bug in the stage: it is dead-lettered as ``contract_violation`` and
        logged.
        """
        if isinstance(outcome, BaseException):
            return outcome
        try:
            for output in outcome:
                ensure_valid(output)
        except EventContractError as exc:
            _log.error("stage %s broke its output contract: %s", stage.name, exc)
            return exc
        return outcome

    async def _finish(self, stage: Stage, delivery: Delivery, outputs: list[CloudEvent]) -> None:
        # publish first, then acknowledge (at-least-once)
        self._add_outstanding(len(outputs) - 1)
        for output in outputs:
            await self._publish(output, origin=stage.name)
        await self.bus.ack(delivery)
        self._in_flight[stage.name].pop(delivery.message_id, None)
        labelled(metrics.STAGE_MESSAGES, stage.name, "ok").inc()
        await self._demand[stage.name].release()

    async def _dead_letter(
        self,
        stage: Stage,
        delivery: Delivery,
        event: CloudEvent | None,
        exc: BaseException,
        *,
        attempts: int,
    ) -> None:
        record = dead_letter(
            stage.name, stage.dlq_type, exc, original=event, raw=delivery.payload, attempts=attempts
        )
        reason = reason_of(exc)
        metrics.DLQ_TOTAL.labels(stage.name, reason).inc()
        labelled(metrics.STAGE_MESSAGES, stage.name, "dlq").inc()
        onward = None
        # in-process, the artifact goes on only where this pipeline packages; on a shared bus
        # the package stage runs in some worker
        packages = self.bus.durable or PACKAGE in self.stages
        if event is not None and reason != "shutdown" and packages:
            onward = degraded(stage.name, event, record)
        if onward is None:
            _log.info("dead-lettered in %s: %s (%s)", stage.name, reason, exc)
            await self._publish(record, origin=stage.name)
        else:  # the record travels with the artifact; package publishes it naming the voxel
            _log.info("failed in %s: %s (%s); stored without its result", stage.name, reason, exc)
            await self._publish(onward, origin=stage.name)
        await self.bus.ack(delivery)
        if self._in_flight[stage.name].pop(delivery.message_id, None) is not None:
            await self._demand[stage.name].release()
