"""Thunderline: turn raw files into trustworthy, queryable ML results.

The public API. Everything a user or the CLI needs is importable from here; modules not named
here are internal.
"""

from thunderline.bus import EventBus, MemoryBus
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

__version__ = "0.1.0"

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
    "RunReport",
    "Runtime",
    "Settings",
    "Stage",
    "StageError",
    "StageOptions",
    "StageTimeoutError",
    "ThunderlineError",
    "__version__",
    "load_settings",
    "new_event",
]
