"""Wiring: settings in, a running pipeline out (bus, object store, stages, journal).

The CLI and the tests use :class:`Runtime`; it is the one place that knows which stage class
serves which stage name and which backends a URL selects.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from thunderline.bus.base import EventBus
from thunderline.bus.memory import MemoryBus
from thunderline.classify.stage import ML_STAGES, ClassifyStage
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.events import INGEST_RECEIVED, CloudEvent, new_event
from thunderline.flow.engine import Pipeline
from thunderline.flow.stage import Stage
from thunderline.journal import Journal
from thunderline.objects.base import ObjectStore
from thunderline.objects.local import LocalObjectStore
from thunderline.outcomes import OutcomeStore

_log = logging.getLogger("thunderline.runtime")

#: Stage name -> "module:Class" of the stages after classify, in pipeline order.
STAGE_CLASSES: dict[str, str] = {
    "nlp": "thunderline.nlp.stage:NlpStage",
    "infer": "thunderline.ml.stage:InferStage",
    "package": "thunderline.voxel.stage:PackageStage",
}


def open_object_store(settings: Settings) -> ObjectStore:
    """The payload store the settings select (``file://`` default, ``s3://`` for scale-out)."""
    try:
        factory = importlib.import_module("thunderline.objects.factory")
    except ModuleNotFoundError:
        factory = None
    if factory is not None:
        store: ObjectStore = factory.open_object_store(settings)
        return store
    url = settings.resolved_object_store_url
    if not url.startswith("file://"):
        raise ConfigError(f"unsupported object store URL {url!r}")
    return LocalObjectStore(Path(url.removeprefix("file://")))


def open_bus(settings: Settings, on_drop: Any = None) -> EventBus:
    url = settings.bus_url
    if url.startswith("memory://"):
        return MemoryBus(settings.queue_max, settings.overflow_policy, on_drop)
    raise ConfigError(
        f"unsupported bus URL {url!r}: this build ships the in-process bus (memory://); "
        "the Redis Streams backend is part of the scale-out work"
    )


def enabled_stage_names(settings: Settings) -> list[str]:
    """The stages after classify that these settings switch on."""
    names = []
    for name in STAGE_CLASSES:
        if name in ML_STAGES and not settings.enable_ml_pipeline:
            continue
        if name == "infer" and not settings.onnx_enabled:
            continue
        names.append(name)
    return names


StageFactory = Callable[[Settings, ObjectStore], Stage]


def _load_stage_class(name: str) -> StageFactory | None:
    module_name, _, class_name = STAGE_CLASSES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            _log.debug("stage %s is not installed in this build", name)
            return None
        raise
    factory: StageFactory = getattr(module, class_name)
    return factory


def build_stages(settings: Settings, store: ObjectStore) -> list[Stage]:
    later: list[Stage] = []
    for name in enabled_stage_names(settings):
        cls = _load_stage_class(name)
        if cls is not None:
            later.append(cls(settings, store))
    classify = ClassifyStage(settings, store, available_stages=[s.name for s in later])
    return [classify, *later]


def ingest_event(candidate: Candidate) -> CloudEvent:
    """The ``ui.command.ingest.received`` event for one local file."""
    path = candidate.path.absolute()
    return new_event(
        INGEST_RECEIVED,
        {
            "artifact": {
                "name": path.name,
                "path": str(path),
                "root": str(candidate.root),
                "size": None,
                "sha256": None,
                "payload_ref": None,
                "source": path.as_uri(),
            },
            "route": ["classify"],
        },
        source="urn:thunderline:cli",
    )


class Runtime:
    """A configured pipeline: ``async with Runtime(settings) as rt: await rt.submit(...)``."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_terminal: Callable[[CloudEvent], object] | None = None,
        stages: Sequence[Stage] | None = None,
        outcomes: OutcomeStore | None = None,
    ) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.store = open_object_store(settings)
        self.journal = Journal(settings.home)
        self.outcomes = outcomes if outcomes is not None else OutcomeStore(settings)
        self._owns_outcomes = outcomes is None
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
        )

    async def _on_drop(self, topic: str, payload: bytes) -> None:
        await self.pipeline.on_overflow_drop(topic, payload)

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    async def __aenter__(self) -> Runtime:
        await self.pipeline.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pipeline.stop(drain=True)
        self.journal.close()
        if self._owns_outcomes:
            self.outcomes.close()

    async def submit(self, event: CloudEvent) -> None:
        await self.pipeline.submit(event)

    async def submit_files(self, candidates: Iterable[Candidate]) -> int:
        n = 0
        for candidate in candidates:
            if candidate.skipped:
                continue
            await self.submit(ingest_event(candidate))
            n += 1
        return n

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        await self.pipeline.wait_idle(timeout_s)
