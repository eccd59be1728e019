"""The voxel: one artifact, its ML results, its payload address, checksums and lineage.

A :class:`Voxel` is immutable. Its ``checksums.metadata_sha256`` is the SHA-256 of the
canonical JSON of every other field (:func:`canonical_json`: sorted keys, no spaces, UTF-8), so
metadata tampering is caught the same way as payload tampering.

Coordinates are polymorphic and validated by their key set:

* ``{t, x, y, z}`` -- :class:`SpatialCoords` (sensor-like sources that carry a position);
* ``{t, channel, position}`` -- :class:`ChannelCoords` (the default for files: ``channel`` is
  the content group, ``position`` the member index inside a parent archive, else 0).
"""

from __future__ import annotations

import hashlib
import re
import weakref
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from thunderline import names

SCHEMA_VERSION: Final = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_sha256(value: str) -> bool:
    # a compiled pattern, not a per-character loop: this runs for every checksum of every
    # voxel sealed (a tenth of the package stage's CPU as a generator expression)
    return _SHA256.fullmatch(value) is not None


class SpatialCoords(BaseModel):
    """``{t, x, y, z}``: a time and a point in space."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    t: float
    x: float
    y: float
    z: float

    @property
    def kind(self) -> Literal["spatial"]:
        """Always ``"spatial"``: the tag that tells these coordinates from channel ones."""
        return "spatial"


class ChannelCoords(BaseModel):
    """``{t, channel, position}``: a time, a named channel and a position within it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    t: float
    channel: str = Field(min_length=1, max_length=128)
    position: int = Field(ge=0)

    @property
    def kind(self) -> Literal["channel"]:
        """Always ``"channel"``: the tag that tells these coordinates from spatial ones."""
        return "channel"


def _coords_kind(value: Any) -> str | None:
    if isinstance(value, SpatialCoords | ChannelCoords):
        return value.kind
    keys = set(value) if isinstance(value, dict) else set()
    if keys == {"t", "x", "y", "z"}:
        return "spatial"
    if keys == {"t", "channel", "position"}:
        return "channel"
    return None


Coords = Annotated[
    Annotated[SpatialCoords, Tag("spatial")] | Annotated[ChannelCoords, Tag("channel")],
    Discriminator(
        _coords_kind,
        custom_error_type="coords_form",
        custom_error_message="coords must be {t, x, y, z} or {t, channel, position}",
    ),
]


class Checksums(BaseModel):
    """SHA-256 of the payload bytes and of the canonical voxel metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    payload_sha256: str
    metadata_sha256: str

    @field_validator("payload_sha256", "metadata_sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _is_sha256(value):
            raise ValueError("must be 64 lower-case hex digits")
        return value


class Lineage(BaseModel):
    """Where a voxel comes from: the events of its chain and its parent voxels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parent_event_ids: tuple[str, ...] = ()
    parent_voxel_ids: tuple[str, ...] = ()

    @field_validator("parent_event_ids", "parent_voxel_ids")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("ids must be unique")
        return value


class Voxel(BaseModel):
    """One stored artifact with its ML results (the DAG truth layer's node)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=36, max_length=36)
    ts: datetime
    source: str = Field(min_length=1)
    coords: Coords
    traits: dict[str, Any] = Field(default_factory=dict)
    payload_ref: str
    payload_size: int = Field(ge=0)
    checksums: Checksums
    lineage: Lineage = Field(default_factory=Lineage)
    correlation_id: str = Field(min_length=1)
    causation_id: str | None = None
    event_id: str = Field(min_length=1, description="The event the voxel was packaged from.")
    schema_version: int = SCHEMA_VERSION

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("ts must be timezone-aware")
        return value.astimezone(UTC)

    @field_validator("payload_ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        prefix, _, digest = value.partition(":")
        if prefix != "sha256" or not _is_sha256(digest):
            raise ValueError("payload_ref must be 'sha256:<64 hex digits>'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Voxel:
        if self.payload_ref != f"sha256:{self.checksums.payload_sha256}":
            raise ValueError("payload_ref does not match checksums.payload_sha256")
        if self.id in self.lineage.parent_voxel_ids:
            raise ValueError("a voxel cannot be its own parent")
        return self

    @property
    def payload_sha256(self) -> str:
        """The SHA-256 (hex) of the payload bytes, from ``checksums``."""
        return self.checksums.payload_sha256

    @property
    def label(self) -> str | None:
        """The label of the ``classification`` trait, or None if the voxel is unclassified."""
        classification = self.traits.get("classification")
        if isinstance(classification, dict):
            label = classification.get("label")
            return str(label) if label is not None else None
        return None

    def metadata(self) -> dict[str, Any]:
        """Every field except ``checksums.metadata_sha256``, JSON-ready."""
        doc = self.model_dump(mode="json")
        doc["checksums"] = {"payload_sha256": self.checksums.payload_sha256}
        return doc

    def compute_metadata_sha256(self) -> str:
        """The SHA-256 of this voxel's metadata as it is now (to compare with the stored one)."""
        return metadata_sha256(self.metadata())

    def to_json(self) -> str:
        """The canonical JSON of the whole voxel (stored as the voxel's document)."""
        return canonical_json(self.model_dump(mode="json"))


