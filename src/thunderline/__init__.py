"""Thunderline: turn raw files into trustworthy, queryable ML results.

The public API. Everything a user or the CLI needs is importable from here; modules not named
here are internal.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # static view of the lazy names below
    from thunderline.bus import EventBus, MemoryBus
    from thunderline.classify import Classification, ClassifyStage, MagikaClassifier
    from thunderline.config import OverflowPolicy, Settings, load_settings
    from thunderline.errors import (
        ArtifactError,
        BackendError,
        ChecksumMismatch,
        ConfigError,
        EventContractError,
        MalformedEventError,
        PayloadNotFound,
        StageError,
        StageTimeoutError,
        ThunderlineError,
    )
    from thunderline.eventdata import (
        Artifact,
        Classified,
        DlqRecord,
        EventData,
        InferenceCompleted,
        IngestRequest,
        NlpProcessed,
        VoxelCreated,
        data_of,
        extend,
    )
    from thunderline.events import CloudEvent, new_event
    from thunderline.flow import Outcome, Pipeline, Stage, StageOptions
    from thunderline.journal import Journal
    from thunderline.objects import LocalObjectStore, ObjectStore
    from thunderline.report import RunReport
    from thunderline.runtime import Runtime

#: Public name -> module that defines it. Imported on first use (PEP 562), so that light entry
#: points such as the NLP worker do not load Magika, the engine or the stores.
_EXPORTS: dict[str, str] = {
    "Artifact": "thunderline.eventdata",
    "ArtifactError": "thunderline.errors",
    "BackendError": "thunderline.errors",
    "ChecksumMismatch": "thunderline.errors",
    "Classification": "thunderline.classify",
    "Classified": "thunderline.eventdata",
    "ClassifyStage": "thunderline.classify",
    "CloudEvent": "thunderline.events",
    "ConfigError": "thunderline.errors",
    "DlqRecord": "thunderline.eventdata",
    "EventBus": "thunderline.bus",
    "EventContractError": "thunderline.errors",
    "EventData": "thunderline.eventdata",
    "InferenceCompleted": "thunderline.eventdata",
    "IngestRequest": "thunderline.eventdata",
    "Journal": "thunderline.journal",
    "LocalObjectStore": "thunderline.objects",
    "MagikaClassifier": "thunderline.classify",
    "MalformedEventError": "thunderline.errors",
    "MemoryBus": "thunderline.bus",
    "NlpProcessed": "thunderline.eventdata",
    "ObjectStore": "thunderline.objects",
    "Outcome": "thunderline.flow",
    "OverflowPolicy": "thunderline.config",
    "PayloadNotFound": "thunderline.errors",
    "Pipeline": "thunderline.flow",
    "RunReport": "thunderline.report",
    "Runtime": "thunderline.runtime",
    "Settings": "thunderline.config",
    "Stage": "thunderline.flow",
    "StageError": "thunderline.errors",
    "StageOptions": "thunderline.flow",
    "StageTimeoutError": "thunderline.errors",
    "ThunderlineError": "thunderline.errors",
    "VoxelCreated": "thunderline.eventdata",
    "data_of": "thunderline.eventdata",
    "extend": "thunderline.eventdata",
    "load_settings": "thunderline.config",
    "new_event": "thunderline.events",
}

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'thunderline' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Artifact",
    "ArtifactError",
    "BackendError",
    "ChecksumMismatch",
    "Classification",
    "Classified",
    "ClassifyStage",
    "CloudEvent",
    "ConfigError",
    "DlqRecord",
    "EventBus",
    "EventContractError",
    "EventData",
    "InferenceCompleted",
    "IngestRequest",
    "Journal",
    "LocalObjectStore",
    "MagikaClassifier",
    "MalformedEventError",
    "MemoryBus",
    "NlpProcessed",
    "ObjectStore",
    "Outcome",
    "OverflowPolicy",
    "PayloadNotFound",
    "Pipeline",
    "RunReport",
    "Runtime",
    "Settings",
    "Stage",
    "StageError",
    "StageOptions",
    "StageTimeoutError",
    "ThunderlineError",
    "VoxelCreated",
    "__version__",
    "data_of",
    "extend",
    "load_settings",
    "new_event",
]
