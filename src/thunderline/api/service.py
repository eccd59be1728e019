"""What the HTTP API stands on: the running pipeline, the voxel store, live events, tokens, DLQ.

On the embedded bus (``memory://``) :class:`ApiService` runs the whole pipeline in this process
(the same :class:`~thunderline.runtime.Runtime` as ``thunderline ingest``) and taps every event
it publishes for the SSE stream and the ingest tracker.

On the scale-out bus (``amqp://``) it only submits and reads: an upload goes through the
location-free :class:`~thunderline.worker.submit.Submitter` (bytes into the shared object store,
then ``ui.command.ingest.received`` with ``payload_ref`` onto RabbitMQ, a full ``classify``
queue refused at once as :class:`~thunderline.errors.OverloadError`); ``thunderline worker``
processes run the stages and the collector records outcomes in the
:class:`~thunderline.outcomes.OutcomeStore`, which the status, DLQ and live routes read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import text

from thunderline.api.auth import RevocationWatch
from thunderline.api.dlq import REPLAY_SOURCE, DlqView
from thunderline.api.follow import OutcomeFollower
from thunderline.api.live import EventHub, EventTap, IngestTracker
from thunderline.api.schemas import Check, Readiness
from thunderline.api.tokens import TokenStore
from thunderline.api.upload import ReceivedFile
from thunderline.config import OverflowPolicy, Settings
from thunderline.eventdata import Artifact, IngestRequest, StoredArtifact, typed_event
from thunderline.events import INGEST_RECEIVED, CloudEvent
from thunderline.objects.base import ObjectStore
from thunderline.outcomes import OutcomeStore
from thunderline.runtime import Runtime
from thunderline.voxel.store import VoxelStore
from thunderline.worker.dlq import is_scale_out, publish_replay
from thunderline.worker.submit import Submitter

_log = logging.getLogger("thunderline.api")

API_SOURCE = "urn:thunderline:api"
FIRST_TOPIC = "classify"
#: Threads that move finished uploads into the object store. Their own pool, so that an upload
#: never waits behind the stages' work (Magika batches, database writes) in the default pool.
UPLOAD_THREADS = 4
#: How long ``/readyz`` waits for the broker's answer in the submit-and-read mode.
BROKER_PROBE_S = 5.0


class ApiService:
    """The pipeline and the stores behind one API process (``start`` / ``stop``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: ``amqp://``: submit and read only; ``thunderline worker`` processes run the stages.
        self.scale_out = is_scale_out(settings)
        self.hub = EventHub()
        self.tracker = IngestTracker()
        self.hub.add_listener(self.tracker)
        self.tokens = TokenStore(settings)
        #: ends a revoked token's open requests (SSE streams, downloads, uploads) at once
        self.revocations = RevocationWatch(self.tokens)
        self.spool_dir = Path(settings.home) / "api" / "uploads"
        self.runtime: Runtime | None = None
        self.voxels: VoxelStore | None = None
        self.dlq: DlqView | None = None
        self.submitter: Submitter | None = None
        self.follower: OutcomeFollower | None = None
        self._outcomes: OutcomeStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started_at = time.time()
        self._models_cache: tuple[float, Any] | None = None
        self._upload_pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="tl-upload")

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.spool_dir.glob("upload-*"):  # left by a crash: never half-stored
            stale.unlink(missing_ok=True)
        self._loop = asyncio.get_running_loop()
        self.revocations.start()
        if self.scale_out:
            await self._start_submitter()
            return
        runtime = Runtime(self.settings)
        runtime.pipeline.journal = EventTap(runtime.journal, self.hub)  # type: ignore[assignment]
        await runtime.__aenter__()
        self.runtime = runtime
        self.voxels = await asyncio.to_thread(VoxelStore, self.settings, runtime.store)
        self.dlq = DlqView(runtime.outcomes, runtime.journal)
        await asyncio.to_thread(self.dlq.import_journal)

    async def _start_submitter(self) -> None:
        """Submit-and-read: the submitter (shared store, RabbitMQ), the outcome store and a
        read voxel store; what opened is closed again when a later part fails."""
        submitter = await asyncio.to_thread(Submitter, self.settings, source=API_SOURCE)
        await submitter.__aenter__()
        self.submitter = submitter
        try:
            self._outcomes = await asyncio.to_thread(OutcomeStore, self.settings)
            self.voxels = await asyncio.to_thread(VoxelStore, self.settings, submitter.store)
        except BaseException:
            await self.stop()
            raise
        self.dlq = DlqView(self._outcomes, None)
        self.follower = OutcomeFollower(self._outcomes, self.hub)
        self.follower.start()

    async def stop(self) -> None:
        self.hub.close()
        await self.revocations.stop()
        if self.follower is not None:
            await self.follower.stop()
            self.follower = None
        if self.submitter is not None:
            await self.submitter.__aexit__(None, None, None)
            self.submitter = None
        if self._outcomes is not None:
            await asyncio.to_thread(self._outcomes.close)
            self._outcomes = None
        if self.runtime is not None:
            await self.runtime.__aexit__(None, None, None)
            self.runtime = None
        if self.voxels is not None:
            await asyncio.to_thread(self.voxels.close)
            self.voxels = None
        self._upload_pool.shutdown(wait=True)

    def require_runtime(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("the API service is not started")
        return self.runtime

    @property
    def outcomes(self) -> OutcomeStore:
        """The outcome store (the pipeline's, or the one the workers' collector fills)."""
        if self.runtime is not None:
            return self.runtime.outcomes
        if self._outcomes is None:
            raise RuntimeError("the API service is not started")
        return self._outcomes

    @property
    def objects(self) -> ObjectStore | None:
        if self.runtime is not None:
            return self.runtime.store
        return self.submitter.store if self.submitter is not None else None

    def require_voxels(self) -> VoxelStore:
        if self.voxels is None:
            raise RuntimeError("the API service is not started")
        return self.voxels

    def require_dlq(self) -> DlqView:
        if self.dlq is None:
            raise RuntimeError("the API service is not started")
        return self.dlq

    # ---- ingest ---------------------------------------------------------------------------
    def queue_full(self) -> bool:
        """Whether a new ingest would have to wait (``block`` policy and a full first queue).
        Submit-and-read: never known in advance; the broker refuses the publish instead."""
        if self.scale_out:
            return False
        runtime = self.require_runtime()
        if self.settings.overflow_policy is not OverflowPolicy.BLOCK:
            return False
        return runtime.bus.depth(FIRST_TOPIC) >= self.settings.queue_max

    async def submit_upload(self, received: ReceivedFile) -> CloudEvent:
        """Store the uploaded bytes (content-addressed) and start their ingest."""
        if self.submitter is not None:
            return await self._submit_to_workers(received)
        runtime = self.require_runtime()
        loop = asyncio.get_running_loop()

        def store_and_discard() -> Any:
            try:
                return runtime.store.put_file(received.path)
            finally:
                received.discard()

        stored = await loop.run_in_executor(self._upload_pool, store_and_discard)
        request = IngestRequest(
            artifact=StoredArtifact(
                name=received.name,
                path=None,
                size=stored.size,
                sha256=stored.sha256,
                payload_ref=stored.ref,
                source=f"{API_SOURCE}:upload:{quote(received.name, safe='')}",
            ),
            route=["classify"],
        )
        event = typed_event(INGEST_RECEIVED, request, source=API_SOURCE)
        await runtime.submit(event)
        return event

    async def _submit_to_workers(self, received: ReceivedFile) -> CloudEvent:
        """The submitter admits the spooled upload, streams it into the shared store and
        publishes it (``block=False``: a full queue raises ``OverloadError``)."""
        assert self.submitter is not None and self.follower is not None
        request = IngestRequest(
            artifact=Artifact(
                name=received.name,
                path=str(received.path),
                root=str(self.spool_dir),
                source=f"{API_SOURCE}:upload:{quote(received.name, safe='')}",
            ),
            route=["classify"],
        )
        event = typed_event(INGEST_RECEIVED, request, source=API_SOURCE)
        try:
            published = await self.submitter.submit_event(
                event, block=False, keep_path=False, executor=self._upload_pool
            )
        finally:
            received.discard()
        # the live view: the upload now, its outcome (voxel or DLQ record) once recorded
        self.hub.publish(event if published.is_dlq else published)
        self.follower.follow(published.correlationid)
        return published

    async def replay(self, dlq_id: str) -> CloudEvent | None:
        """Send a dead letter's original event through again; None if already replayed."""
        runtime = None if self.scale_out else self.require_runtime()
        view = self.require_dlq()
        entry = view.get(dlq_id)
        if entry is None:
            raise KeyError(dlq_id)
        original = entry.original
        if original is None:
            raise ValueError("the record has no original event to replay")
        event = original.derive(original.type, original.data, source=REPLAY_SOURCE)
        if entry.status != "open" or not view.mark_replayed(dlq_id, event.id):
            return None
        progress = self.tracker.get(event.correlationid)
        if progress is not None:
            progress.dlq = [d for d in progress.dlq if d.get("id") != dlq_id]
            if event.type != INGEST_RECEIVED:
                progress.open += 1
        try:
            if self.submitter is not None:
                await publish_replay(self.submitter.bus, event, block=False)
            else:
                assert runtime is not None
                await runtime.submit(event)
        except BaseException:
            view.unmark(dlq_id)
            raise
        if self.follower is not None:
            self.hub.publish(event)
            self.follower.follow(event.correlationid)
        return event

    # ---- readiness ------------------------------------------------------------------------
    def _stage(self, name: str) -> Any:
        runtime = self.runtime
        if runtime is None:
            return None
        return next((s for s in runtime.stages if s.name == name), None)

    def readiness(self) -> Readiness:
        if self.scale_out:
            return self._submitter_readiness()
        checks: dict[str, Check] = {}
        runtime = self.runtime
        checks["pipeline"] = Check(
            ok=runtime is not None,
            detail=f"stages {', '.join(runtime.stage_names)}" if runtime else "not started",
        )
        checks["database"] = self._check_database()
        checks["object_store"] = self._check_objects()
        checks["bus"] = Check(
            ok=runtime is not None,
            detail=f"{self.settings.bus_url} (in-process), classify queue depth "
            f"{runtime.bus.depth(FIRST_TOPIC) if runtime else '-'} of {self.settings.queue_max}",
        )
        checks["models"] = self._check_models()
        checks["nlp_breaker"] = self._check_breaker()
        return Readiness(ready=all(c.ok for c in checks.values()), checks=checks)

    def _submitter_readiness(self) -> Readiness:
        """Submit-and-read: the broker (asked now), the database and the shared object store;
        models and the spaCy breaker belong to the workers (``thunderline doctor`` there)."""
        started = self.submitter is not None
        checks = {
            "pipeline": Check(
                ok=started,
                detail="submit-and-read: the stages run in `thunderline worker` processes"
                if started
                else "not started",
            ),
            "database": self._check_database(),
            "object_store": self._check_objects(),
            "bus": self._check_broker(),
            "models": Check(ok=True, detail="loaded by the workers (infer stage)"),
            "nlp_breaker": Check(ok=True, detail="in the workers (nlp stage)"),
        }
        return Readiness(ready=all(c.ok for c in checks.values()), checks=checks)

    def _check_broker(self) -> Check:
        """Ask RabbitMQ for the ``classify`` queue's depth (from a worker thread of ours)."""
        submitter, loop = self.submitter, self._loop
        if submitter is None or loop is None:
            return Check(ok=False, detail="not connected")
        bus = submitter.bus
        probe = asyncio.run_coroutine_threadsafe(bus.queue_depth(FIRST_TOPIC), loop)
        try:
            depth = probe.result(BROKER_PROBE_S)
        except Exception as exc:
            probe.cancel()
            return Check(ok=False, detail=f"rabbitmq {bus.safe_url}: {type(exc).__name__} {exc}")
        return Check(
            ok=True,
            detail=f"rabbitmq {bus.safe_url} (queues {bus.queue_name(FIRST_TOPIC)}…), "
            f"classify queue depth {depth} of {self.settings.queue_max}",
        )

    def _check_database(self) -> Check:
        if self.voxels is None:
            return Check(ok=False, detail="not open")
        try:
            with self.voxels.engine.connect() as conn:
                conn.execute(text("select 1"))
        except Exception as exc:
            return Check(ok=False, detail=f"{self.voxels.url}: {exc}")
        return Check(ok=True, detail=self.voxels.url)

    def _check_objects(self) -> Check:
        store = self.objects
        if store is None:
            return Check(ok=False, detail="not open")
        try:
            store.exists("0" * 64)
            root = getattr(store, "root", None)
            if root is not None and not Path(root, "sha256").is_dir():
                return Check(ok=False, detail=f"{store.url}: folder missing")
        except Exception as exc:
            return Check(ok=False, detail=f"{store.url}: {exc}")
        return Check(ok=True, detail=store.url)

    def _check_models(self) -> Check:
        stage = self._stage("infer")
        if stage is None:
            return Check(ok=True, detail="infer stage off (TL_ONNX_ENABLED=false)")
        supervisor = getattr(stage, "supervisor", None)
        if supervisor is None:
            return Check(ok=False, detail="model supervisor not started")
        health = supervisor.health()
        bad = [h for h in health if str(getattr(h.state, "value", h.state)) == "unhealthy"]
        if bad:
            return Check(
                ok=False,
                detail="; ".join(f"{h.name} unhealthy: {h.last_error}" for h in bad),
            )
        names = ", ".join(f"{h.name} {getattr(h.state, 'value', h.state)}" for h in health)
        return Check(ok=True, detail=names or "no model loaded yet")

    def _check_breaker(self) -> Check:
        stage = self._stage("nlp")
        if stage is None:
            return Check(ok=True, detail="nlp stage off")
        breaker = getattr(getattr(stage, "pool", None), "breaker", None)
        if breaker is None:
            return Check(ok=False, detail="nlp pool has no breaker")
        state = breaker.state.name.lower()
        return Check(ok=state == "closed", detail=f"spaCy circuit breaker {state}")

    # ---- models ---------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        """Registry entries with checksum status (cached 30 s) and supervisor health."""
        from thunderline.ml.registry import ModelRegistry

        now = time.monotonic()
        if self._models_cache is None or now - self._models_cache[0] > 30:
            registry = ModelRegistry.from_settings(self.settings)
            entries = registry.list_models() if registry.exists else []
            verified = {r.name: r for r in registry.verify()} if entries else {}
            self._models_cache = (now, (str(registry.registry_file), entries, verified))
        registry_file, entries, verified = self._models_cache[1]
        stage = self._stage("infer")
        supervisor = getattr(stage, "supervisor", None) if stage is not None else None
        health = {h.name: h for h in supervisor.health()} if supervisor is not None else {}
        models = []
        for entry in entries:
            result = verified.get(entry.name)
            h = health.get(entry.name)
            models.append(
                {
                    "name": entry.name,
                    "version": entry.version,
                    "kind": entry.kind,
                    "path": entry.path,
                    "sha256": entry.sha256,
                    "checksum": result.status if result else "missing",
                    "health": str(getattr(h.state, "value", h.state)) if h else "not loaded",
                    "detail": (h.last_error or "") if h else (result.detail if result else ""),
                }
            )
        return {"enabled": self.settings.onnx_enabled, "registry": registry_file, "models": models}
