"""Reprocess over RabbitMQ workers: the run's items go to the stage's queue, workers record them.

With ``TL_BUS_URL=amqp://…`` a reprocess run (:meth:`.Reprocessor.run`, so the CLI and
``POST /v1/reprocess`` alike) does not run the stage itself:

1. **publish** -- each pending item becomes the ``system.ingest.classified`` event of the
   in-process run (:meth:`.Reprocessor.event_for`: route ``[stage]``) with its
   :class:`~thunderline.eventdata.ReprocessMark` (run id, voxel id, stage, pinned model),
   published, broker-confirmed, to the stage's queue;
2. **work** -- any ``thunderline worker`` serving that stage runs it (the infer stage takes the
   pinned model, the NLP stage refuses a pin it cannot honour with ``model_pin``) and the output,
   its route done, goes to ``terminal``;
3. **record** -- the workers' collector records through :class:`ReprocessOutcomes`: a marked
   terminal event becomes the voxel's new result version with its search row and the item marked
   ``done`` in one transaction (:class:`.ResultRecorder`; idempotent per run and voxel, so a
   redelivered or twice-published item never adds a second version), and only then is the
   message acknowledged; a marked DLQ record (the stage failed for good, or the broker
   dead-lettered the message) is recorded like every DLQ record and marks its item ``failed``
   (``dlq replay`` sends it to the stage again: its result then marks the item ``done`` and
   resolves the record);
4. **follow** -- the run's process polls the run's counts (progress bar) until no item is
   pending, reporting a stage queue no worker serves as ``ingest`` does (``UnservedWatch``).

Stopping the following process stops nothing on the workers: what was published is done. A
``--resume`` publishes the items still pending again. Delivery is at least once: an item is
``done`` only in the transaction that commits its version, so an item already recorded is not
published again, and one published but not recorded yet (queued, being run, or lost with its
message) is; every copy the stage runs is recorded once (one version per run and voxel; two
copies recorded at once: :meth:`~thunderline.voxel.results.ResultVersions.add` runs the
second's transaction again and it finds the first's version).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import and_, update

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC
from thunderline.bus.factory import open_bus
from thunderline.bus.served import UnservedWatch
from thunderline.config import Settings
from thunderline.dlq.record import dead_letter
from thunderline.errors import BackendError, ModelPinError, reason_of
from thunderline.eventdata import ReprocessMark
from thunderline.events import CloudEvent, dlq_type_for
from thunderline.flow.engine import topic_for
from thunderline.objects.base import ObjectStore
from thunderline.obs import metrics
from thunderline.outcomes import OutcomeStore
from thunderline.voxel.errors import VoxelNotFoundError
from thunderline.voxel.results import STAGE_TRAITS, producer_of
from thunderline.voxel.tables import reprocess_items, reprocess_runs

if TYPE_CHECKING:
    from thunderline.sources.reprocess import Reprocessor, ResultRecorder, RunInfo
    from thunderline.voxel.store import VoxelStore

_log = logging.getLogger("thunderline.sources.reprocess")
_PAGE = 500
#: The following process reads the run's counts this often.
POLL_S = 0.5


def mark_of(event: CloudEvent) -> ReprocessMark | None:
    """The reprocess mark an event (or the original of a DLQ record) carries, if any."""
    data: Any = event.data
    if event.is_dlq:
        original = data.get("original")
        if not isinstance(original, dict) and isinstance(data.get("original_raw"), str):
            try:
                original = json.loads(data["original_raw"])
            except ValueError:
                original = None
        data = original.get("data") if isinstance(original, dict) else None
    raw = data.get("reprocess") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        return None
    try:
        return ReprocessMark.model_validate(raw)
    except ValidationError:
        return None


# ---- the run's process: publish, then follow ---------------------------------------------------
async def run_over_bus(
    reprocessor: Reprocessor,
    run_id: str,
    *,
    on_progress: Callable[[RunInfo], None] | None = None,
    stop: asyncio.Event | None = None,
) -> RunInfo:
    """Publish the run's pending items for the workers, then follow the run until none is pending.

    Returns the run as it stands when every item is finished, or when ``stop`` is set (the
    workers go on with what was published; ``--resume`` follows again).
    """
    from thunderline.sources.reprocess import FINISHED, PENDING

    info = await asyncio.to_thread(reprocessor.info, run_id)
    reprocessor.check(info.stage, info.model)
    if info.counts.get(PENDING, 0) == 0:
        if info.state != FINISHED:
            await asyncio.to_thread(reprocessor.runs.finish, run_id)
        return await asyncio.to_thread(reprocessor.info, run_id)
    settings = reprocessor.settings
    bus = open_bus(settings)
    await bus.connect()
    try:
        await bus.declare([info.stage, TERMINAL_TOPIC, DLQ_TOPIC])
        sent = await _publish_pending(reprocessor, bus, info, stop)
        _log.info("reprocess run %s: %d item(s) published to %s", run_id, sent, info.stage)
        watch = UnservedWatch(
            bus, [info.stage, TERMINAL_TOPIC, DLQ_TOPIC], timeout_s=settings.bus.unserved_timeout_s
        )
        progress_at = time.monotonic()
        finished = info.finished
        while True:
            info = await asyncio.to_thread(reprocessor.info, run_id)
            if info.finished != finished:
                finished, progress_at = info.finished, time.monotonic()
            if on_progress is not None:
                on_progress(info)
            if info.counts.get(PENDING, 0) == 0:
                await asyncio.to_thread(reprocessor.runs.finish, run_id)
                break
            if stop is not None and stop.is_set():
                break
            await watch.check(progress_at)
            if stop is None:
                await asyncio.sleep(POLL_S)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
    finally:
        await bus.close()
    return await asyncio.to_thread(reprocessor.info, run_id)


async def _publish_pending(
    reprocessor: Reprocessor, bus: Any, info: RunInfo, stop: asyncio.Event | None
) -> int:
    """Publish every pending item of the run (page by page); how many were published.

    An item whose voxel is gone is marked ``skipped``, one whose event cannot be built
    ``failed``, as the in-process run does.
    """
    sent = 0
    after: str | None = None
    while stop is None or not stop.is_set():
        ids = await asyncio.to_thread(reprocessor.runs.pending, info.id, limit=_PAGE, after=after)
        if not ids:
            break
        after = ids[-1]
        marks: list[tuple[str, str, str | None]] = []
        for voxel_id in ids:
            prepared = await asyncio.to_thread(reprocessor.prepare, voxel_id, info)
            if not isinstance(prepared, tuple):
                marks.append((voxel_id, *prepared.mark))
                continue
            _voxel, event = prepared
            await bus.publish(topic_for(event), event.to_bytes())
            metrics.EVENTS_PUBLISHED.labels(event.type).inc()
            sent += 1
        await asyncio.to_thread(reprocessor.runs.mark, info.id, marks)
    return sent


# ---- the workers' collector: record results and failures ---------------------------------------
class ReprocessOutcomes(OutcomeStore):
    """The outcome store of a collector that also records reprocess results (see the module).

    Events without a :class:`~thunderline.eventdata.ReprocessMark` are recorded as by
    :class:`~thunderline.outcomes.OutcomeStore`. The voxel store (for the result versions and
    the search index) is opened on the first marked event.

    Args:
        settings: Thunderline settings (the voxel database).
        objects: The object store the stages use (texts for the search index).
    """

    def __init__(self, settings: Settings, objects: ObjectStore | None = None) -> None:
        super().__init__(settings)
        self.settings = settings
        self.objects = objects
        self._store: VoxelStore | None = None
        self._recorder: ResultRecorder | None = None

    def _recorder_of(self) -> ResultRecorder:
        if self._recorder is None:
            from thunderline.sources.reprocess import ResultRecorder
            from thunderline.voxel.store import VoxelStore

            self._store = VoxelStore(self.settings, self.objects)
            self._recorder = ResultRecorder(self._store)
        return self._recorder

    def record_many(self, events: Sequence[CloudEvent]) -> None:
        """Record each event: marked results as versions, everything else as outcomes.

        A marked DLQ record is recorded as an outcome (``dlq list``/``replay`` see it) and marks
        its item ``failed``. A database error raises (the collector retries the whole batch:
        every write here is idempotent).
        """
        plain: list[CloudEvent] = []
        results: list[tuple[CloudEvent, ReprocessMark]] = []
        failures: list[tuple[CloudEvent, ReprocessMark]] = []
        for event in events:
            mark = mark_of(event)
            if mark is None:
                plain.append(event)
            elif event.is_dlq:
                plain.append(event)
                failures.append((event, mark))
            else:
                results.append((event, mark))
        super().record_many(plain)
        for event, mark in results:
            try:
                self._record_result(event, mark)
            except BackendError:
                raise  # the database is away: the collector retries the batch
            except Exception as exc:  # cannot be recorded: a DLQ record, and its item fails
                _log.exception("reprocess result %s of %s not recorded", event.id, mark.voxel_id)
                self._dead_letter(event, mark, exc)
        if failures:
            self._mark_failed(failures)

    def _record_result(self, event: CloudEvent, mark: ReprocessMark) -> None:
        from thunderline.sources.reprocess import SKIPPED

        recorder = self._recorder_of()
        assert self._store is not None
        result = event.data.get(STAGE_TRAITS.get(mark.stage, mark.stage))
        if not isinstance(result, dict):
            notes = [n.get("note", "") for n in event.data.get("notes") or []]
            self._mark(mark, SKIPPED, "; ".join(notes) or "the stage did not apply")
            return
        try:
            voxel = self._store.get(mark.voxel_id)
        except VoxelNotFoundError:
            self._mark(mark, SKIPPED, "the voxel was deleted")
            return
        producer = producer_of(mark.stage, result)
        if mark.model and not producer.startswith(mark.model):
            pinned = ModelPinError(f"made by {producer}, not the pinned {mark.model}")
            self._dead_letter(event, mark, pinned)
            return
        recorder.record(voxel, mark.stage, result, run_id=mark.run_id, event_id=event.id)
        self._resolve_replayed(event)

    def _resolve_replayed(self, event: CloudEvent) -> None:
        """A replayed DLQ record of this item (its correlation id) is resolved by its result."""
        from thunderline.outcomes import REPLAYED, RESOLVED
        from thunderline.voxel.db import backend_errors
        from thunderline.voxel.tables import outcomes as table

        c = table.c
        with backend_errors("outcome write"), self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(
                    and_(
                        c.kind == "dlq",
                        c.status == REPLAYED,
                        c.correlation_id == event.correlationid,
                    )
                )
                .values(status=RESOLVED, resolved_by=event.id)
            )

    def _dead_letter(self, event: CloudEvent, mark: ReprocessMark, exc: BaseException) -> None:
        """A result that cannot be recorded: its DLQ record (with metric), its item ``failed``."""
        record = dead_letter(mark.stage, dlq_type_for(mark.stage), exc, original=event)
        metrics.DLQ_TOTAL.labels(mark.stage, reason_of(exc)).inc()
        super().record_many([record])
        self._mark_failed([(record, mark)])

    def _mark_failed(self, failures: list[tuple[CloudEvent, ReprocessMark]]) -> None:
        from thunderline.sources.reprocess import FAILED

        for record, mark in failures:
            error = record.data.get("error") or {}
            reason = record.data.get("reason") or "internal"
            detail = f"{reason}: {error.get('message', '')} (dlq {record.id})"
            self._mark(mark, FAILED, detail)

    def _mark(self, mark: ReprocessMark, state: str, detail: str) -> None:
        """Set a still pending item's state (a done item stays done: its result is committed)."""
        from thunderline.sources.reprocess import PENDING
        from thunderline.voxel.db import backend_errors

        i = reprocess_items.c
        with backend_errors("reprocess mark"), self.engine.begin() as conn:
            conn.execute(
                update(reprocess_items)
                .where(
                    and_(i.run_id == mark.run_id, i.voxel_id == mark.voxel_id, i.state == PENDING)
                )
                .values(state=state, detail=detail[:2000])
            )
            conn.execute(
                update(reprocess_runs)
                .where(reprocess_runs.c.id == mark.run_id)
                .values(updated_unix=time.time())
            )

    def close(self) -> None:
        """Close the voxel store (if opened), then the outcome store."""
        try:
            if self._store is not None:
                self._store.close()
        finally:
            super().close()
