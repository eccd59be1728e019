"""Wiring: settings in, a running pipeline out (bus, object store, stages, journal).

The CLI and the tests use :class:`Runtime`. :data:`WIRING` is the one table that says which
stages exist (in route order), which class serves each and when each is on; every stage's
options (batch size, batch timeout, concurrency, timeout) come from settings
(:meth:`Settings.stage_budget`), and :func:`cpu_budget` says how the cores are shared.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from thunderline.bus.factory import open_bus
from thunderline.classify.admission import error_for_os
from thunderline.classify.stage import ClassifyStage
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.dlq.record import dead_letter
from thunderline.errors import ArtifactError, ConfigError
from thunderline.eventdata import Artifact, IngestRequest, typed_event
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, CloudEvent
from thunderline.extract.stage import ExtractStage
from thunderline.flow.engine import Pipeline
from thunderline.flow.stage import Stage, StageOptions, StoreStage
from thunderline.ingestor import SUBMIT_SOURCE, AdmitsFiles
from thunderline.journal import Journal
from thunderline.ml.stage import InferStage
from thunderline.nlp.stage import NlpStage
from thunderline.objects.base import ObjectStore
from thunderline.objects.factory import open_object_store
from thunderline.obs import metrics
from thunderline.obs.heap import freeze_after_startup
from thunderline.outcomes import OutcomeStore
from thunderline.voxel.stage import PackageStage

_log = logging.getLogger("thunderline.runtime")


@dataclass(frozen=True)
class StageSpec:
    """One row of the wiring table: a stage name, its class and when it is on."""

    name: str
    cls: type[StoreStage]
    enabled: Callable[[Settings], bool]
    when: str  # the same condition in words (``thunderline stages show``)

    def options(self, settings: Settings) -> StageOptions:
        """The stage's options (batch size, concurrency, timeout) from the settings."""
        return self.cls.options_from(settings)


#: Every stage, in route order. ``classify`` runs first for every artifact; the routes
#: (``TL_ROUTES``) keep only the stages that are on here.
WIRING: tuple[StageSpec, ...] = (
    StageSpec("classify", ClassifyStage, lambda s: True, "always"),
    StageSpec(
        "extract",
        ExtractStage,
        lambda s: s.enable_ml_pipeline,
        "TL_ENABLE_ML_PIPELINE (routes need Magika labels)",
    ),
    StageSpec("nlp", NlpStage, lambda s: s.enable_ml_pipeline, "TL_ENABLE_ML_PIPELINE"),
    StageSpec(
        "infer",
        InferStage,
        lambda s: s.enable_ml_pipeline and s.onnx.enabled,
        "TL_ENABLE_ML_PIPELINE and TL_ONNX_ENABLED",
    ),
    StageSpec("package", PackageStage, lambda s: True, "always"),
)


def enabled_stage_names(settings: Settings) -> list[str]:
    """The stages these settings switch on, in route order (the one place this is decided)."""
    return [spec.name for spec in WIRING if spec.enabled(settings)]


def build_stages(
    settings: Settings,
    store: ObjectStore,
    names: Sequence[str] | None = None,
    *,
    concurrency: int | None = None,
    stored_only: bool = False,
) -> list[Stage]:
    """The one stage builder: an instance of each named stage, with options from settings.

    The names default to every enabled stage; a name outside :data:`WIRING`, such as ``collect``, is
    skipped. ``concurrency`` overrides each stage's own. ``stored_only`` (a worker) classifies only
    stored payloads. A named stage the settings switch off is a :class:`ConfigError`.
    """
    enabled = enabled_stage_names(settings)
    wanted = enabled if names is None else list(names)
    stages: list[Stage] = []
    for spec in WIRING:
        if spec.name not in wanted:
            continue
        if spec.name not in enabled:
            raise ConfigError(f"stage {spec.name!r} is switched off by the settings ({spec.when})")
        stage: Stage
        if spec.cls is ClassifyStage:
            stage = ClassifyStage(
                settings, store, available_stages=enabled[1:], stored_only=stored_only
            )
        elif spec.cls is ExtractStage:
            stage = ExtractStage(settings, store, available_stages=enabled[1:])
        else:
            stage = spec.cls(settings, store)
        if concurrency is not None:
            stage.options = stage.options.model_copy(update={"concurrency": concurrency})
        stages.append(stage)
    return stages


@dataclass(frozen=True)
class CpuBudget:
    """How the pipeline shares the cores (ARCHITECTURE §8), from settings."""

    cores: int
    magika_calls: int  # Magika's session uses every core: one call at a time
    classify_batches: int  # batches admitted and stored while another is in Magika
    spacy_processes: int
    extract_processes: int
    onnx_threads: int  # intra-op threads per ONNX session (0: infer off)

    def rows(self) -> list[tuple[str, str]]:
        """The budget as (what, how many) rows for ``thunderline doctor``."""
        return [
            ("cores", str(self.cores)),
            ("Magika calls at a time", str(self.magika_calls)),
            ("classify batches in flight", str(self.classify_batches)),
            ("spaCy worker processes", str(self.spacy_processes)),
            ("extraction worker processes", str(self.extract_processes)),
            ("ONNX intra-op threads per session", str(self.onnx_threads)),
        ]


