"""What the HTTP API stands on: the running pipeline, the voxel store, live events, tokens, DLQ.

:class:`ApiService` stands on the :class:`~thunderline.ingestor.Ingestor` the bus factory picks
(the same one ``thunderline ingest`` uses). An upload is admitted, its bytes stored
(content-addressed) and its ingest event sent without blocking (a full ``classify`` queue is
:class:`~thunderline.errors.OverloadError`, 429); a DLQ replay goes through
:func:`thunderline.dlq.replay.replay`.

On the embedded bus (``memory://``) the ingestor runs the whole pipeline in this process and
every event it publishes is tapped for the SSE stream and the ingest tracker. On the scale-out
bus (``amqp://``) it only submits and reads: ``thunderline worker`` processes run the stages
and their collector records outcomes in the :class:`~thunderline.outcomes.OutcomeStore`, which
the status, DLQ and live routes read (:class:`~thunderline.api.follow.OutcomeFollower`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from thunderline.api.auth import RevocationWatch
from thunderline.api.follow import OutcomeFollower
from thunderline.api.live import EventHub, EventTap, IngestTracker
from thunderline.api.schemas import Check, Readiness
from thunderline.api.tokens import TokenStore
from thunderline.api.upload import ReceivedFile
from thunderline.bus.factory import open_ingestor
from thunderline.bus.served import WATCHED_TOPICS, QueueSampler
from thunderline.config import OverflowPolicy, Settings
from thunderline.dlq.replay import replay, replay_event
from thunderline.dlq.store import DeadLetters
from thunderline.dlq.triage import SKIP_NO_EVENT, NotRetryableError, Selection, choose
from thunderline.eventdata import Artifact, IngestRequest, typed_event
from thunderline.events import INGEST_RECEIVED, CloudEvent
from thunderline.ingestor import Ingestor
from thunderline.objects.base import ObjectStore, StoredObject
from thunderline.objects.local import LocalObjectStore
from thunderline.outcomes import OPEN, OutcomeRecord, OutcomeStore
from thunderline.runtime import Runtime
from thunderline.sources.ledger import Ledger
from thunderline.sources.reprocess import Reprocessor
from thunderline.stores import VoxelStorage
from thunderline.voxel.store import VoxelStore
from thunderline.webhooks.core import Webhooks

_log = logging.getLogger("thunderline.api")

API_SOURCE = "urn:thunderline:api"
FIRST_TOPIC = "classify"
#: Threads that move finished uploads into the object store. Their own pool, so that an upload
#: never waits behind the stages' work (Magika batches, database writes) in the default pool.
UPLOAD_THREADS = 4
#: On a local object store, an upload's spool file (hashed as it was written) is moved into the
#: store, not copied; up to this size on the event loop, where it takes a few syscalls, less
#: than handing the work to a thread and back (benchmarks/api.py: that hop was the upload
#: path's largest cost under 16 clients). A larger one moves in the upload threads (a
#: duplicate re-hashes the stored copy); uploads to S3 are copied there.
INLINE_UPLOAD_BYTES = 64 * 1024
#: How long ``/readyz`` waits for the bus's answer (a broker is asked).
BROKER_PROBE_S = 5.0


class ApiService:
    """The pipeline and the stores behind one API process (``start`` / ``stop``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub = EventHub()
        self.tracker = IngestTracker()
        self.hub.add_listener(self.tracker)
        self.tokens = TokenStore(settings)
        #: ends a revoked token's open requests (SSE streams, downloads, uploads) at once
        self.revocations = RevocationWatch(self.tokens)
        self.spool_dir = Path(settings.home) / "api" / "uploads"
        self.ingestor: Ingestor | None = None
        self.voxels: VoxelStorage | None = None
        self.dlq: DeadLetters | None = None
        self.ledger: Ledger | None = None
        self.webhooks: Webhooks | None = None
        self.reprocessor: Reprocessor | None = None
        self._dispatch_stop = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._reprocess_tasks: dict[str, asyncio.Task[Any]] = {}
        self._reprocess_lock = asyncio.Lock()
        self.follower: OutcomeFollower | None = None
        self.sampler: QueueSampler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started_at = time.time()
        self._models_cache: tuple[float, Any] | None = None
        self._upload_pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="tl-upload")

    @property
    def scale_out(self) -> bool:
        """Submit-and-read: the stages run in ``thunderline worker`` processes."""
        return self.ingestor is not None and self.ingestor.runtime is None

    @property
    def runtime(self) -> Runtime | None:
        """The in-process pipeline (``None`` in submit-and-read)."""
        return self.ingestor.runtime if self.ingestor is not None else None

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the ingestor (and its pipeline or broker), the stores and the background tasks.

        Leftover spool files of a crashed process are deleted first. The voxel store, source
        ledger, webhooks and reprocess runner are opened on one database engine, and the
        webhook dispatcher is started. In submit-and-read (no pipeline here), the outcome
        follower feeds the live view and the queue sampler feeds ``/metrics``. A failure while
        opening the stores stops what was started and re-raises.
        """
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.spool_dir.glob("upload-*"):  # left by a crash: never half-stored
            stale.unlink(missing_ok=True)
        self._loop = asyncio.get_running_loop()
        self.revocations.start()
        ingestor = await asyncio.to_thread(open_ingestor, self.settings, source=API_SOURCE)
        runtime = ingestor.runtime
        if runtime is not None:  # every event the stages publish, live; dead letters once recorded
            tap = EventTap(runtime.journal, self.hub)
            runtime.pipeline.journal = tap  # type: ignore[assignment]
            runtime.pipeline.on_terminal = tap.recorded
        await ingestor.__aenter__()
        self.ingestor = ingestor
        try:
            voxels = await asyncio.to_thread(VoxelStore, self.settings, ingestor.store)
            self.voxels = voxels
            # the source ledger and the webhook log live in the same database: one engine
            self.ledger = await asyncio.to_thread(lambda: Ledger(engine=voxels.engine))
            self.webhooks = await asyncio.to_thread(
                lambda: Webhooks(self.settings, engine=voxels.engine)
            )
            self.reprocessor = Reprocessor(self.settings, voxels)
            # the webhook dispatcher runs inside serve (rules, deliveries, retries)
            self._dispatch_stop = asyncio.Event()
            self._dispatcher = asyncio.create_task(self.webhooks.dispatch(self._dispatch_stop))
        except BaseException:
            await self.stop()
            raise
        self.dlq = DeadLetters(ingestor.outcomes)
        if runtime is None:  # the live view follows what the workers record
            self.follower = OutcomeFollower(ingestor.outcomes, self.hub)
            self.follower.start()
            # the queues' messages and consumers on /metrics (a stage no worker serves)
            self.sampler = QueueSampler(ingestor.bus, WATCHED_TOPICS)
            self.sampler.start()

    async def stop(self) -> None:
        """Stop everything :meth:`start` started (also after a start that failed half-way).

        The live streams end, the webhook dispatcher and any reprocess run are cancelled (a
        reprocess run is resumed later by its id), then the ingestor and the stores close
        and the upload threads finish.
        """
        self.hub.close()
        self._dispatch_stop.set()
        for task in (self._dispatcher, *list(self._reprocess_tasks.values())):
            if task is not None:
                task.cancel()  # a reprocess run stopped here is resumed by its id
                await asyncio.gather(task, return_exceptions=True)
        self._dispatcher = None
        self._reprocess_tasks.clear()
        await self.revocations.stop()
        if self.sampler is not None:
            await self.sampler.stop()
            self.sampler = None
        if self.follower is not None:
            await self.follower.stop()
            self.follower = None
        if self.ingestor is not None:
            await self.ingestor.__aexit__(None, None, None)
            self.ingestor = None
        self.ledger = self.webhooks = None  # on the voxel store's engine, closed with it
        self.reprocessor = None
        if self.voxels is not None:
            await asyncio.to_thread(self.voxels.close)
            self.voxels = None
        self._upload_pool.shutdown(wait=True)

    def require_ingestor(self) -> Ingestor:
        """The ingestor.

        Raises:
            RuntimeError: the service is not started.
        """
        if self.ingestor is None:
            raise RuntimeError("the API service is not started")
        return self.ingestor

    def require_runtime(self) -> Runtime:
        """The in-process pipeline.

        Raises:
            RuntimeError: none runs here (not started, or submit-and-read).
        """
        if self.runtime is None:
            raise RuntimeError("the API service runs no pipeline here")
        return self.runtime

    @property
    def outcomes(self) -> OutcomeStore:
        """The outcome store (the pipeline's, or the one the workers' collector fills)."""
        return self.require_ingestor().outcomes

    @property
    def objects(self) -> ObjectStore | None:
        """The object store that holds the payloads (``None`` before the service starts)."""
        return self.ingestor.store if self.ingestor is not None else None

    def require_ledger(self) -> Ledger:
        """The source ledger (sources and their sync runs).

        Raises:
            RuntimeError: the service is not started.
        """
        if self.ledger is None:
            raise RuntimeError("the API service is not started")
        return self.ledger

    def require_reprocessor(self) -> Reprocessor:
        """The reprocess runner on the voxel store.

        Raises:
            RuntimeError: the service is not started.
        """
        if self.reprocessor is None:
            raise RuntimeError("the API service is not started")
        return self.reprocessor

    def start_reprocess(self, run_id: str) -> None:
        """Work through a planned (or stopped) reprocess run in the background.

        A run already running here is left alone; runs go one at a time.
        """
        running = self._reprocess_tasks.get(run_id)
        if running is not None and not running.done():
            return
        worker = self.require_reprocessor()

        async def run() -> None:
            async with self._reprocess_lock:  # one run at a time: they share the cores
                await worker.run(run_id)

        task = asyncio.create_task(run())
        self._reprocess_tasks[run_id] = task

        def done(t: asyncio.Task[Any]) -> None:
            self._reprocess_tasks.pop(run_id, None)
            if not t.cancelled() and (exc := t.exception()) is not None:
                _log.error("reprocess run %s stopped: %s (resume it by its id)", run_id, exc)

        task.add_done_callback(done)

    def require_webhooks(self) -> Webhooks:
        """The webhook rules, deliveries and tags.

        Raises:
            RuntimeError: the service is not started.
        """
        if self.webhooks is None:
            raise RuntimeError("the API service is not started")
        return self.webhooks

    def require_voxels(self) -> VoxelStorage:
        """The voxel store.

        Raises:
            RuntimeError: the service is not started.
        """
        if self.voxels is None:
            raise RuntimeError("the API service is not started")
        return self.voxels

    def require_dlq(self) -> DeadLetters:
        """The DLQ records of the outcome store.

        Raises:
            RuntimeError: the service is not started.
        """
        if self.dlq is None:
            raise RuntimeError("the API service is not started")
        return self.dlq

    # ---- ingest ---------------------------------------------------------------------------
    def queue_full(self) -> bool:
        """Whether a new ingest would have to wait: ``block`` policy and a full first queue.

        The queue is as this process sees it. A broker's queue is not known in advance: it
        refuses the publish instead (``OverloadError``).
        """
        ingestor = self.require_ingestor()
        if ingestor.bus.durable or self.settings.overflow_policy is not OverflowPolicy.BLOCK:
            return False
        return ingestor.bus.depth(FIRST_TOPIC) >= self.settings.queue_max

    async def submit_upload(self, received: ReceivedFile) -> CloudEvent:
        """Admit the spooled upload, store its bytes (content-addressed) and start its ingest.

        The ingest does not wait (``block=False``): a full queue raises ``OverloadError``.
        """
        ingestor = self.require_ingestor()
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
            stored = await self._adopt(ingestor.store, received)
            if stored is not None:
                published = await ingestor.submit_stored(event, stored, block=False)
            else:
                published = await ingestor.submit_event(
                    event, block=False, keep_path=False, executor=self._upload_pool
                )
        finally:
            received.discard()
        if self.follower is not None:  # the upload now, its outcome once recorded
            self.hub.publish(event if published.is_dlq else published)
            self.follower.follow(published.correlationid)
        return published

    async def _adopt(self, store: ObjectStore, received: ReceivedFile) -> StoredObject | None:
        """The upload moved into a local store by its known digest; None: copy it instead.

        None for a store that is not local, and when the move fails (the spool folder on
        another file system, or any other ``OSError``): the copy then admits and stores the
        spool file as before, with the same refusals.
        """
        if not isinstance(store, LocalObjectStore) or not received.sha256:
            return None
        adopt = functools.partial(store.adopt, received.path, received.sha256, received.size)
        try:
            if received.size <= INLINE_UPLOAD_BYTES:
                return adopt()
            return await asyncio.get_running_loop().run_in_executor(self._upload_pool, adopt)
        except OSError as exc:
            _log.debug("upload not moved into the store (%s); copying it", exc)
            return None

    async def replay(self, dlq_id: str, *, force: bool = False) -> CloudEvent | None:
        """Send a dead letter's original event through again; None if already replayed.

        ``dlq_id`` is a full id, short id or unique part (``AmbiguousIdError``,
        ``IdReferenceError``); ``KeyError`` when no record matches; a record that is not
        retryable raises :class:`NotRetryableError` unless ``force``; one without an original
        event ``NotReplayableError`` (a ``ValueError``).
        """
        letters = self.require_dlq()
        letter = await asyncio.to_thread(letters.get, dlq_id)
        if letter is None:
            raise KeyError(dlq_id)
        if letter.status == OPEN and not force:
            selection = choose([letter])
            if not selection.send and SKIP_NO_EVENT not in selection.skipped:
                raise NotRetryableError(letter)
        return await self._replay_letter(letter)

    async def replay_group(
        self, group: str, *, force: bool = False
    ) -> tuple[list[tuple[OutcomeRecord, CloudEvent]], Selection]:
        """Replay the open records of a group (its id): retryable ones, every one with ``force``.

        Returns those sent with their replay events, and the selection (what was skipped and
        why). ``KeyError`` when no record has that group.
        """
        letters = self.require_dlq()
        key = await asyncio.to_thread(letters.group_key, group)
        if key is None:
            raise KeyError(group)
        records = await asyncio.to_thread(letters.of_group, key, OPEN)
        selection = choose(records, force=force)
        sent: list[tuple[OutcomeRecord, CloudEvent]] = []
        for letter in selection.send:
            event = await self._replay_letter(letter)
            if event is not None:
                sent.append((letter, event))
        return sent, selection

    async def _replay_letter(self, letter: OutcomeRecord) -> CloudEvent | None:
        ingestor = self.require_ingestor()
        letters = self.require_dlq()
        dlq_id = letter.id
        event = replay_event(letter)  # NotReplayableError (a ValueError): no original
        progress = self.tracker.get(event.correlationid)

        async def send(replayed: CloudEvent) -> None:
            if progress is not None:
                progress.dlq = [d for d in progress.dlq if d.get("id") != dlq_id]
                if replayed.type != INGEST_RECEIVED:
                    progress.open += 1
            await ingestor.submit(replayed, block=False)

        done = await replay(letters, letter, send)
        if done is not None and self.follower is not None:
            self.hub.publish(done)
            self.follower.follow(done.correlationid)
        return done

    # ---- readiness ------------------------------------------------------------------------
    def _stage(self, name: str) -> Any:
        runtime = self.runtime
        if runtime is None:
            return None
        return next((s for s in runtime.stages if s.name == name), None)

    def readiness(self) -> Readiness:
        """The readiness checks: pipeline, database, object store, bus, models, spaCy breaker.

        The bus is asked now. Submit-and-read: models and breaker belong to the workers
        (``thunderline doctor`` there).
        """
        runtime = self.runtime
        checks = {
            "pipeline": Check(
                ok=self.ingestor is not None,
                detail="not started"
                if self.ingestor is None
                else f"stages {', '.join(runtime.stage_names)}"
                if runtime is not None
                else "submit-and-read: the stages run in `thunderline worker` processes",
            ),
            "database": self._check_database(),
            "object_store": self._check_objects(),
            "bus": self._check_bus(),
            "models": self._check_models(),
            "nlp_breaker": self._check_breaker(),
        }
        return Readiness(ready=all(c.ok for c in checks.values()), checks=checks)

    def _check_bus(self) -> Check:
        """Ask the bus for the ``classify`` queue's depth.

        A broker is asked from a worker thread of ours, bounded by ``BROKER_PROBE_S``.
        """
        ingestor, loop = self.ingestor, self._loop
        if ingestor is None or loop is None:
            return Check(ok=False, detail="not connected")
        bus = ingestor.bus
        probe = asyncio.run_coroutine_threadsafe(bus.queue_depth(FIRST_TOPIC), loop)
        try:
            depth = probe.result(BROKER_PROBE_S)
        except Exception as exc:
            probe.cancel()
            return Check(ok=False, detail=f"{bus.describe()}: {type(exc).__name__} {exc}")
        return Check(
            ok=True,
            detail=f"{bus.describe()}, classify queue depth {depth} of {self.settings.queue_max}",
        )

    def _check_database(self) -> Check:
        if self.voxels is None:
            return Check(ok=False, detail="not open")
        try:
            self.voxels.ping()
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
        if self.scale_out:
            return Check(ok=True, detail="loaded by the workers (infer stage)")
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
        if self.scale_out:
            return Check(ok=True, detail="in the workers (nlp stage)")
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
        return {"enabled": self.settings.onnx.enabled, "registry": registry_file, "models": models}
