"""Running sync passes: the publisher the settings select, one pass or a watch loop.

The pipeline is the :class:`~thunderline.ingestor.Ingestor` ``thunderline ingest`` uses
(``open_ingestor``): ``TL_BUS_URL=memory://`` runs it in this process (a
:class:`~thunderline.runtime.Runtime` kept open for the whole run); ``amqp://…`` publishes to the
RabbitMQ workers through the :class:`~thunderline.worker.submit.Submitter` and reads outcomes
from the shared database.

``watch`` (:func:`watch`) runs a pass at start, then one after every burst of filesystem events
(inotify through ``watchfiles``) and at least every ``TL_SOURCE_POLL_INTERVAL_S`` -- the polling
fallback for network filesystems, where inotify sees nothing, for S3 prefixes and for files
still settling. A paused root (``thunderline sources pause``) is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from thunderline.bus.factory import keeps_messages
from thunderline.config import Settings
from thunderline.events import CloudEvent
from thunderline.objects.factory import open_object_store
from thunderline.outcomes import OutcomeStore
from thunderline.sources.ledger import Ledger
from thunderline.sources.scan import SourceUri
from thunderline.sources.sync import SOURCE, IngestorPublisher, PassReport, Publisher, SourceSync

_log = logging.getLogger("thunderline.sources")


class LazyPublisher:
    """The pipeline's :class:`~thunderline.ingestor.Ingestor`, opened on the first event to send.

    A pass with nothing new or changed starts no pipeline (no model is loaded, no broker
    connection made). Outcomes are read through an outcome store of its own (the same
    database the pipeline's collector writes).
    """

    def __init__(self, settings: Settings, stack: AsyncExitStack, outcomes: OutcomeStore) -> None:
        self.settings = settings
        self.stack = stack
        self.outcomes = outcomes
        # in-process, a pending entry's work died with its run: send it again; on a broker
        # its message is durable in its queue: wait for its outcome instead
        self.resubmit_pending = not keeps_messages(settings)
        self._inner: IngestorPublisher | None = None

    async def _open(self) -> IngestorPublisher:
        if self._inner is None:
            from thunderline.bus.factory import open_ingestor

            ingestor = await self.stack.enter_async_context(
                open_ingestor(self.settings, source=SOURCE)
            )
            self._inner = IngestorPublisher(ingestor)
        return self._inner

    async def publish(self, event: CloudEvent) -> None:
        """Send ``event`` into the pipeline, opening it first if this is the first event."""
        await (await self._open()).publish(event)

    async def drained(self) -> None:
        """Wait until the pipeline has finished what it was sent (at once if none was opened)."""
        if self._inner is not None:
            await self._inner.drained()


@asynccontextmanager
async def open_publisher(settings: Settings) -> AsyncIterator[Publisher]:
    """The in-process pipeline or the RabbitMQ submitter, opened when there is something to send.

    Which one is as the bus URL says (the ingestor ``thunderline ingest`` uses).
    """
    outcomes = await asyncio.to_thread(OutcomeStore, settings)
    try:
        async with AsyncExitStack() as stack:
            yield LazyPublisher(settings, stack, outcomes)
    finally:
        outcomes.close()


@asynccontextmanager
async def open_sync(settings: Settings, source: SourceUri) -> AsyncIterator[SourceSync]:
    """A :class:`SourceSync` with its ledger, publisher, object store and delete policy."""
    ledger = await asyncio.to_thread(Ledger, settings)
    store = open_object_store(settings)
    try:
        async with open_publisher(settings) as publisher:
            on_deleted = None
            if settings.source.delete_policy == "delete":
                on_deleted = _deleter(settings, ledger)
            yield SourceSync(settings, source, ledger, publisher, store, on_deleted=on_deleted)
    finally:
        ledger.close()


def _deleter(settings: Settings, ledger: Ledger) -> Callable[[list[str]], Awaitable[None]]:
    async def on_deleted(entry_ids: list[str]) -> None:
        from thunderline.voxel.lifecycle import delete_for_entries

        await asyncio.to_thread(delete_for_entries, settings, ledger, entry_ids)

    return on_deleted


async def sync_once(settings: Settings, source: SourceUri) -> PassReport:
    """Run one sync pass over ``source`` and return its report."""
    async with open_sync(settings, source) as sync:
        return await sync.run_pass()


async def watch(
    settings: Settings,
    source: SourceUri,
    *,
    on_pass: Callable[[PassReport], object] | None = None,
    stop: asyncio.Event | None = None,
    use_inotify: bool = True,
    dispatch_webhooks: bool = True,
) -> None:
    """Keep ``source`` in step until ``stop`` is set (or the task is cancelled).

    The webhook dispatcher (:meth:`~thunderline.webhooks.core.Webhooks.dispatch`) runs beside it
    unless ``dispatch_webhooks`` is False.
    """
    from thunderline.webhooks.core import Webhooks

    stop = stop or asyncio.Event()
    changed = asyncio.Event()
    changed.set()  # a first pass at start: catch up with what happened while stopped
    async with open_sync(settings, source) as sync:
        watcher: asyncio.Task[None] | None = None
        if use_inotify and source.kind == "dir" and source.path is not None:
            watcher = asyncio.create_task(_inotify(source, changed, stop))
        dispatcher: asyncio.Task[None] | None = None
        if dispatch_webhooks:
            hooks = Webhooks(settings, engine=sync.ledger.engine)
            dispatcher = asyncio.create_task(hooks.dispatch(stop))
        try:
            while not stop.is_set():
                paused = any(
                    r.paused
                    for r in await asyncio.to_thread(sync.ledger.roots)
                    if r.uri == source.uri
                )
                if changed.is_set() and not paused:
                    changed.clear()
                    report = await sync.run_pass()
                    if on_pass is not None:
                        on_pass(report)
                    if report.settling:  # look again once they may have settled
                        asyncio.get_running_loop().call_later(settings.source.settle_s, changed.set)
                await _wait_any(changed, stop, settings.source.poll_interval_s)
                if not changed.is_set() and not stop.is_set():
                    changed.set()  # the polling fallback: a pass every poll interval
        finally:
            for task in (watcher, dispatcher):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)


async def _wait_any(changed: asyncio.Event, stop: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


async def _inotify(source: SourceUri, changed: asyncio.Event, stop: asyncio.Event) -> None:
    """Set ``changed`` after each burst of events below the folder (watchfiles/inotify)."""
    from watchfiles import awatch

    assert source.path is not None
    try:
        async for _changes in awatch(source.path, stop_event=stop, recursive=True):
            changed.set()
    except (OSError, RuntimeError) as exc:  # no inotify here: the poll interval still runs
        _log.warning("inotify unavailable for %s (%s): polling only", source.uri, exc)
