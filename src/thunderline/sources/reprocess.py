"""Reprocess: run the extract, NLP or inference stage again over stored voxels, keep every result.

``thunderline reprocess --stage nlp|infer|extract [--model NAME@VERSION] [QUERY]`` (and
``POST /v1/reprocess``, admin scope) works in **runs** (``reprocess_runs``, migration
``0007_results``):

1. **plan** -- the voxels matching ``QUERY`` (the search query language; empty: every voxel)
   are written as the run's items (``reprocess_items``, state ``pending``) when the run starts,
   so the run's scope is fixed however the store changes meanwhile;
2. **work** -- pending items are taken a batch at a time; each voxel becomes a
   ``system.ingest.classified`` event rebuilt from its sealed document (artifact,
   classification, and the *current* extract result, so NLP reads the newest text), caused by
   the voxel's own event; the real stage (:func:`thunderline.runtime.build_stages`: the same
   extract pool, spaCy pool or supervised ONNX sessions as ingest) handles the batch; each
   result is added as a new version (:class:`~thunderline.voxel.results.ResultVersions`) and
   the item marked ``done`` (``skipped`` when the stage does not apply, with its note;
   ``failed`` with the error's reason);
3. **resume** -- a run stopped part-way (Ctrl-C, a crash) is continued by
   ``thunderline reprocess --resume RUN_ID``: only pending items are taken, and a result
   already written for an item is never written twice (one version per run and voxel).

Each result is written by :class:`ResultRecorder`: the version, the voxel's search index row
(rebuilt from its current result versions) and the item's ``done`` in one transaction. On a
broker (``TL_BUS_URL=amqp://…``) the items go to the stage's queue and the workers' collector
records them (:mod:`.reprocess_bus`).

``--model NAME@VERSION`` pins the ONNX model (infer) or the spaCy pipeline (nlp): the registry
entry must have that version (a re-signed copy of a model under a new version, say), the spaCy
pipeline must be installed at that version, else the run -- and its ``--dry-run`` -- is refused
before anything is done. ``--dry-run`` counts what a run would take and who made
their current results, and changes nothing.

The sealed voxel documents are never changed: ``voxels verify`` stays clean. The extract stage's
embedded parts are not expanded into new child voxels by a reprocess.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import and_, func, insert, select, update

from thunderline.config import Settings
from thunderline.errors import ConfigError, ThunderlineError, reason_of
from thunderline.eventdata import Classification, Classified, ReprocessMark, StoredArtifact, to_wire
from thunderline.events import INGEST_CLASSIFIED, CloudEvent
from thunderline.extract.result import ExtractSummary
from thunderline.flow.stage import Stage
from thunderline.voxel.db import Tables
from thunderline.voxel.errors import VoxelNotFoundError
from thunderline.voxel.results import STAGE_TRAITS, ResultVersion, ResultVersions, producer_of
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.tables import reprocess_items, reprocess_runs

_log = logging.getLogger("thunderline.sources.reprocess")

STAGES: Final = tuple(STAGE_TRAITS)
PENDING, DONE, SKIPPED, FAILED = "pending", "done", "skipped", "failed"
RUNNING, FINISHED = "running", "done"
EVENT_SOURCE: Final = "urn:thunderline:reprocess"


@dataclass(frozen=True)
class ModelPin:
    """``NAME@VERSION`` given with ``--model``."""

    name: str
    version: str

    @classmethod
    def parse(cls, text: str) -> ModelPin:
        """Parse ``NAME@VERSION``.

        Raises:
            ConfigError: not of that form.
        """
        name, at, version = text.partition("@")
        if not (name.strip() and at and version.strip()):
            raise ConfigError(f"--model takes NAME@VERSION, not {text!r}")
        return cls(name.strip(), version.strip())

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class RunInfo:
    """One reprocess run and how far it got."""

    id: str
    stage: str
    model: str | None
    query: str
    state: str
    total: int
    actor: str
    created_unix: float
    updated_unix: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        """Items no longer pending (done, skipped or failed)."""
        return self.total - self.counts.get(PENDING, 0)

    def to_json_dict(self) -> dict[str, Any]:
        """The run as JSON (CLI ``--json`` and the API)."""
        return {**self.__dict__, "finished": self.finished}


class ReprocessRuns(Tables):
    """The ``reprocess_runs`` and ``reprocess_items`` tables."""

    what = "reprocess runs"

    def __enter__(self) -> ReprocessRuns:
        return self

    def create(
        self, stage: str, model: str | None, query: str, ids: Sequence[str], *, actor: str
    ) -> str:
        """A new run over ``ids`` (all pending); its id."""
        run_id = str(uuid.uuid4())
        now = time.time()

        def run(conn: Any) -> None:
            conn.execute(
                insert(reprocess_runs).values(
                    id=run_id,
                    stage=stage,
                    model=model,
                    query=query,
                    state=RUNNING if ids else FINISHED,
                    total=len(ids),
                    actor=actor,
                    created_unix=now,
                    updated_unix=now,
                )
            )
            for start in range(0, len(ids), 1000):
                conn.execute(
                    insert(reprocess_items),
                    [
                        {"run_id": run_id, "voxel_id": v, "state": PENDING, "detail": None}
                        for v in ids[start : start + 1000]
                    ],
                )

        self._run("create", run)
        return run_id

    def get(self, run_id: str) -> RunInfo | None:
        """The run with its counts by item state (None: unknown)."""

        def run(conn: Any) -> RunInfo | None:
            row = (
                conn.execute(select(reprocess_runs).where(reprocess_runs.c.id == run_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            i = reprocess_items.c
            counts = dict(
                conn.execute(
                    select(i.state, func.count()).where(i.run_id == run_id).group_by(i.state)
                ).all()
            )
            return RunInfo(**dict(row), counts={str(k): int(v) for k, v in counts.items()})

        found: RunInfo | None = self._run("read", run)
        return found

    def runs(self, *, limit: int = 50) -> list[RunInfo]:
        """The newest runs first, with their counts."""
        ids: list[str] = self._run(
            "read",
            lambda conn: list(
                conn.scalars(
                    select(reprocess_runs.c.id)
                    .order_by(reprocess_runs.c.created_unix.desc())
                    .limit(limit)
                )
            ),
        )
        return [r for r in (self.get(i) for i in ids) if r is not None]

    def pending(self, run_id: str, *, limit: int, after: str | None = None) -> list[str]:
        """Up to ``limit`` pending voxel ids of the run, in id order (``after``: past that id)."""
        i = reprocess_items.c
        where = and_(i.run_id == run_id, i.state == PENDING)
        if after is not None:
            where = and_(where, i.voxel_id > after)
        stmt = select(i.voxel_id).where(where).order_by(i.voxel_id).limit(limit)
        ids: list[str] = self._run("read", lambda conn: list(conn.scalars(stmt)))
        return ids

    def mark(self, run_id: str, marks: Sequence[tuple[str, str, str | None]]) -> None:
        """Set ``(voxel_id, state, detail)`` of items of the run."""
        if not marks:
            return

        def run(conn: Any) -> None:
            i = reprocess_items.c
            for voxel_id, state, detail in marks:
                conn.execute(
                    update(reprocess_items)
                    .where(and_(i.run_id == run_id, i.voxel_id == voxel_id))
                    .values(state=state, detail=(detail or None) and detail[:2000])
                )
            conn.execute(
                update(reprocess_runs)
                .where(reprocess_runs.c.id == run_id)
                .values(updated_unix=time.time())
            )

        self._run("mark", run)

    def finish(self, run_id: str) -> None:
        """Mark the run done."""
        self._run(
            "finish",
            lambda conn: conn.execute(
                update(reprocess_runs)
                .where(reprocess_runs.c.id == run_id)
                .values(state=FINISHED, updated_unix=time.time())
            ),
        )

    def items(
        self, run_id: str, *, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Items of a run (voxel id, state, detail)."""
        i = reprocess_items.c
        stmt = select(i.voxel_id, i.state, i.detail).where(i.run_id == run_id)
        if state is not None:
            stmt = stmt.where(i.state == state)
        stmt = stmt.order_by(i.voxel_id).limit(limit)
        rows: list[dict[str, Any]] = self._run(
            "read", lambda conn: [dict(r) for r in conn.execute(stmt).mappings()]
        )
        return rows