def cpu_budget(settings: Settings) -> CpuBudget:
    """How the enabled stages share this machine's cores (what ``doctor`` prints)."""
    names = enabled_stage_names(settings)
    cores = os.cpu_count() or 1
    return CpuBudget(
        cores=cores,
        magika_calls=1 if settings.enable_ml_pipeline else 0,
        classify_batches=settings.classify.concurrency,
        spacy_processes=settings.spacy.workers if "nlp" in names else 0,
        extract_processes=settings.extract.workers if "extract" in names else 0,
        onnx_threads=min(settings.onnx.threadpool, cores) if "infer" in names else 0,
    )


def ingest_event(candidate: Candidate) -> CloudEvent:
    """The ``ui.command.ingest.received`` event for one local file."""
    path = candidate.path.absolute()
    request = IngestRequest(
        artifact=Artifact(
            name=path.name, path=str(path), root=str(candidate.root), source=path.as_uri()
        ),
        route=["classify"],
    )
    return typed_event(INGEST_RECEIVED, request, source="urn:thunderline:cli")


def walk_failure(candidate: Candidate) -> CloudEvent:
    """The DLQ record of a path the walk could not read (its ingest event as the original)."""
    assert candidate.error is not None
    error = error_for_os(candidate.path, candidate.error)
    try:
        raise error from candidate.error
    except ArtifactError as raised:  # give the record a traceback
        metrics.DLQ_TOTAL.labels("classify", raised.reason).inc()
        return dead_letter("classify", DLQ_CLASSIFY, raised, original=ingest_event(candidate))


class Runtime(AdmitsFiles):
    """A configured pipeline: ``async with Runtime(settings) as rt: await rt.submit(...)``.

    The :class:`~thunderline.ingestor.Ingestor` of the in-process bus: the stages run here.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_terminal: Callable[[CloudEvent], object] | None = None,
        stages: Sequence[Stage] | None = None,
        outcomes: OutcomeStore | None = None,
        source: str = SUBMIT_SOURCE,
    ) -> None:
        self.settings = settings
        self.source = source
        settings.home.mkdir(parents=True, exist_ok=True)
        self.store = open_object_store(settings)
        self.journal = Journal(
            settings.home, max_bytes=settings.journal.max_bytes, keep=settings.journal.keep
        )
        if outcomes is None:  # also records reprocess results (a replayed reprocess failure)
            from thunderline.sources.reprocess_bus import ReprocessOutcomes

            outcomes = ReprocessOutcomes(settings, self.store)
            self._owns_outcomes = True
        else:
            self._owns_outcomes = False
        self.outcomes = outcomes
        self.stages = list(stages) if stages is not None else build_stages(settings, self.store)
        self.pipeline: Pipeline
        self.bus = open_bus(settings, on_drop=self._on_drop)
        self.pipeline = Pipeline(
            self.bus,
            self.stages,
            max_demand=settings.max_demand,
            shutdown_timeout_s=settings.shutdown_timeout_s,
            on_terminal=on_terminal,
            journal=self.journal,
            outcomes=self.outcomes,
            malloc_trim_mb=settings.malloc_trim_mb,
        )

    async def _on_drop(self, topic: str, payload: bytes) -> None:
        await self.pipeline.on_overflow_drop(topic, payload)

    @property
    def stage_names(self) -> list[str]:
        """Names of the running stages, in route order."""
        return [stage.name for stage in self.stages]

    async def __aenter__(self) -> Runtime:
        try:
            await self.pipeline.start()
        except BaseException:
            await self._release()
            raise
        freeze_after_startup()  # the stages' models are loaded: out of the collector's walk
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.pipeline.stop(drain=True)
        finally:
            await self._release()

    async def _release(self) -> None:
        """Close the bus, the journal and the outcome store (also after a failed start)."""
        try:
            await self.bus.close()
        finally:
            self.journal.close()
            if self._owns_outcomes:
                self.outcomes.close()

    @property
    def runtime(self) -> Runtime:
        """This runtime (the :class:`Ingestor` protocol's access to the in-process pipeline)."""
        return self

    async def submit(self, event: CloudEvent, *, block: bool = True) -> None:
        """Submit one event to the pipeline (waits for room when ``block``)."""
        await self.pipeline.submit(event, block=block)

    async def submit_files(self, candidates: Iterable[Candidate]) -> int:
        """Submit each candidate as it comes (a stream: nothing is listed first).

        One that could not be walked becomes one DLQ record. Returns how many were submitted.
        """
        n = 0
        for candidate in candidates:
            if candidate.skipped:
                continue
            if candidate.error is not None:
                await self.submit(walk_failure(candidate))
            else:
                await self.submit(ingest_event(candidate))
            n += 1
        return n

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Wait until every submitted artifact has ended (raises on timeout)."""
        await self.pipeline.wait_idle(timeout_s)
