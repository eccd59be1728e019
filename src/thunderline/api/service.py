"""What the HTTP API stands on: the running pipeline, the voxel store, live events, tokens, DLQ.

On the embedded bus (``memory://``) :class:`ApiService` runs the whole pipeline in this process
(the same :class:`~thunderline.runtime.Runtime` as ``thunderline ingest``) and taps every event
it publishes for the SSE stream and the ingest tracker. A scale-out bus (``amqp://``) would make
the service a submitter and reader only (workers run the stages); that mode needs the scale-out
worker and collector and is refused with a clear error until they are part of the build.
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

from thunderline.api.dlq import REPLAY_SOURCE, DlqView
from thunderline.api.live import EventHub, EventTap, IngestTracker
from thunderline.api.schemas import Check, Readiness
from thunderline.api.tokens import TokenStore
from thunderline.api.upload import ReceivedFile
from thunderline.config import OverflowPolicy, Settings
from thunderline.errors import ConfigError
from thunderline.eventdata import IngestRequest, StoredArtifact, typed_event
from thunderline.events import INGEST_RECEIVED, CloudEvent
from thunderline.runtime import Runtime
from thunderline.voxel.store import VoxelStore

_log = logging.getLogger("thunderline.api")

API_SOURCE = "urn:thunderline:api"
FIRST_TOPIC = "classify"
#: Threads that move finished uploads into the object store. Their own pool, so that an upload
#: never waits behind the stages' work (Magika batches, database writes) in the default pool.
UPLOAD_THREADS = 4


class ApiService:
    """The pipeline and the stores behind one API process (``start`` / ``stop``)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.bus_url.startswith("memory://"):
            raise ConfigError(
                f"thunderline serve on {settings.bus_url!r}: submit-only mode needs the "
                "scale-out workers (`thunderline worker`), which this build does not include; "
                "use TL_BUS_URL=memory:// to run the pipeline in the server"
            )
        self.settings = settings
        self.hub = EventHub()
        self.tracker = IngestTracker()
        self.hub.add_listener(self.tracker)
        self.tokens = TokenStore(settings)
        self.spool_dir = Path(settings.home) / "api" / "uploads"
        self.runtime: Runtime | None = None
        self.voxels: VoxelStore | None = None
        self.dlq: DlqView | None = None
        self.started_at = time.time()
        self._models_cache: tuple[float, Any] | None = None
        self._upload_pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="tl-upload")

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.spool_dir.glob("upload-*"):  # left by a crash: never half-stored
            stale.unlink(missing_ok=True)
        runtime = Runtime(self.settings)
        runtime.pipeline.journal = EventTap(runtime.journal, self.hub)  # type: ignore[assignment]
        await runtime.__aenter__()
        self.runtime = runtime
        self.voxels = await asyncio.to_thread(VoxelStore, self.settings, runtime.store)
        self.dlq = DlqView(runtime.outcomes, runtime.journal)
        await asyncio.to_thread(self.dlq.import_journal)

    async def stop(self) -> None:
        self.hub.close()
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
        """Whether a new ingest would have to wait (``block`` policy and a full first queue)."""
        runtime = self.require_runtime()
        if self.settings.overflow_policy is not OverflowPolicy.BLOCK:
            return False
        return runtime.bus.depth(FIRST_TOPIC) >= self.settings.queue_max

    async def submit_upload(self, received: ReceivedFile) -> CloudEvent:
        """Store the uploaded bytes (content-addressed) and start their ingest."""
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

    async def replay(self, dlq_id: str) -> CloudEvent | None:
        """Send a dead letter's original event through again; None if already replayed."""
        runtime = self.require_runtime()
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
            await runtime.submit(event)
        except BaseException:
            view.unmark(dlq_id)
            raise
        return event

    # ---- readiness ------------------------------------------------------------------------
    def _stage(self, name: str) -> Any:
        runtime = self.runtime
        if runtime is None:
            return None
        return next((s for s in runtime.stages if s.name == name), None)

    def readiness(self) -> Readiness:
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
        if self.runtime is None:
            return Check(ok=False, detail="not open")
        store = self.runtime.store
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