def matching_ids(store: VoxelStore, query: str) -> Iterator[list[str]]:
    """The voxel ids ``query`` matches, a page at a time (empty query: every voxel).

    Raises:
        QuerySyntaxError: the query is malformed.
    """
    if not query.strip():
        page: list[str] = []
        for voxel_id in store.iter_ids():
            page.append(voxel_id)
            if len(page) >= 1000:
                yield page
                page = []
        if page:
            yield page
        return
    from thunderline.search.engine import Searcher

    yield from Searcher(store.engine).iter_matches(query)


@dataclass
class DryRun:
    """What a run would take: matching voxels, and who made their current results."""

    stage: str
    model: str | None
    query: str
    matching: int = 0
    with_result: int = 0
    producers: dict[str, int] = field(default_factory=dict)
    already: int = 0  # voxels whose current result the pinned model already made

    def to_json_dict(self) -> dict[str, Any]:
        """The counts as JSON."""
        return dict(self.__dict__)


def item_correlation(run_id: str, voxel_id: str) -> str:
    """The correlation id of one run's item: the same for every copy of it (UUID 5 of both).

    The outcome store keeps one DLQ record per correlation id and artifact: copies of an item
    (a resumed run publishes pending items again) fail as one record; another run, its own.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:thunderline:reprocess:{run_id}:{voxel_id}"))


def _output_key(stage: str) -> str:
    return STAGE_TRAITS[stage]


class ResultRecorder:
    """Writes one reprocessed result: the version, the search row and the item, in one transaction.

    The in-process run and the workers' collector (:mod:`.reprocess_bus`) both record through
    it, so a result is current, searchable and its item ``done`` together or not at all.
    :meth:`set_current` moves the current pointer to another stored version the same way: the
    pointer and the search row together.

    Args:
        store: The voxel store (engine, object store for the indexed text, settings).
        results: The result versions over the same engine (made when not given).
    """

    def __init__(self, store: VoxelStore, results: ResultVersions | None = None) -> None:
        self.store = store
        self.results = results or ResultVersions(engine=store.engine)

    def _texts_ahead(
        self, voxel: Voxel, stage: str, result: dict[str, Any]
    ) -> dict[str, str | None]:
        """The text the row will most likely hold once ``result`` is ``stage``'s current one.

        Read now, before the transaction (object store I/O must not hold the database); a text
        the transaction then finds different is read there (:func:`current_docs_for`).
        """
        from thunderline.search.hook import voxel_text
        from thunderline.voxel.results import current_view
        from thunderline.voxel.store import text_sha256

        ahead = current_view(self.results.views([voxel])[0], {stage: result})
        texts: dict[str, str | None] = {}
        if (sha := text_sha256(ahead)) is not None:
            texts[sha] = voxel_text(
                self.store.objects, ahead, self.store.settings.search.max_text_chars
            )
        return texts

    def _reindex(self, conn: Any, voxel: Voxel, texts: dict[str, str | None]) -> None:
        """Rewrite ``voxel``'s search row from its current versions, in ``conn``'s transaction."""
        from thunderline.search.hook import current_docs_for
        from thunderline.search.index import index_voxels

        max_chars = self.store.settings.search.max_text_chars
        index_voxels(conn, current_docs_for(conn, self.store.objects, [voxel], max_chars, texts))

    def record(
        self, voxel: Voxel, stage: str, result: dict[str, Any], *, run_id: str, event_id: str
    ) -> ResultVersion:
        """Add ``result`` as the current version of ``stage`` (once per run and voxel).

        In the same transaction the voxel's search index row is rewritten from its current
        versions (``entity:`` and ``model:`` queries find the new values, the body is the new
        text) and the run's item is marked ``done``. The text is read before the transaction.
        """
        texts = self._texts_ahead(voxel, stage, result)

        def then(conn: Any, version: ResultVersion) -> None:
            self._reindex(conn, voxel, texts)
            i = reprocess_items.c
            conn.execute(
                update(reprocess_items)
                .where(and_(i.run_id == run_id, i.voxel_id == voxel.id))
                .values(state=DONE, detail=version.producer[:2000])
            )
            conn.execute(
                update(reprocess_runs)
                .where(reprocess_runs.c.id == run_id)
                .values(updated_unix=time.time())
            )

        return self.results.add(voxel, stage, result, run_id=run_id, event_id=event_id, then=then)

    def set_current(self, voxel_id: str, stage: str, seq: int) -> bool:
        """Make stored version ``seq`` of ``stage`` current, with the voxel's search row.

        The pointer moves and the search index row is rewritten from the voxel's current
        versions in one transaction, as :meth:`record` does: search, facets and ``entity:`` /
        ``model:`` queries answer what the now current version says, and ``voxels verify
        --all`` finds the row up to date. False: the voxel has no stored version ``seq`` of
        ``stage`` (a stage never reprocessed has none: its sealed result is current).

        Raises:
            VoxelNotFoundError: no such voxel.
        """
        voxel = self.store.get(voxel_id)
        target = next(
            (
                v
                for v in self.results.versions(voxel).get(stage, [])
                if v.seq == seq and v.id is not None
            ),
            None,
        )
        if target is None:
            return False
        texts = self._texts_ahead(voxel, stage, target.result)
        return self.results.set_current(
            voxel.id, stage, seq, then=lambda conn: self._reindex(conn, voxel, texts)
        )


@dataclass(frozen=True)
class NotPrepared:
    """Why one reprocess item could not start: its state (skipped or failed) and the reason."""

    state: str
    reason: str

    @property
    def mark(self) -> tuple[str, str]:
        """The (state, reason) pair the item is marked with."""
        return self.state, self.reason


class Reprocessor:
    """Plans, runs and resumes reprocess runs over one voxel store.

    Args:
        settings: Thunderline settings (the stages take their own parts).
        store: The voxel store (its engine holds the runs and the result versions).
    """

    def __init__(self, settings: Settings, store: VoxelStore) -> None:
        self.settings = settings
        self.store = store
        self.results = ResultVersions(engine=store.engine)
        self.runs = ReprocessRuns(engine=store.engine)
        self.recorder = ResultRecorder(store, self.results)

    # ---- checks -------------------------------------------------------------------------
    def check(self, stage: str, model: str | None) -> ModelPin | None:
        """Refuse an unknown stage, and a model pin that cannot be honoured.

        A pin cannot be honoured when the stage does not take one or the registry does not hold
        the model at that version.

        Raises:
            ConfigError: what is wrong, before anything is done.
        """
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}: {', '.join(STAGES)}")
        from thunderline.runtime import enabled_stage_names

        if stage not in enabled_stage_names(self.settings):
            raise ConfigError(
                f"stage {stage!r} is switched off by the settings "
                "(TL_ENABLE_ML_PIPELINE; infer also needs TL_ONNX_ENABLED)"
            )
        if model is None:
            return None
        pin = ModelPin.parse(model)
        if stage == "extract":
            raise ConfigError("--model applies to --stage infer (ONNX) or nlp (spaCy)")
        if stage == "infer":
            from thunderline.ml.registry import ModelRegistry

            try:
                entry = ModelRegistry.from_settings(self.settings).entry(pin.name)
            except ThunderlineError as exc:  # not in the registry
                raise ConfigError(str(exc), details=exc.details) from exc
            if entry.version != pin.version:
                raise ConfigError(
                    f"model {pin.name} is version {entry.version} in the registry "
                    f"{self.settings.onnx.model_dir}, not {pin.version}",
                    details={"model": pin.name, "version": entry.version},
                )
        if stage == "nlp":
            from thunderline.nlp.errors import NlpModelMissingError
            from thunderline.nlp.stage import pipeline_version
            from thunderline.nlp.worker import model_missing_message

            have = pipeline_version(pin.name)
            if have is None:
                raise NlpModelMissingError(model_missing_message(pin.name))
            if have != pin.version:
                raise ConfigError(
                    f"spaCy pipeline {pin.name} is version {have} here, not {pin.version}",
                    details={"model": pin.name, "version": have},
                )
        return pin

    # ---- dry run ------------------------------------------------------------------------
    def dry_run(self, stage: str, query: str = "", model: str | None = None) -> DryRun:
        """Count what a run would take (nothing is written)."""
        pin = self.check(stage, model)
        report = DryRun(stage=stage, model=model, query=query)
        producers: Counter[str] = Counter()
        for page in matching_ids(self.store, query):
            for voxel_id in page:
                try:
                    voxel = self.store.get(voxel_id)
                except VoxelNotFoundError:
                    continue
                report.matching += 1
                current = self.results.current(voxel, stage)
                if current is not None:
                    report.with_result += 1
                    producers[current.producer] += 1
                    if pin is not None and current.producer == str(pin):
                        report.already += 1
        report.producers = dict(producers.most_common())
        return report

    # ---- runs ---------------------------------------------------------------------------
    def start(
        self, stage: str, query: str = "", model: str | None = None, *, actor: str = "cli"
    ) -> str:
        """Plan a run (its items fixed now); its id. Run it with :meth:`run`."""
        self.check(stage, model)
        ids = [v for page in matching_ids(self.store, query) for v in page]
        return self.runs.create(stage, model, query, ids, actor=actor)

    def info(self, run_id: str) -> RunInfo:
        """The run (its counts included).

        Raises:
            ConfigError: no such run.
        """
        found = self.runs.get(run_id)
        if found is None:
            raise ConfigError(f"no reprocess run {run_id!r}")
        return found

    def _stage(self, stage: str, pin: ModelPin | None) -> Stage:
        # the infer stage honours the pin each event carries (ReprocessMark.model)
        objects = self.store.objects
        settings = self.settings
        if stage == "nlp" and pin is not None:
            spacy = settings.spacy.model_copy(update={"model": pin.name})
            settings = settings.model_copy(update={"spacy": spacy})
        from thunderline.runtime import build_stages

        built = build_stages(settings, objects, [stage], concurrency=1)
        if not built:  # pragma: no cover - build_stages refuses a switched-off stage itself
            raise ConfigError(f"stage {stage!r} is not available")
        return built[0]

    async def run(
        self,
        run_id: str,
        *,
        batch: int = 8,
        on_progress: Callable[[RunInfo], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> RunInfo:
        """Work through the run's pending items; a finished run returns at once.

        Resumable: call again with the same id after a stop. On a broker (``TL_BUS_URL=amqp://``)
        the items are published to the stage's queue for the workers instead
        (:func:`thunderline.sources.reprocess_bus.run_over_bus`).
        """
        from thunderline.bus.factory import keeps_messages

        if keeps_messages(self.settings):
            from thunderline.sources.reprocess_bus import run_over_bus

            return await run_over_bus(self, run_id, on_progress=on_progress, stop=stop)
        info = await asyncio.to_thread(self.info, run_id)
        pin = self.check(info.stage, info.model)
        if info.counts.get(PENDING, 0) == 0:
            if info.state != FINISHED:
                await asyncio.to_thread(self.runs.finish, run_id)
            return await asyncio.to_thread(self.info, run_id)
        stage = self._stage(info.stage, pin)
        await stage.setup()
        try:
            while stop is None or not stop.is_set():
                ids = await asyncio.to_thread(self.runs.pending, run_id, limit=batch)
                if not ids:
                    await asyncio.to_thread(self.runs.finish, run_id)
                    break
                await self._batch(stage, info, pin, ids)
                if on_progress is not None:
                    on_progress(await asyncio.to_thread(self.info, run_id))
        finally:
            await stage.close()
        return await asyncio.to_thread(self.info, run_id)

    async def _batch(
        self, stage: Stage, info: RunInfo, pin: ModelPin | None, ids: list[str]
    ) -> None:
        marks: list[tuple[str, str, str | None]] = []
        work: list[tuple[Voxel, CloudEvent]] = []
        for voxel_id in ids:
            prepared = await asyncio.to_thread(self.prepare, voxel_id, info)
            if isinstance(prepared, tuple):
                work.append(prepared)
            else:
                marks.append((voxel_id, *prepared.mark))
        outcomes = await stage.handle_batch([e for _, e in work]) if work else []
        key = _output_key(info.stage)
        for (voxel, _event), outcome in zip(work, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                marks.append((voxel.id, FAILED, f"{reason_of(outcome)}: {outcome}"))
                continue
            made = next((o for o in outcome if isinstance(o.data.get(key), dict)), None)
            if made is None:
                notes = [n.get("note", "") for o in outcome for n in o.data.get("notes") or []]
                marks.append((voxel.id, SKIPPED, "; ".join(notes) or "the stage did not apply"))
                continue
            result = made.data[key]
            producer = producer_of(info.stage, result)
            if pin is not None and not producer.startswith(str(pin)):
                marks.append((voxel.id, FAILED, f"made by {producer}, not the pinned {pin}"))
                continue
            # the version, the voxel's search index row and the item's state: one transaction
            await asyncio.to_thread(
                self.recorder.record, voxel, info.stage, result, run_id=info.id, event_id=made.id
            )
        await asyncio.to_thread(self.runs.mark, info.id, marks)

    def prepare(self, voxel_id: str, info: RunInfo) -> tuple[Voxel, CloudEvent] | NotPrepared:
        """Load one item's voxel and build its event, or say why the item cannot run.

        Both the in-process run and the run over the workers start each item here.
        """
        try:
            voxel = self.store.get(voxel_id)
            return voxel, self.event_for(voxel, info.stage, info)
        except VoxelNotFoundError:
            return NotPrepared(SKIPPED, "the voxel was deleted")
        except ThunderlineError as exc:
            return NotPrepared(FAILED, f"{reason_of(exc)}: {exc}")
        except ValidationError as exc:  # a sealed document without a classification
            return NotPrepared(FAILED, f"invalid: {exc.errors()[0]['msg']}")

    def event_for(self, voxel: Voxel, stage: str, run: RunInfo | None = None) -> CloudEvent:
        """The ``system.ingest.classified`` event a stage takes for a stored voxel.

        It carries the voxel's artifact and classification from the sealed document and the current
        extract result, caused by the voxel's own event. For ``run`` it also carries the
        :class:`~thunderline.eventdata.ReprocessMark` naming the run, the voxel and the pinned
        model, and the item's own correlation id (:func:`item_correlation`), so a failure is a DLQ
        record of this run's item, not folded into the voxel's ingest; else the voxel's.
        """
        traits = voxel.traits
        artifact = traits.get("artifact") or {}
        extract: ExtractSummary | None = None
        if stage != "extract":
            current = self.results.current(voxel, "extract")
            if current is not None:
                extract = ExtractSummary.model_validate(current.result)
        data = Classified(
            artifact=StoredArtifact(
                name=str(artifact.get("name") or voxel.id),
                source=artifact.get("source"),
                size=voxel.payload_size,
                sha256=voxel.payload_sha256,
                payload_ref=voxel.payload_ref,
            ),
            classification=Classification.model_validate(traits.get("classification") or {}),
            route=[stage],
            extract=extract,
            reprocess=None
            if run is None
            else ReprocessMark(run_id=run.id, voxel_id=voxel.id, stage=stage, model=run.model),
        )
        event = CloudEvent(
            type=INGEST_CLASSIFIED,
            source=EVENT_SOURCE,
            data=to_wire(data),
            correlationid=voxel.correlation_id
            if run is None
            else item_correlation(run.id, voxel.id),
            causationid=voxel.event_id,
        )
        event._typed_data = data
        return event

    def versions(self, voxel_id: str) -> dict[str, list[ResultVersion]]:
        """Every result version of a voxel by stage (see :class:`ResultVersions`)."""
        return self.results.versions(self.store.get(voxel_id))
