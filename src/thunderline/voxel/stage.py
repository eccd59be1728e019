"""The package stage: build and store the voxel of every event whose route reaches "package".

Input: any event routed to ``package`` (normally ``system.ingest.classified``, after ``nlp`` /
``infer`` when they ran). Output: ``system.voxel.created`` with ``data["voxel"]`` (id, payload
reference, checksums, coords, lineage, correlation and causation ids, ``created``). For a zip
or tar artifact the members are expanded into the object store first (the embedded parts the
extract stage stored -- e-mail attachments, objects in office files -- are taken as members
the same way) (limits and path rules
in :mod:`.archive`) and, after the archive's voxel is stored, each member becomes a new
``ui.command.ingest.received`` event routed to ``classify`` and naming the archive's voxel in
``data["parent"]``, so each child voxel has the archive voxel as its parent.

All database and object-store work runs in a worker thread, off the event loop; a batch of
voxels is written in one transaction (falling back to one transaction per voxel when the
batch fails, so one bad voxel does not fail the others).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thunderline import names
from thunderline.config import Settings
from thunderline.errors import BackendError, ThunderlineError
from thunderline.eventdata import (
    Artifact,
    Classified,
    IngestRequest,
    Note,
    Parent,
    VoxelCreated,
    VoxelSummary,
    data_of,
    extend,
    typed_event,
)
from thunderline.events import INGEST_RECEIVED, VOXEL_CREATED, CloudEvent
from thunderline.extract.result import EmbeddedPart
from thunderline.flow.stage import Outcome, StageOptions, StoreStage
from thunderline.objects.base import ObjectStore
from thunderline.obs import metrics
from thunderline.voxel import archive
from thunderline.voxel.builder import VoxelBuilder, voxel_source
from thunderline.voxel.errors import DuplicateRejectedError, VoxelNotFoundError
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import PutResult, VoxelStore

_log = logging.getLogger("thunderline.voxel.stage")

#: Archives nested deeper than this are stored as voxels but not expanded again.
MAX_ARCHIVE_DEPTH = 4


def voxel_summary(
    voxel: Voxel, *, created: bool, children: int = 0, revision: int = 1
) -> VoxelSummary:
    """The ``data["voxel"]`` object of ``system.voxel.created``."""
    return VoxelSummary.model_validate(
        {
            "id": voxel.id,
            "payload_ref": voxel.payload_ref,
            "payload_size": voxel.payload_size,
            "checksums": voxel.checksums.model_dump(),
            "coords": voxel.coords.model_dump(),
            "lineage": voxel.lineage.model_dump(mode="json"),
            "label": voxel.label,
            "source": voxel.source,
            "correlation_id": voxel.correlation_id,
            "causation_id": voxel.causation_id,
            "schema_version": voxel.schema_version,
            "created": created,
            "children": children,
            "revision": revision,
        }
    )


def embedded_members(parts: Sequence[EmbeddedPart]) -> list[archive.Member]:
    """The embedded parts the extract stage stored, as archive members.

    Embedded parts are e-mail attachments and objects in office files: each becomes a child
    artifact, like an archive member.
    """
    return [
        archive.Member(p.index, p.name, p.size, p.sha256) for p in parts if p.sha256 is not None
    ]


class _Work:
    """One event on its way through the batch."""

    def __init__(self, event: CloudEvent) -> None:
        self.event = event
        self.voxel: Voxel | None = None
        self.payload: bytes | None = None
        self.members: list[archive.Member] = []
        self.notes: list[str] = []  # what expansion skipped (links in a tar, for instance)
        self.result: PutResult | None = None
        self.error: BaseException | None = None
        self.duplicate_of: str | None = None  # TL_DUPLICATE_POLICY found these bytes stored
        self.previous: Voxel | None = None  # the stored voxel a replay completes
        self.revision = 1


class PackageStage(StoreStage):
    """Voxel builder and store (the last stage of every route)."""

    name = "package"

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        options: StageOptions | None = None,
        *,
        voxels: VoxelStore | None = None,
    ) -> None:
        super().__init__(settings, store, options)
        self.voxels = voxels
        self._owns_voxels = voxels is None
        self.limits = settings.archive
        self.builder: VoxelBuilder | None = None

    async def setup(self) -> None:
        """Open the voxel store (unless one was given) and the builder over its lineage."""
        if self.voxels is None:
            self.voxels = await asyncio.to_thread(VoxelStore, self.settings, self.store)
        self.builder = VoxelBuilder(self.voxels.ancestor_ids)

    async def close(self) -> None:
        """Close the voxel store if this stage opened it."""
        if self.voxels is not None and self._owns_voxels:
            await asyncio.to_thread(self.voxels.close)
            self.voxels = None

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        """Build, seal and store a voxel per event (in a worker thread); one outcome each.

        The duplicate policy applies per batch, archives and embedded parts are expanded into
        child artifacts, and a replay completes the voxel it stored before.
        """
        if self.voxels is None or self.builder is None:
            await self.setup()
        return await asyncio.to_thread(self._package_batch, list(events))

    # ---- work (runs in a worker thread) ---------------------------------------------------
    def _package_batch(self, events: list[CloudEvent]) -> list[Outcome]:
        assert self.voxels is not None
        started = time.perf_counter()
        work = [_Work(event) for event in events]
        for item in work:
            self._prepare(item)
        self._duplicate_policy(work)
        for item in work:
            if item.error is None and item.previous is not None:
                self._complete(item)
        ready = [
            item
            for item in work
            if item.error is None and item.voxel is not None and item.result is None
        ]
        if ready:
            try:
                results = self.voxels.put_many([(i.voxel, i.payload) for i in ready])  # type: ignore[misc]
                for item, result in zip(ready, results, strict=True):
                    item.result = result
            except (ThunderlineError, OSError) as batch_error:
                if len(ready) == 1:
                    ready[0].error = self._typed(batch_error)
                else:  # isolate the failing voxel(s)
                    for item in ready:
                        try:
                            assert item.voxel is not None
                            item.result = self.voxels.put(item.voxel, item.payload)
                        except (ThunderlineError, OSError) as exc:
                            item.error = self._typed(exc)
        per_event = (time.perf_counter() - started) / max(len(events), 1)
        outcomes: list[Outcome] = []
        for item in work:
            if item.error is not None:
                metrics.VOXEL_BUILD_ERRORS.labels(getattr(item.error, "reason", "internal")).inc()
                outcomes.append(item.error)
                continue
            assert item.result is not None
            metrics.VOXEL_BUILD_DURATION.observe(per_event)
            outcomes.append(
                self._outputs(
                    item.event,
                    item.result,
                    item.members,
                    item.notes,
                    item.duplicate_of,
                    revision=item.revision,
                )
            )
        return outcomes

    def _complete(self, item: _Work) -> None:
        """A replay's result written into the voxel it completes (a new revision)."""
        assert self.voxels is not None and item.voxel is not None and item.previous is not None
        before = [f.get("stage") for f in item.previous.traits.get("failures") or []]
        after = [f.get("stage") for f in item.voxel.traits.get("failures") or []]
        reason = f"replay {item.event.id}: failed before: {', '.join(map(str, before)) or '-'}"
        reason += f"; failed now: {', '.join(map(str, after)) or '-'}"
        try:
            item.revision = self.voxels.complete(item.voxel, item.previous, reason=reason)
            item.result = PutResult(item.voxel, created=False)
        except (ThunderlineError, OSError) as exc:
            item.error = self._typed(exc)

    def _duplicate_policy(self, work: list[_Work]) -> None:
        """Apply ``TL_DUPLICATE_POLICY`` on the content hash to the batch.

        It is the same for every way in (CLI, API, sync/watch, workers), since every artifact
        ends here. ``link``: no new voxel, the event names the existing one; ``flag``: a new
        voxel, the event names the existing one; ``reject``: a DLQ record (reason
        ``duplicate``); ``reprocess``: as if new. One query per batch asks which of its
        payloads other sources already hold.

        A member of a container (an archive member, an e-mail attachment: a voxel with a
        parent) is always stored as its own voxel: its sealed parent is what keeps the
        container's lineage tree whole (the payload itself is stored once by its hash).
        """
        policy = self.settings.duplicate_policy
        items = [
            i
            for i in work
            if i.error is None
            and i.voxel is not None
            and i.previous is None  # a completion: the voxel is stored already
            and not i.voxel.lineage.parent_voxel_ids
        ]
        if policy == "reprocess" or not items:
            return
        assert self.voxels is not None
        try:
            holders = self.voxels.holders(i.voxel.payload_sha256 for i in items if i.voxel)
        except ThunderlineError as exc:
            for item in items:
                item.error = exc
            return
        for item in items:
            voxel = item.voxel
            assert voxel is not None
            source = names.wire_text(voxel.source)
            other = next(
                (vid for src, vid in holders.get(voxel.payload_sha256, []) if src != source), None
            )
            if other is None:
                continue
            metrics.DUPLICATES.labels(policy).inc()
            item.duplicate_of = other
            if policy == "link":
                try:
                    item.result = PutResult(self.voxels.get(other), created=False)
                except ThunderlineError as exc:
                    item.error = exc
                item.members = []  # the existing voxel's members were expanded with it
            elif policy == "reject":
                item.error = DuplicateRejectedError(
                    f"{voxel.source}: the same bytes are voxel {other}; TL_DUPLICATE_POLICY=reject",
                    details={"duplicate_of": other, "payload_sha256": voxel.payload_sha256},
                )

    @staticmethod
    def _typed(exc: BaseException) -> BaseException:
        if isinstance(exc, OSError):
            return BackendError(f"voxel store I/O failed: {exc}")
        return exc

    def _prepare(self, item: _Work) -> None:
        """Build the voxel, read a small payload (verified), expand an archive."""
        assert self.builder is not None and self.voxels is not None
        try:
            data = data_of(item.event, Classified)
            if data.voxel_id is not None:  # a replay completing a stored voxel
                item.previous = self._to_complete(item.event, data)
            voxel = self.builder.build(item.event, previous=item.previous)
            if item.previous is not None:
                item.voxel = voxel
                if data.extract is not None and "extract" not in item.previous.traits:
                    depth = data.parent.depth if data.parent is not None else 0
                    if data.extract.parts and depth < MAX_ARCHIVE_DEPTH:
                        item.members = embedded_members(data.extract.parts)
                return  # archive members were expanded when the voxel was first stored
            if voxel.payload_size < self.settings.inline_payload_max_bytes:
                item.payload = self.store.get_bytes(voxel.payload_sha256)
            depth = data.parent.depth if data.parent is not None else 0
            expandable = archive.is_archive_classification(data.classification) or (
                archive.sniffed_archive(data.classification, self._head(voxel.payload_sha256))
            )
            if expandable:
                if depth < MAX_ARCHIVE_DEPTH:
                    item.members = self._expand(voxel, item.notes)
                else:  # stored as it is, never silently: the voxel.created event says why
                    item.notes.append(
                        f"archive not expanded: nested {depth} levels deep, the limit is "
                        f"{MAX_ARCHIVE_DEPTH}"
                    )
            elif data.extract is not None and data.extract.parts and depth < MAX_ARCHIVE_DEPTH:
                item.members = embedded_members(data.extract.parts)
            item.voxel = voxel
        except ThunderlineError as exc:
            item.error = exc
        except OSError as exc:
            item.error = BackendError(f"payload I/O failed: {exc}")

    def _to_complete(self, event: CloudEvent, data: Classified) -> Voxel | None:
        """The stored voxel a replay completes, or None to package the artifact as a new one.

        It is the one ``data.voxel_id`` names, if it is still there and of this artifact
        (``TL_DUPLICATE_POLICY=link`` may have named another source's voxel).
        """
        assert self.voxels is not None and data.voxel_id is not None
        try:
            found = self.voxels.get(data.voxel_id)
        except VoxelNotFoundError:
            _log.warning("voxel %s to complete is gone: packaging anew", data.voxel_id)
            return None
        if (
            found.source != voxel_source(event, data)
            or found.payload_sha256 != data.artifact.sha256
        ):
            _log.info("voxel %s is another artifact's: packaging anew", data.voxel_id)
            return None
        return found

    def _head(self, sha: str) -> bytes:
        """The first bytes of a local payload (remote payloads: none, never sniffed)."""
        local = self.store.local_path(sha)
        if local is None:
            return b""
        with local.open("rb") as handle:
            return handle.read(8)

    def _expand(self, voxel: Voxel, notes: list[str]) -> list[archive.Member]:
        tmp_dir = self._tmp_dir()
        local = self.store.local_path(voxel.payload_sha256)
        if local is not None:
            return archive.expand(local, self.store, self.limits, tmp_dir=tmp_dir, notes=notes)
        fd, name = tempfile.mkstemp(prefix="tl-archive-", dir=tmp_dir)
        spool = Path(name)
        try:
            with open(fd, "wb") as out:
                self.store.copy_verified(voxel.payload_sha256, out)
            return archive.expand(spool, self.store, self.limits, tmp_dir=tmp_dir, notes=notes)
        finally:
            spool.unlink(missing_ok=True)

    def _tmp_dir(self) -> Path | None:
        root = self.store.root
        return root / "tmp" if root is not None else None

    def _outputs(
        self,
        event: CloudEvent,
        result: PutResult,
        members: list[archive.Member],
        notes: list[str] | None = None,
        duplicate_of: str | None = None,
        *,
        revision: int = 1,
    ) -> list[CloudEvent]:
        voxel = result.voxel
        data = data_of(event, Classified)
        summary = voxel_summary(
            voxel, created=result.created, children=len(members), revision=revision
        )
        records = [
            _naming(failure.record, voxel.id)
            for failure in data.failures or []
            if failure.record is not None
        ]
        if data.failures:  # the marks stay; the carried records are published on their own
            marks = [f.model_copy(update={"record": None}) for f in data.failures]
            data = data.model_copy(update={"failures": marks})
        if duplicate_of is not None:
            summary = summary.model_copy(update={"duplicate_of": duplicate_of})
        if notes:  # members expansion skipped (links in a tar): passed on with a note each
            kept = [*(data.notes or []), *(Note(stage=self.name, note=n) for n in notes)]
            data = data.model_copy(update={"notes": kept})
        created = self.advance(event, VOXEL_CREATED, extend(data, VoxelCreated, voxel=summary))
        if not members:
            return [created, *records]
        base = data.artifact.source or voxel.source
        depth = data.parent.depth + 1 if data.parent is not None else 1
        children = [
            typed_event(
                INGEST_RECEIVED,
                IngestRequest(
                    artifact=Artifact(
                        name=member.name,
                        size=member.size,
                        sha256=member.sha256,
                        payload_ref=member.ref,
                        source=f"{base}!/{member.name}",
                    ),
                    route=["classify"],
                    parent=Parent(
                        voxel_id=voxel.id, event_id=created.id, index=member.index, depth=depth
                    ),
                ),
                parent=created,
                source=f"urn:thunderline:stage:{self.name}",
            )
            for member in members
        ]
        return [created, *records, *children]


def _naming(record: dict[str, Any], voxel_id: str) -> CloudEvent:
    """A carried DLQ record with ``data.voxel_id`` set to the voxel the artifact was stored as.

    The record (:class:`~thunderline.eventdata.StageFailure`) then names the voxel the artifact
    was stored as without the failed stage's result.
    """
    event = CloudEvent.from_dict(record)
    return event.model_copy(update={"data": {**event.data, "voxel_id": voxel_id}})
