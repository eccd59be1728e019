"""The ``extract`` stage: classified artifacts -> ``system.extract.completed``.

For each ``system.ingest.classified`` event routed to ``extract`` the stage picks the
extractor for the Magika label (:mod:`.registry`), hands the payload to a supervised worker
process (:mod:`.pool`), stores the text **once** in the object store (UTF-8, content-addressed
by its SHA-256: ``text_ref``), stores each embedded part (an e-mail attachment, an object in
an office file) the same way, and publishes the event with ``data["extract"]``
(:class:`~thunderline.extract.result.ExtractSummary`: everything but the text). The package
stage seals that summary into the voxel (``traits["extract"]``, covered by ``voxels verify``)
and sends each embedded part on as a child artifact, like an archive member.

Routing by content: when nothing yields text, ``nlp`` is taken off the route (with a note);
OCR text (images) is sent on to ``nlp`` when that stage is on.

Failures are typed (reasons ``extraction``, ``timeout``, ``crash``, ``out_of_memory``) and
never retried: the engine dead-letters the file as ``system.dlq.extract_failed``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from thunderline.config import Settings
from thunderline.errors import BackendError, ThunderlineError
from thunderline.eventdata import Classified, Extracted, Note, data_of, extend
from thunderline.events import EXTRACT_COMPLETED, CloudEvent
from thunderline.extract.pool import ExtractPool, Job, PoolConfig
from thunderline.extract.registry import NONE, extractor_for
from thunderline.extract.result import EmbeddedPart, ExtractResult, ExtractSummary, summarize
from thunderline.flow.stage import Outcome, StageOptions, StoreStage
from thunderline.objects.base import ObjectStore

#: Extractors that read pixels when OCR is on (their files then get the ``ocr`` timeout).
OCR_EXTRACTORS = ("image", "pdf")
#: Text stage that the route loses when the file yields no text.
TEXT_STAGES = ("nlp",)


class ExtractStage(StoreStage):
    """Text, metadata and embedded parts of every routed artifact, in isolated workers.

    Args:
        settings: Thunderline settings (``TL_EXTRACT_*``, ``TL_NLP_MAX_TEXT_BYTES``).
        store: The payload store.
        options: Engine options (default: from settings).
        pool: An already configured pool (not closed by the stage); tests inject faults here.
        available_stages: The stages that are on (OCR text is routed to ``nlp`` only if on).
    """

    name = "extract"

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        options: StageOptions | None = None,
        *,
        pool: ExtractPool | None = None,
        available_stages: Iterable[str] = ("nlp",),
    ) -> None:
        super().__init__(settings, store, options)
        self._own_pool = pool is None
        self.pool = pool or ExtractPool(PoolConfig.from_settings(settings))
        self.available = set(available_stages)

    @classmethod
    def default_timeout_s(cls, settings: Settings) -> float:
        """A batch timeout long enough for every file of a batch to run to its longest timeout.

        Every file runs to its longest total timeout, one worker after the other.
        """
        config = PoolConfig.from_settings(settings)
        budget = settings.stage_budget(cls.name)
        rounds = -(-budget.batch_size // max(config.workers, 1))
        longest = max(config.timeouts.values()) + config.start_timeout_s
        return max(settings.stage_timeout_s, rounds * longest + 30.0)

    async def close(self) -> None:
        """Close the worker pool if this stage started it."""
        if self._own_pool:
            await self.pool.close()

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        """Extract every event's payload concurrently in the worker pool; one outcome each."""
        return list(await asyncio.gather(*(self._one(event) for event in events)))

    async def _one(self, event: CloudEvent) -> Outcome:
        try:
            data = data_of(event, Classified)
            classification = data.classification
            extractor = extractor_for(
                classification.label, classification.group, classification.is_text
            )
            started = time.perf_counter()
            if extractor is NONE:
                result = ExtractResult(method="none", library="stdlib", library_version="")
                summary = summarize(result, None, [], 0.0)
            else:
                summary = await self._extract(event, data, extractor.name, extractor.kind)
            summary = summary.model_copy(
                update={"duration_ms": round((time.perf_counter() - started) * 1000, 3)}
            )
            return [self._publish(event, data, summary)]
        except ThunderlineError as exc:
            return exc

    async def _extract(
        self, event: CloudEvent, data: Classified, extractor: str, kind: str
    ) -> ExtractSummary:
        tmp_root = self._tmp_dir()
        work = Path(tempfile.mkdtemp(prefix="tl-extract-", dir=tmp_root))
        try:
            payload = await asyncio.to_thread(self._payload_path, data, work)
            parts_dir = work / "parts"
            parts_dir.mkdir()
            ocr_on = self.settings.extract.ocr != "off" and extractor in OCR_EXTRACTORS
            job = Job(
                id=event.id,
                path=str(payload),
                extractor=extractor,
                kind="ocr" if ocr_on else kind,
                label=data.classification.label,
                mime=data.classification.mime,
                max_text_bytes=self.settings.nlp.max_text_bytes,
                max_parts=min(self.settings.extract.max_parts, self.settings.archive.max_members),
                max_part_bytes=self.settings.archive.max_total_bytes,
                max_ratio=self.settings.archive.max_ratio,
                parts_dir=str(parts_dir),
                ocr=ocr_on,
                ocr_engine=self.settings.extract.ocr if ocr_on else "rapidocr",
                ocr_languages=self.settings.extract.ocr_languages,
            )
            started = time.perf_counter()
            result = await self.pool.extract(job)
            elapsed_ms = (time.perf_counter() - started) * 1000
            return await asyncio.to_thread(self._store, result, parts_dir, elapsed_ms)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    def _tmp_dir(self) -> Path | None:
        root = self.store.root
        if root is None:
            return None
        folder = root / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _payload_path(self, data: Classified, work: Path) -> Path:
        """The payload as a local file: the store's own file, else a verified copy."""
        sha = data.artifact.sha256
        local = self.store.local_path(sha)
        if local is not None:
            return local
        spool = work / "payload"
        try:
            with spool.open("wb") as out:
                self.store.copy_verified(sha, out)
        except OSError as exc:
            raise BackendError(f"cannot spool payload {sha[:16]}...: {exc}") from exc
        return spool

    def _store(self, result: ExtractResult, parts_dir: Path, elapsed_ms: float) -> ExtractSummary:
        """Put the text and each part into the object store; the summary naming them."""
        text_ref = None
        if result.text:
            stored = self.store.put_bytes(result.text.encode("utf-8", "surrogatepass"))
            text_ref = stored.ref
        parts: list[EmbeddedPart] = []
        for part in result.parts:
            if part.spool is None or "/" in part.spool or part.spool.startswith("."):
                continue
            path = parts_dir / part.spool
            if not path.is_file():
                continue
            stored_part = self.store.put_file(path)
            parts.append(replace(part, sha256=stored_part.sha256, spool=None))
        return summarize(result, text_ref, parts, elapsed_ms)

    def _publish(self, event: CloudEvent, data: Classified, summary: ExtractSummary) -> CloudEvent:
        route = [stage for stage in data.route if stage != self.name]
        notes = list(data.notes or [])
        if summary.text_ref is None and any(stage in route for stage in TEXT_STAGES):
            route = [stage for stage in route if stage not in TEXT_STAGES]
            notes.extend(
                Note(stage=stage, note=f"skipped: no text extracted ({summary.method})")
                for stage in data.route
                if stage in TEXT_STAGES
            )
        elif (
            summary.text_ref is not None
            and summary.ocr is not None
            and "nlp" in self.available
            and "nlp" not in route
            and data.reprocess is None  # a reprocess runs the one stage it names
        ):
            route.insert(0, "nlp")  # OCR text goes on to NLP like any other text
        out = extend(data, Extracted, extract=summary, notes=notes or None)
        return self.advance(event, EXTRACT_COMPLETED, out, route=route)


__all__ = ["ExtractStage"]
