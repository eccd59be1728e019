"""Thunderline: turn raw files into trustworthy, queryable ML results.

The public API. Everything a user or the CLI needs is importable from here; modules not named
here are internal.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # static view of the lazy names below
    from thunderline.bus import EventBus, MemoryBus
    from thunderline.bus.rabbitmq import RabbitMQBus
    from thunderline.classify import Classification, ClassifyStage, MagikaClassifier
    from thunderline.config import OverflowPolicy, Settings, load_settings
    from thunderline.errors import (
        ArtifactError,
        BackendError,
        ChecksumMismatch,
        ConfigError,
        MalformedEventError,
        StageError,
        StageTimeoutError,
        ThunderlineError,
    )
    from thunderline.events import CloudEvent, new_event
    from thunderline.flow import Outcome, Pipeline, Stage, StageOptions
    from thunderline.journal import Journal
    from thunderline.objects import LocalObjectStore, ObjectStore
    from thunderline.report import RunReport
    from thunderline.runtime import Runtime
    from thunderline.worker import Submitter, Worker

#: Public name -> module that defines it. Imported on first use (PEP 562), so that light entry
#: points such as the NLP worker do not load Magika, the engine or the stores.
_EXPORTS: dict[str, str] = {
    "ArtifactError": "thunderline.errors",
    "BackendError": "thunderline.errors",
    "ChecksumMismatch": "thunderline.errors",
    "Classification": "thunderline.classify",
    "ClassifyStage": "thunderline.classify",
    "CloudEvent": "thunderline.events",
    "ConfigError": "thunderline.errors",
    "EventBus": "thunderline.bus",
    "Journal": "thunderline.journal",
    "LocalObjectStore": "thunderline.objects",
    "MagikaClassifier": "thunderline.classify",
    "MalformedEventError": "thunderline.errors",
    "MemoryBus": "thunderline.bus",
    "ObjectStore": "thunderline.objects",
    "Outcome": "thunderline.flow",
    "OverflowPolicy": "thunderline.config",
    "Pipeline": "thunderline.flow",
    "RabbitMQBus": "thunderline.bus.rabbitmq",
    "RunReport": "thunderline.report",
    "Runtime": "thunderline.runtime",
    "Settings": "thunderline.config",
    "Stage": "thunderline.flow",
    "StageError": "thunderline.errors",
    "StageOptions": "thunderline.flow",
    "StageTimeoutError": "thunderline.errors",
    "Submitter": "thunderline.worker",
    "ThunderlineError": "thunderline.errors",
    "Worker": "thunderline.worker",
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
    "ArtifactError",
    "BackendError",
    "ChecksumMismatch",
    "Classification",
    "ClassifyStage",
    "CloudEvent",
    "ConfigError",
    "EventBus",
    "Journal",
    "LocalObjectStore",
    "MagikaClassifier",
    "MalformedEventError",
    "MemoryBus",
    "ObjectStore",
    "Outcome",
    "OverflowPolicy",
    "Pipeline",
    "RabbitMQBus",
    "RunReport",
    "Runtime",
    "Settings",
    "Stage",
    "StageError",
    "StageOptions",
    "StageTimeoutError",
    "Submitter",
    "ThunderlineError",
    "Worker",
    "__version__",
    "load_settings",
    "new_event",
]
