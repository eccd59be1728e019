"""One sync pass: compare a listing with the ledger, ingest what is new or changed, settle it.

A pass (:meth:`SourceSync.run_pass`):

1. reads the root's current ledger entries (one query; kept for the next pass, which reads them
   again only when the root's change count moved: :meth:`.Ledger.snapshot`) and lists the
   source, comparing each listed entry as it goes (:func:`.scan.diff_dir`);
2. **unchanged** (same size and mtime, or same ETag): nothing is read, nothing is sent;
3. **settling**: a file modified less than ``TL_SOURCE_SETTLE_S`` ago is left for a later pass
   (a slow writer is taken once, after it stops); S3 objects are whole once listed (an upload
   is atomic), so they never wait;
4. **new or changed**: the bytes are streamed into the object store (admission as for
   ``ingest``; S3 objects through a temp file), which gives the content SHA-256. Same bytes as
   the current version (a ``touch``) only update the stat. Otherwise a new ledger version is
   written -- ``submitted``, linked to the version it replaces -- and committed *before* its
   ingest event is published (in-process :class:`~thunderline.runtime.Runtime`, or the
   RabbitMQ ``classify`` queue like ``ingest --bus``);
5. **settled**: an entry becomes ``done`` only once its voxel or DLQ record is committed in the
   outcomes table (read back by correlation id), in batches of ``TL_SOURCE_BATCH_SIZE``;
6. **resumed**: an entry still ``submitted`` from an interrupted run is settled from the outcomes
   table if its outcome is there, else sent again (the voxel store's idempotency key makes a
   second delivery of the same bytes the same voxel);
7. **deleted**: a current entry no longer listed is marked ``deleted``; with
   ``TL_SOURCE_DELETE_POLICY=delete`` its voxel is deleted too (audited, see
   :mod:`thunderline.voxel.lifecycle`) unless another entry still points at it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from thunderline import names
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.dlq.record import dead_letter
from thunderline.errors import ArtifactTooLargeError, ThunderlineError
from thunderline.eventdata import Artifact, IngestRequest, data_of, typed_event
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, CloudEvent
from thunderline.ingestor import Ingestor, _store_file
from thunderline.objects.base import ObjectStore
from thunderline.obs import metrics
from thunderline.outcomes import OutcomeRecord, OutcomeStore
from thunderline.runtime import ingest_event
from thunderline.sources.ledger import DELETED, SUBMITTED, Ledger, Prior, Snapshot
from thunderline.sources.scan import (
    Diff,
    Seen,
    SourceUri,
    diff_dir,
    diff_listing,
    fetch_s3,
    s3_client,
    scan_s3,
)
from thunderline.worker.settle import final_outcomes

_log = logging.getLogger("thunderline.sources")
SOURCE = "urn:thunderline:sources"
_COUNTED = ("new", "changed", "unchanged", "touched", "deleted", "voxels", "linked", "dlq")


@dataclass
class PassReport:
    """What one pass found and did (``thunderline sync --json`` prints it)."""

    root: str
    seen: int = 0
    unchanged: int = 0
    settling: int = 0
    new: int = 0
    changed: int = 0
    touched: int = 0
    resumed: int = 0
    submitted: int = 0
    deleted: int = 0
    voxels: int = 0
    linked: int = 0
    dlq: int = 0
    wall_s: float = 0.0
    dlq_keys: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        """The report's fields by name, as JSON-ready values."""
        return asdict(self)


class Publisher(Protocol):
    """Where ingest events go: the in-process pipeline or the RabbitMQ workers."""

    outcomes: OutcomeStore
    resubmit_pending: bool  # in-process: a pending entry of a dead run is sent again

    async def publish(self, event: CloudEvent) -> None:
        """Send an ingest event into the pipeline."""

    async def drained(self) -> None:
        """Wait until an in-process pipeline is idle; on a broker, return at once."""


