"""The classify stage: admit each artifact, store its bytes once, classify it with Magika, route it.

Input: ``ui.command.ingest.received``. Output: ``system.ingest.classified`` with
``classification`` and the routing slip ``route`` (ARCHITECTURE §1). Artifacts given by local
path are admitted (:mod:`.admission`) and streamed into the content-addressed object store;
artifacts already stored (archive members, uploads) are classified from the store. A batch of
files goes to Magika in one call, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from thunderline.classify.admission import check_size, open_input
from thunderline.classify.classifier import DISABLED, MagikaClassifier, Source
from thunderline.config import Settings
from thunderline.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    MalformedEventError,
    PathEscapeError,
    ThunderlineError,
    UnreadableArtifactError,
)
from thunderline.eventdata import (
    Classification,
    Classified,
    IngestRequest,
    StoredArtifact,
    data_of,
    extend,
)
from thunderline.events import INGEST_CLASSIFIED, CloudEvent
from thunderline.flow.stage import Outcome, StageOptions, StoreStage
from thunderline.objects.base import ObjectStore, sha_from_ref
from thunderline.obs import metrics


def build_route(
    classification: Classification, routes: dict[str, list[str]], available: Iterable[str]
) -> list[str]:
    """The stages after classify: by label, else by group, else ``*``; only available ones.

    NLP reads the text the extract stage stored, so ``extract`` always comes before ``nlp``.
    """
    chosen = (
        routes.get(classification.label) or routes.get(classification.group) or routes.get("*", [])
    )
    allowed = set(available)
    route = [stage for stage in chosen if stage in allowed]
    if "nlp" in route and "extract" in allowed and "extract" not in route:
        route.insert(route.index("nlp"), "extract")
    return route


class ClassifyStage(StoreStage):
    """Magika classification of every artifact (the first stage of every route)."""

    name = "classify"

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        options: StageOptions | None = None,
        *,
        available_stages: Iterable[str] = (),
        stored_only: bool = False,
    ) -> None:
        """Set up the classify stage and the routes to the stages after it.

        ``available_stages``: the stages after classify that are on (routes keep only those; the
        wiring table in :mod:`thunderline.runtime` decides which). ``stored_only`` (a worker): an
        artifact named by a local path only is refused (``path_escape``): a worker never reads its
        own disk because an event says so.
        """
        super().__init__(settings, store, options)
        self.available = set(available_stages)
        self.stored_only = stored_only
        self.classifier: MagikaClassifier | None = None

    async def setup(self) -> None:
        """Load the Magika model once, off the event loop (skipped when ML is disabled)."""
        if self.settings.enable_ml_pipeline:
            self.classifier = await asyncio.to_thread(
                MagikaClassifier, self.settings.magika.prediction_mode
            )

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        """Admit, store and classify a batch in a worker thread; one outcome per event."""
        return await asyncio.to_thread(self._classify_batch, list(events))

    # ---- work (runs in a worker thread) ---------------------------------------------------
    def _admit_and_store(
        self, event: CloudEvent, spooled: list[Path], opened: list[int]
    ) -> tuple[IngestRequest, StoredArtifact, Source]:
        """Admit and store one artifact.

        Returns its request, the stored artifact and what Magika classifies.

        A local input is opened once (:func:`.admission.open_input`) and read only through
        that descriptor; Magika then reads the stored copy (local store) or the same
        descriptor (remote store; kept open in ``opened`` until the batch is classified),
        never the path again.
        """
        request = data_of(event, IngestRequest)
        artifact = request.artifact
        if artifact.payload_ref is not None:  # already in the store (archive member, upload)
            sha = sha_from_ref(artifact.payload_ref)
            local = self.store.local_path(sha)
            if local is None:
                if not self.store.exists(sha):
                    raise ArtifactNotFoundError(
                        f"payload {artifact.payload_ref} is not in the object store"
                    )
                local = self._spool(sha, spooled)
            size = artifact.size
            if size is None:
                size = local.stat().st_size
            stored = StoredArtifact.model_validate({**dict(artifact), "size": size, "sha256": sha})
            return request, stored, local
        if artifact.path is None:
            raise MalformedEventError("artifact has neither path nor payload_ref")
        if self.stored_only:
            raise PathEscapeError(
                "a worker classifies stored payloads only (payload_ref); the submitter "
                "admits local files",
                details={"path": artifact.path},
            )
        path = Path(artifact.path)
        limit = self.settings.max_artifact_bytes
        admitted = open_input(
            path,
            Path(artifact.root) if artifact.root else None,
            allow_hardlinks=self.settings.allow_hardlinks,
        )
        keep = False
        try:
            try:
                check_size(admitted, limit)
            except ArtifactTooLargeError as exc:
                # classify through the descriptor anyway (Magika reads only head and tail),
                # so the DLQ record says what it was; never read it whole.
                if self.classifier is not None:
                    found = self.classifier.classify_sources([admitted.fd])[0]
                    if isinstance(found, Classification):
                        exc.details["classification"] = found.to_dict()
                raise
            try:
                put = self.store.put_fd(admitted.fd, max_bytes=limit)
            except PermissionError as exc:
                raise UnreadableArtifactError(f"{path}: permission denied") from exc
            except OSError as exc:
                raise UnreadableArtifactError(f"{path}: {exc.strerror or exc}") from exc
            stored = StoredArtifact.model_validate(
                {**dict(artifact), "size": put.size, "sha256": put.sha256, "payload_ref": put.ref}
            )
            local = self.store.local_path(put.sha256)
            if local is not None:
                return request, stored, local
            keep = True
            opened.append(admitted.fd)
            return request, stored, admitted.fd
        finally:
            if not keep:
                admitted.close()

    def _spool(self, sha: str, spooled: list[Path]) -> Path:
        """A verified local copy of a remote payload for Magika (removed after the batch)."""
        data = self.store.get_bytes(sha)
        handle = tempfile.NamedTemporaryFile(prefix="tl-classify-", delete=False)  # noqa: SIM115
        with handle:
            handle.write(data)
        spooled.append(Path(handle.name))
        return Path(handle.name)

    def _classify_batch(self, events: list[CloudEvent]) -> list[Outcome]:
        now = time.time()
        waits = [queue_wait_s(event, now) for event in events]
        outcomes: list[Outcome] = [RuntimeError("unset")] * len(events)
        admitted: list[tuple[int, IngestRequest, StoredArtifact, Source, float]] = []
        spooled: list[Path] = []
        opened: list[int] = []
        for i, event in enumerate(events):
            try:
                request, artifact, local = self._admit_and_store(event, spooled, opened)
            except (ThunderlineError, ValueError) as exc:
                err = exc if isinstance(exc, ThunderlineError) else MalformedEventError(str(exc))
                metrics.MAGIKA_CLASSIFY_ERRORS.labels(err.reason).inc()
                outcomes[i] = err
                continue
            admitted.append((i, request, artifact, local, time.perf_counter()))

        try:
            outcomes = self._classify_admitted(events, outcomes, admitted, waits)
        finally:
            for spool in spooled:
                spool.unlink(missing_ok=True)
            for fd in opened:
                os.close(fd)
        return outcomes

    def _classify_admitted(
        self,
        events: list[CloudEvent],
        outcomes: list[Outcome],
        admitted: list[tuple[int, IngestRequest, StoredArtifact, Source, float]],
        waits: list[float | None],
    ) -> list[Outcome]:
        """Classify the admitted files in one call.

        Each file's latency runs from the moment it was admitted (opened, checked and stored) to the
        moment its classification came back (the wait for the Magika lock and for the batch
        included); the wait before the stage took it up is reported apart as ``queue_wait_ms``.
        """
        if self.classifier is None:
            results: list[Classification | ThunderlineError] = [DISABLED] * len(admitted)
        else:
            results = self.classifier.classify_sources([local for *_, local, _ in admitted])
        classified = time.perf_counter()
        for (i, request, artifact, _local, at), result in zip(admitted, results, strict=True):
            per_file = classified - at
            if isinstance(result, ThunderlineError):
                metrics.MAGIKA_CLASSIFY_ERRORS.labels(result.reason).inc()
                outcomes[i] = result
                continue
            metrics.MAGIKA_CLASSIFY_DURATION.observe(per_file)
            metrics.MAGIKA_CLASSIFIED.labels(result.group).inc()
            wait = waits[i]
            classification = result.model_copy(
                update={
                    "latency_ms": round(per_file * 1000, 3),
                    "queue_wait_ms": None if wait is None else round(wait * 1000, 3),
                }
            )
            route = build_route(result, self.settings.routes, self.available)
            data = extend(request, Classified, artifact=artifact, classification=classification)
            outcomes[i] = [self.advance(events[i], INGEST_CLASSIFIED, data, route=route)]
        return outcomes


def queue_wait_s(event: CloudEvent, now: float) -> float | None:
    """Seconds from the event's creation (its ``time``) to ``now`` (``None`` if unreadable)."""
    try:
        created = datetime.fromisoformat(event.time.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None
    return max(now - created, 0.0)


__all__ = ["ArtifactError", "ClassifyStage", "build_route", "queue_wait_s"]