def canonical_json(value: Any) -> str:
    r"""Deterministic JSON: sorted keys, compact separators, UTF-8 text kept as is.

    A lone surrogate (an undecodable byte of a file name) is written as a ``\uXXXX`` escape
    (:mod:`thunderline.names`), so names round-trip and the hash is defined for them.
    """
    return names.dumps(value, sort_keys=True, separators=(",", ":"))


def metadata_sha256(metadata: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a voxel's metadata (see :meth:`Voxel.metadata`)."""
    return hashlib.sha256(canonical_json(metadata).encode("utf-8")).hexdigest()


def seal(fields: dict[str, Any], *, json_traits: bool = False) -> Voxel:
    """Make a voxel from its fields, computing ``checksums.metadata_sha256``.

    ``fields`` holds everything but the metadata checksum; ``fields["checksums"]`` holds
    ``payload_sha256``. Validation errors propagate as :class:`pydantic.ValidationError`.

    ``json_traits=True``: the caller vouches that ``fields["traits"]`` holds JSON values
    only (string keys; dicts, lists, strings, finite numbers, booleans, None: what
    ``model_dump(mode="json")`` returns), so the metadata takes them as they are instead of
    serialising them once more (that dump would return them unchanged; the voxel builder's
    traits are such dumps). The voxel and its checksum are the same either way.
    """
    draft = dict(fields)
    payload_sha = draft["checksums"]["payload_sha256"]
    draft["checksums"] = {"payload_sha256": payload_sha, "metadata_sha256": "0" * 64}
    unsealed = Voxel.model_validate(draft)
    if json_traits:
        metadata = unsealed.model_dump(mode="json", exclude={"traits"})
        metadata["checksums"] = {"payload_sha256": payload_sha}
        metadata["traits"] = unsealed.traits
    else:
        metadata = unsealed.metadata()
    meta_json = canonical_json(metadata)
    digest = hashlib.sha256(meta_json.encode("utf-8")).hexdigest()
    voxel = unsealed.model_copy(
        update={"checksums": Checksums(payload_sha256=payload_sha, metadata_sha256=digest)}
    )
    # the whole document is the metadata JSON with the digest added to ``checksums``
    # (sorted keys: ``metadata_sha256`` comes before ``payload_sha256``): kept for the store,
    # so a voxel sealed here is serialised once, not once more when it is written
    anchor = f'"checksums":{{"payload_sha256":"{payload_sha}"}}'
    if meta_json.count(anchor) == 1:
        whole = f'"checksums":{{"metadata_sha256":"{digest}","payload_sha256":"{payload_sha}"}}'
        _remember(voxel, meta_json.replace(anchor, whole))
    return voxel


#: id(voxel) -> (weak reference to it, its canonical JSON as sealed): see :func:`sealed_json`
_SEALED: dict[int, tuple[weakref.ref[Voxel], str]] = {}


def _remember(voxel: Voxel, doc: str) -> None:
    key = id(voxel)

    def forget(ref: weakref.ref[Voxel], key: int = key) -> None:
        entry = _SEALED.get(key)
        if entry is not None and entry[0] is ref:
            _SEALED.pop(key, None)

    _SEALED[key] = (weakref.ref(voxel, forget), doc)


def sealed_json(voxel: Voxel) -> str | None:
    """The canonical JSON :func:`seal` made for this very voxel object, else None.

    Only the object :func:`seal` returned has it (a ``model_copy``, a voxel read back or
    parsed from JSON has not: its JSON is made anew); the entry goes when the voxel does.
    Callers still check the metadata SHA-256 against it.
    """
    entry = _SEALED.get(id(voxel))
    if entry is not None and entry[0]() is voxel:
        return entry[1]
    return None