class IngestorPublisher:
    """The pipeline's :class:`~thunderline.ingestor.Ingestor` (``open_ingestor``) as a publisher.

    The :class:`~thunderline.runtime.Runtime` on ``memory://``, the RabbitMQ
    :class:`~thunderline.worker.submit.Submitter` on a broker -- the path ``ingest`` takes.
    """

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self.outcomes: OutcomeStore = ingestor.outcomes
        # in-process, a pending entry's work died with its run: send it again; on a broker
        # its message is durable in its queue: wait for its outcome instead
        self.resubmit_pending = ingestor.runtime is not None

    async def publish(self, event: CloudEvent) -> None:
        """Submit ``event`` through the ingestor."""
        await self.ingestor.submit(event)

    async def drained(self) -> None:
        """Wait until the in-process runtime is idle (at once on a broker)."""
        if self.ingestor.runtime is not None:
            await self.ingestor.runtime.wait_idle()


@dataclass
class _Todo:
    seen: Seen
    prior: Prior | None
    entry_id: str | None = None  # an existing submitted entry being resumed


class SourceSync:
    """Keeps one source root in step with the ledger (one pass at a time)."""

    def __init__(
        self,
        settings: Settings,
        source: SourceUri,
        ledger: Ledger,
        publisher: Publisher,
        store: ObjectStore,
        *,
        on_deleted: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.ledger = ledger
        self.publisher = publisher
        self.store = store
        self.on_deleted = on_deleted
        self._s3: Any = s3_client(settings) if source.kind == "s3" else None
        #: The root's ledger entries as the last pass read them; the next pass reads them again
        #: only when the root's change count moved (:meth:`Ledger.snapshot`).
        self.snapshot: Snapshot | None = None
        self.snapshot_reads = 0  # how many passes had to read the entries (tests, benchmarks)

    # ---- listing ------------------------------------------------------------------------------
    def _diff(self, settle_s: float) -> Diff:
        """Read the ledger (unless unchanged since the last pass), list the source, compare."""
        before = self.snapshot
        snapshot = self.snapshot = self.ledger.snapshot(self.source.uri, before)
        if snapshot is not before:
            self.snapshot_reads += 1
        settle_ns, now_ns = int(settle_s * 1_000_000_000), time.time_ns()
        if self.source.kind == "s3":
            return diff_listing(scan_s3(self._s3, self.source), snapshot, settle_ns, now_ns)
        assert self.source.path is not None
        return diff_dir(self.source.path, snapshot, settle_ns, now_ns)

    async def run_pass(self) -> PassReport:
        """One pass: list the source, compare with the ledger, ingest what is new or changed.

        Entries submitted by a pass that stopped are resumed, waited for (a broker keeps their
        messages) or settled when their outcome is already recorded; keys no longer listed are
        marked deleted, and the pass's summary is recorded on the root.
        """
        started = time.perf_counter()
        report = PassReport(self.source.uri)
        # an S3 object appears whole when its upload completes: nothing to wait for
        settle_s = 0.0 if self.source.kind == "s3" else self.settings.source.settle_s
        diff = await asyncio.to_thread(self._diff, settle_s)
        report.seen, report.unchanged, report.settling = diff.seen, diff.unchanged, diff.settling
        acting = diff.acting
        known_ids = [k[0] for _, k in acting if k is not None]
        priors = await asyncio.to_thread(self.ledger.priors, known_ids) if known_ids else {}
        todo: list[_Todo] = []
        waiting: list[tuple[str, str, str]] = []  # (entry id, correlation id, key)
        for item, known_entry in acting:
            prior = priors.get(known_entry[0]) if known_entry is not None else None
            if prior is not None and prior.state == SUBMITTED:
                if prior.correlation_id and not self.publisher.resubmit_pending:
                    waiting.append((prior.id, prior.correlation_id, item.key))
                else:
                    todo.append(_Todo(item, prior, entry_id=prior.id))
                continue
            todo.append(_Todo(item, prior))
        # resumed entries whose outcome is already committed are settled without sending
        resumed = [t for t in todo if t.entry_id is not None]
        if resumed:
            report.resumed = len(resumed)
            done = await self._settled_already(resumed)
            todo = [t for t in todo if t.entry_id not in done]
        gone = diff.gone
        if gone:
            await asyncio.to_thread(self.ledger.mark_deleted, gone)
            report.deleted = len(gone)
            if self.on_deleted is not None:
                await self.on_deleted(gone)
        batch = self.settings.source.batch_size
        for start in range(0, len(todo), batch):
            await self._run_batch(todo[start : start + batch], report)
        if waiting:
            await self._settle(waiting, report)
        report.wall_s = time.perf_counter() - started
        for what in _COUNTED:
            if getattr(report, what):
                metrics.SOURCE_ENTRIES.labels(what).inc(getattr(report, what))
        await asyncio.to_thread(self.ledger.finish_pass, self.source.uri, report.to_json_dict())
        return report

    async def _settled_already(self, resumed: list[_Todo]) -> set[str]:
        """Resumed entries whose outcome is committed: settle them now; their ids."""
        by_corr = {t.prior.correlation_id: t for t in resumed if t.prior and t.prior.correlation_id}
        if not by_corr:
            return set()
        records = await asyncio.to_thread(self.publisher.outcomes.by_correlations, list(by_corr))
        final = final_outcomes(records)
        done: list[dict[str, Any]] = []
        for cid, todo in by_corr.items():
            record = _own_record(final, cid, self.source.entry_uri(todo.seen.key))
            if record is not None and todo.entry_id is not None:
                done.append(_settled_row(todo.entry_id, record))
        await asyncio.to_thread(self.ledger.settle, done)
        return {row["id"] for row in done}

    # ---- one batch ----------------------------------------------------------------------------
    async def _run_batch(self, batch: list[_Todo], report: PassReport) -> None:
        prepared: list[tuple[_Todo, CloudEvent, str | None]] = []
        for item in batch:
            event, sha = await asyncio.to_thread(self._store, item.seen)
            prepared.append((item, event, sha))
        new_rows: list[tuple[dict[str, Any], tuple[CloudEvent, str]]] = []
        touched: list[tuple[str, int, int, str | None]] = []
        to_send: list[tuple[str, CloudEvent, str]] = []
        for item, event, sha in prepared:
            seen, prior = item.seen, item.prior
            if item.entry_id is not None:  # resumed: same ledger row, a new delivery
                await asyncio.to_thread(
                    self.ledger.resend, item.entry_id, event.correlationid, seen, sha
                )
                to_send.append((item.entry_id, event, seen.key))
                continue
            if (
                prior is not None
                and prior.state != DELETED
                and sha is not None
                and sha == prior.content_sha256
            ):
                touched.append((prior.id, seen.size, seen.mtime_ns, seen.etag))
                report.touched += 1
                continue
            if prior is None:
                report.new += 1
            else:
                report.changed += 1
            row = {
                "root": self.source.uri,
                "key": names.wire_text(seen.key),
                "version": (prior.version + 1) if prior is not None else 1,
                "size": seen.size,
                "mtime_ns": seen.mtime_ns,
                "etag": seen.etag,
                "content_sha256": sha,
                "correlation_id": event.correlationid,
                "previous_id": prior.id if prior is not None else None,
            }
            new_rows.append((row, (event, seen.key)))
        await asyncio.to_thread(self.ledger.touch, touched)
        # committed before any of its events is published: a restart finds every one of them
        ids = await asyncio.to_thread(self.ledger.add_versions, [row for row, _ in new_rows])
        for entry_id, (_row, (event, key)) in zip(ids, new_rows, strict=True):
            to_send.append((entry_id, event, key))
        for _entry_id, event, _key in to_send:
            await self.publisher.publish(event)
        report.submitted += len(to_send)
        await self.publisher.drained()
        await self._settle([(e, ev.correlationid, k) for e, ev, k in to_send], report)

    def _store(self, seen: Seen) -> tuple[CloudEvent, str | None]:
        """Put the entry's bytes in the object store; return the event to publish and its hash.

        The ingest event to publish and the content SHA-256 (or a DLQ record and ``None`` when
        the entry was refused).
        """
        if self.source.kind == "s3":
            return self._store_s3(seen)
        assert self.source.path is not None
        event = ingest_event(Candidate(self.source.path / seen.key, self.source.path))
        try:
            ready = _store_file(self.store, self.settings, event, source=SOURCE)
        except ThunderlineError as exc:
            metrics.DLQ_TOTAL.labels("classify", exc.reason).inc()
            return dead_letter("classify", DLQ_CLASSIFY, exc, original=event), None
        return ready, data_of(ready, IngestRequest).artifact.sha256

    def _store_s3(self, seen: Seen) -> tuple[CloudEvent, str | None]:
        uri = self.source.entry_uri(seen.key)
        name = seen.key.rsplit("/", 1)[-1]
        tmp_dir = self.store.root / "tmp" if self.store.root is not None else None
        if tmp_dir is not None:
            tmp_dir.mkdir(parents=True, exist_ok=True)
        spool: Path | None = None
        try:
            spool = fetch_s3(self._s3, self.source, seen.key, tmp_dir)
            size = spool.stat().st_size
            if size > self.settings.max_artifact_bytes:
                raise ArtifactTooLargeError(f"{uri}: {size} bytes > TL_MAX_ARTIFACT_BYTES")
            stored = self.store.put_file(spool)
        except ThunderlineError as exc:
            original = typed_event(
                INGEST_RECEIVED,
                IngestRequest(
                    artifact=Artifact(name=name, path=uri, source=uri), route=["classify"]
                ),
                source=SOURCE,
            )
            metrics.DLQ_TOTAL.labels("classify", exc.reason).inc()
            return dead_letter("classify", DLQ_CLASSIFY, exc, original=original), None
        finally:
            if spool is not None:
                spool.unlink(missing_ok=True)
        artifact = Artifact(
            name=name,
            size=stored.size,
            sha256=stored.sha256,
            payload_ref=stored.ref,
            source=uri,
        )
        event = typed_event(
            INGEST_RECEIVED, IngestRequest(artifact=artifact, route=["classify"]), source=SOURCE
        )
        return event, stored.sha256

    async def _settle(self, pending: list[tuple[str, str, str]], report: PassReport) -> None:
        """Wait until each entry's own voxel or DLQ record is committed; mark it done."""
        left = {cid: (entry_id, key) for entry_id, cid, key in pending}
        timeout = self.settings.shutdown_timeout_s + self.settings.stage_timeout_s * 4
        deadline = time.monotonic() + max(timeout, 60.0)
        while left:
            records = await asyncio.to_thread(self.publisher.outcomes.by_correlations, list(left))
            final = final_outcomes(records)
            done: list[dict[str, Any]] = []
            for cid, (entry_id, key) in list(left.items()):
                record = _own_record(final, cid, self.source.entry_uri(key))
                if record is None:
                    continue
                row = _settled_row(entry_id, record)
                done.append(row)
                del left[cid]
                if row["outcome"] == "dlq":
                    report.dlq += 1
                    report.dlq_keys.append(key)
                elif row["outcome"] == "linked":
                    report.linked += 1
                else:
                    report.voxels += 1
            await asyncio.to_thread(self.ledger.settle, done)
            if not left:
                return
            if time.monotonic() > deadline:
                _log.warning(
                    "%d source entries of %s have no outcome yet; they stay 'submitted' and "
                    "the next pass settles them",
                    len(left),
                    self.source.uri,
                )
                return
            await asyncio.sleep(0.1)


def _own_record(
    final: dict[tuple[str, str], OutcomeRecord], correlation_id: str, entry_uri: str
) -> OutcomeRecord | None:
    """The final outcome of the entry itself (not of an archive member) under ``cid``."""
    mine = [r for (cid, _a), r in final.items() if cid == correlation_id]
    wanted = names.wire_text(entry_uri)
    for record in mine:
        if record.artifact in (wanted, entry_uri):
            return record
    if len(mine) == 1 and not mine[0].artifact:
        return mine[0]
    return None


def _settled_row(entry_id: str, record: OutcomeRecord) -> dict[str, Any]:
    if record.kind == "dlq":
        return {"id": entry_id, "outcome": "dlq", "dlq_id": record.id, "voxel_id": None}
    voxel = record.event.data.get("voxel")
    duplicate_of = voxel.get("duplicate_of") if isinstance(voxel, dict) else None
    return {
        "id": entry_id,
        "outcome": "linked" if duplicate_of and duplicate_of == record.voxel_id else "voxel",
        "voxel_id": record.voxel_id,
        "duplicate_of": duplicate_of,
        "dlq_id": None,
    }
