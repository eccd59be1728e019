"""The ``nlp`` stage: classified text artifacts -> ``system.nlp.processed``.

For each event routed to ``nlp`` the stage reads the text the ``extract`` stage stored once
in the object store (``data["extract"]["text_ref"]``, SHA-256 verified on read; nothing is
extracted again here, see :mod:`thunderline.extract`), sends it through the worker pool
(:mod:`.pool`) and publishes
``self.advance(event, NLP_PROCESSED, {"nlp": {...NlpResult..., "extraction": {...}}})``.
spaCy runs in the worker processes; the event loop only waits.

Failures are returned as typed exceptions, which the engine dead-letters as
``system.dlq.nlp_failed`` with their reason: ``timeout``, ``crash``, ``parse``,
``circuit_open``, ``nlp``, ``no_text`` (the route had no ``extract`` stage), ``not_found``,
``checksum_mismatch``. None is retried by the engine: the pool already retried crashes and
timeouts.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from thunderline.config import Settings
from thunderline.errors import ModelPinError, ThunderlineError
from thunderline.eventdata import Classified, NlpAnalysis, NlpProcessed, data_of, extend
from thunderline.events import NLP_PROCESSED, CloudEvent
from thunderline.extract.result import ExtractSummary
from thunderline.flow.stage import Outcome, StageOptions, StoreStage
from thunderline.nlp.errors import NlpModelMissingError, NoTextError
from thunderline.nlp.pool import NlpPool, PoolConfig
from thunderline.nlp.result import NlpResult
from thunderline.nlp.worker import model_missing_message
from thunderline.objects.base import ObjectStore


@dataclass(frozen=True)
class _Text:
    """The stored text of one artifact and how it was extracted."""

    text: str
    summary: ExtractSummary

    def info(self) -> dict[str, object]:
        return self.summary.info()


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
        """A batch timeout that covers the pool's worst case.

        The worst case is every document of every batch in flight timing out (the engine, not the
        pool, retries).
        """
        config = PoolConfig.from_settings(settings)
        budget = settings.stage_budget(cls.name)
        per_doc = config.answer_timeout_s + config.restart.backoff_max_s + 2.0
        rounds = math.ceil(budget.batch_size * budget.concurrency / settings.spacy.workers)
        return max(settings.stage_timeout_s, rounds * per_doc + 30.0)

    async def setup(self) -> None:
        """Check the spaCy pipeline is installed, then start the workers.

        Raises:
            NlpModelMissingError: ``TL_SPACY_MODEL`` is not importable (with the pip hint).
        """
        if importlib.util.find_spec(self.settings.spacy.model) is None:
            raise NlpModelMissingError(model_missing_message(self.settings.spacy.model))
        await self.pool.start()

    async def close(self) -> None:
        """Close the worker pool when this stage made it."""
        if self._own_pool:
            await self.pool.close()

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        """Read each event's text and analyse them concurrently; one outcome per event."""
        extracted = await asyncio.to_thread(lambda: [self._read_text(e) for e in events])
        jobs = [self._analyse(event, got) for event, got in zip(events, extracted, strict=True)]
        return list(await asyncio.gather(*jobs))

    async def _analyse(self, event: CloudEvent, extraction: _Text | ThunderlineError) -> Outcome:
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

    # ---- the stored text (read in a worker thread) ----------------------------------------
    def _read_text(self, event: CloudEvent) -> _Text | ThunderlineError:
        try:
            data = data_of(event, Classified)
            if data.reprocess is not None and data.reprocess.model:
                self._check_pin(data.reprocess.model)
            summary = data.extract
            if summary is None:
                raise NoTextError(
                    "the event carries no extracted text: route 'extract' before 'nlp'"
                )
            if summary.text_sha256 is None:
                return _Text("", summary)
            raw = self.store.get_bytes(summary.text_sha256)  # SHA-256 verified
            return _Text(raw.decode("utf-8", "replace"), summary)
        except ThunderlineError as exc:
            return exc

    def _check_pin(self, pin: str) -> None:
        """Refuse a reprocess run's pinned pipeline that is not the one this stage runs.

        Raises:
            ModelPinError: another pipeline, or another version of it.
        """
        name, _, version = pin.partition("@")
        mine = self.settings.spacy.model
        if name != mine:
            raise ModelPinError(
                f"the run pins spaCy pipeline {pin}; this stage runs {mine} (TL_SPACY_MODEL)",
                details={"model": pin, "pipeline": mine},
            )
        have = pipeline_version(mine)
        if have != version:
            raise ModelPinError(
                f"the run pins {pin}; {mine} is version {have} here",
                details={"model": pin, "version": have},
            )


def pipeline_version(model: str) -> str | None:
    """The version of an installed spaCy pipeline package (its ``meta.json``); None: not installed.

    Read without loading spaCy: the package folder's ``meta.json`` (what ``spacy.load`` reports
    as ``nlp.meta["version"]``), else the distribution's version.
    """
    spec = importlib.util.find_spec(model)
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or ():
        meta = Path(folder) / "meta.json"
        if meta.is_file():
            try:
                version = json.loads(meta.read_text("utf-8")).get("version")
            except (OSError, ValueError):
                break
            if isinstance(version, str) and version:
                return version
    try:
        return importlib.metadata.version(model)
    except importlib.metadata.PackageNotFoundError:
        return "?"


__all__ = ["NlpStage", "pipeline_version"]
