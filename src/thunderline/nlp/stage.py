"""The ``nlp`` stage: classified text artifacts -> ``system.nlp.processed``.

For each ``system.ingest.classified`` event routed to ``nlp`` the stage reads the payload from
the object store, extracts its text (:mod:`.extract`, method chosen from the Magika label),
sends the text through the worker pool (:mod:`.pool`) and publishes
``self.advance(event, NLP_PROCESSED, {"nlp": {...NlpResult..., "extraction": {...}}})``.
Extraction runs in a thread; spaCy runs in the worker processes; the event loop only waits.

Failures are returned as typed exceptions, which the engine dead-letters as
``system.dlq.nlp_failed`` with their reason: ``timeout``, ``crash``, ``parse``,
``circuit_open``, ``nlp``, ``extraction``, ``not_found``, ``checksum_mismatch``. None is
retried by the engine: the pool already retried crashes and timeouts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import time
from collections.abc import Sequence

from thunderline.config import Settings
from thunderline.errors import ThunderlineError
from thunderline.eventdata import Classified, NlpAnalysis, NlpProcessed, data_of, extend
from thunderline.events import NLP_PROCESSED, CloudEvent
from thunderline.flow.stage import Outcome, StageOptions, StoreStage
from thunderline.nlp.errors import NlpModelMissingError
from thunderline.nlp.extract import Extraction, extract_text, method_for, read_head
from thunderline.nlp.pool import NlpPool, PoolConfig
from thunderline.nlp.result import NlpResult
from thunderline.nlp.worker import model_missing_message
from thunderline.objects.base import ObjectStore
from thunderline.obs import metrics

#: Payloads up to this size are read through ``get_bytes`` (SHA-256 verified); larger local
#: payloads are read only as far as extraction needs.
VERIFY_MAX_BYTES = 64 * 1024 * 1024


class NlpStage(StoreStage):
    """spaCy analysis of text-like artifacts through the supervised worker pool.

    Args:
        settings: Thunderline settings (``TL_SPACY_*``, ``TL_NLP_*``).
        store: The payload store the classify stage filled.
        options: Engine options (default: from settings, see :meth:`default_timeout_s`).
        worker_command: Test fault injection: the program the pool starts instead of the
            real worker (it gets the worker's arguments).
        pool: An already configured pool to use (not closed by the stage).
    """

    name = "nlp"

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        options: StageOptions | None = None,
        *,
        worker_command: Sequence[str] | None = None,
        pool: NlpPool | None = None,
    ) -> None:
        super().__init__(settings, store, options)
        self._own_pool = pool is None
        self.pool = pool or NlpPool(PoolConfig.from_settings(settings), worker_command)

    @classmethod
    def default_timeout_s(cls, settings: Settings) -> float:
        """A batch timeout that covers the pool's worst case: every document of every batch in
        flight timing out on every retry."""
        config = PoolConfig.from_settings(settings)
        budget = settings.stage_budget(cls.name)
        per_doc = (config.max_retries + 1) * (config.answer_timeout_s + config.backoff_max_s + 2.0)
        rounds = math.ceil(budget.batch_size * budget.concurrency / settings.spacy_workers)
        return max(settings.stage_timeout_s, rounds * per_doc + 30.0)

    async def setup(self) -> None:
        """Check the spaCy pipeline is installed, then start the workers.

        Raises:
            NlpModelMissingError: ``TL_SPACY_MODEL`` is not importable (with the pip hint).
        """
        if importlib.util.find_spec(self.settings.spacy_model) is None:
            raise NlpModelMissingError(model_missing_message(self.settings.spacy_model))
        await self.pool.start()

    async def close(self) -> None:
        if self._own_pool:
            await self.pool.close()

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        extracted = await asyncio.to_thread(lambda: [self._extract(e) for e in events])
        jobs = [self._analyse(event, got) for event, got in zip(events, extracted, strict=True)]
        return list(await asyncio.gather(*jobs))

    async def _analyse(
        self, event: CloudEvent, extraction: Extraction | ThunderlineError
    ) -> Outcome:
        if isinstance(extraction, ThunderlineError):
            return extraction
        try:
            result: NlpResult = await self.pool.process(event.id, extraction.text)
        except ThunderlineError as exc:
            exc.details.setdefault("extraction", extraction.info())
            return exc
        nlp = NlpAnalysis.model_validate({**dict(result), "extraction": extraction.info()})
        data = extend(data_of(event, Classified), NlpProcessed, nlp=nlp)
        return [self.advance(event, NLP_PROCESSED, data)]

    # ---- extraction (runs in a worker thread) ---------------------------------------------
    def _extract(self, event: CloudEvent) -> Extraction | ThunderlineError:
        try:
            classified = data_of(event, Classified)
            artifact = classified.artifact
            classification = classified.classification
            method = method_for(classification.label, classification.mime)
            limit = self.settings.nlp_max_text_bytes
            local = self.store.local_path(artifact.sha256)
            if local is not None and artifact.size > VERIFY_MAX_BYTES:
                data = read_head(local, method, limit)
            else:
                data = self.store.get_bytes(artifact.sha256)
            started = time.perf_counter()
            try:
                return extract_text(data, method, limit)
            finally:
                metrics.NLP_EXTRACT_DURATION.labels(method).observe(time.perf_counter() - started)
        except ThunderlineError as exc:
            return exc


__all__ = ["NlpStage"]
