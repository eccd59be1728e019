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

``--model NAME@VERSION`` pins the ONNX model (infer) or the spaCy pipeline (nlp): the registry
entry must have that version (a re-signed copy of a model under a new version, say), else the
run is refused before anything is done. ``--dry-run`` counts what a run would take and who made
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
from thunderline.eventdata import Classification, Classified, StoredArtifact, to_wire
from thunderline.events import INGEST_CLASSIFIED, CloudEvent
from thunderline.extract.result import ExtractSummary
from thunderline.flow.stage import Stage
from thunderline.ml.registry import ModelEntry
from thunderline.ml.stage import InferStage
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

    def pending(self, run_id: str, *, limit: int) -> list[str]:
        """Up to ``limit`` pending voxel ids of the run."""
        i = reprocess_items.c
        stmt = (
            select(i.voxel_id)
            .where(and_(i.run_id == run_id, i.state == PENDING))
            .order_by(i.voxel_id)
            .limit(limit)
        )
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


class _PinnedInferStage(InferStage):
    """The infer stage with every artifact sent to one model (``--model``)."""

    def __init__(self, settings: Settings, store: Any, pin: ModelPin) -> None:
        super().__init__(settings, store)
        self.pin = pin

    def model_for(self, event: CloudEvent) -> ModelEntry:
        """The pinned model's entry, whatever the content."""
        self.registry.refresh()
        return self.registry.entry(self.pin.name)


def _output_key(stage: str) -> str:
    return STAGE_TRAITS[stage]


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
        objects = self.store.objects
        if stage == "infer" and pin is not None:
            return _PinnedInferStage(self.settings, objects, pin)
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

        Resumable: call again with the same id after a stop.
        """
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
            try:
                voxel = await asyncio.to_thread(self.store.get, voxel_id)
                event = await asyncio.to_thread(self.event_for, voxel, info.stage)
            except VoxelNotFoundError:
                marks.append((voxel_id, SKIPPED, "the voxel was deleted"))
                continue
            except ThunderlineError as exc:
                marks.append((voxel_id, FAILED, f"{reason_of(exc)}: {exc}"))
                continue
            except ValidationError as exc:  # a sealed document without a classification
                marks.append((voxel_id, FAILED, f"invalid: {exc.errors()[0]['msg']}"))
                continue
            work.append((voxel, event))
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
            version = await asyncio.to_thread(
                self.results.add, voxel, info.stage, result, run_id=info.id, event_id=made.id
            )
            marks.append((voxel.id, DONE, version.producer))
        await asyncio.to_thread(self.runs.mark, info.id, marks)

    def event_for(self, voxel: Voxel, stage: str) -> CloudEvent:
        """The ``system.ingest.classified`` event a stage takes for a stored voxel.

        It carries the voxel's artifact and classification from the sealed document, the current
        extract result, the voxel's correlation id, caused by the voxel's own event.
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
        )
        event = CloudEvent(
            type=INGEST_CLASSIFIED,
            source=EVENT_SOURCE,
            data=to_wire(data),
            correlationid=voxel.correlation_id,
            causationid=voxel.event_id,
        )
        event._typed_data = data
        return event

    def versions(self, voxel_id: str) -> dict[str, list[ResultVersion]]:
        """Every result version of a voxel by stage (see :class:`ResultVersions`)."""
        return self.results.versions(self.store.get(voxel_id))
