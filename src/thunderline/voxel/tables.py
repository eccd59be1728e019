"""SQLAlchemy 2 tables of the voxel store (the Alembic migrations create exactly these).

* ``voxels`` -- one row per voxel: the canonical document plus indexed columns for queries.
  ``dedup_key`` (SHA-256 of source + payload SHA-256) is unique: the idempotency constraint.
* ``voxel_edges`` -- lineage, one row per (child, parent) pair, so ancestors and descendants
  are one recursive CTE on SQLite and PostgreSQL.
* ``voxel_payloads`` -- payloads below ``inline_payload_max_bytes``, content-addressed (one row
  per SHA-256 however many voxels share the bytes).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

voxels = Table(
    "voxels",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("dedup_key", String(64), nullable=False),
    Column("event_id", String(64), nullable=False, index=True),
    Column("correlation_id", String(64), nullable=False, index=True),
    Column("causation_id", String(64), nullable=True),
    Column("source", Text, nullable=False),
    Column("ts_unix", Float, nullable=False, index=True),
    Column("label", String(128), nullable=True, index=True),
    Column("payload_sha256", String(64), nullable=False, index=True),
    Column("payload_size", BigInteger, nullable=False),
    Column("payload_location", String(16), nullable=False),
    Column("metadata_sha256", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("doc", Text, nullable=False),
    UniqueConstraint("dedup_key", name="uq_voxels_dedup_key"),
)

voxel_edges = Table(
    "voxel_edges",
    metadata,
    Column(
        "child_id",
        String(36),
        ForeignKey("voxels.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "parent_id",
        String(36),
        ForeignKey("voxels.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Index("ix_voxel_edges_parent_id", "parent_id"),
)

voxel_payloads = Table(
    "voxel_payloads",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

#: ``voxels.payload_location`` values.
INLINE = "inline"
OBJECT = "object"

#: How every artifact ended (migration ``0002_outcomes``; see :mod:`thunderline.outcomes`).
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", String(64), primary_key=True),  # the terminal event's id
    Column("correlation_id", String(64), nullable=False, index=True),
    Column("artifact", Text, nullable=True),
    Column("kind", String(16), nullable=False),  # voxel | dlq
    Column("status", String(16), nullable=False),  # ok | open | replayed | resolved
    Column("stage", String(64), nullable=True),
    Column("reason", String(64), nullable=True),
    Column("voxel_id", String(36), nullable=True),
    Column("event_type", String(128), nullable=False),
    Column("created_unix", Float, nullable=False),
    Column("replay_event_id", String(64), nullable=True),
    Column("resolved_by", String(64), nullable=True),
    Column("event", Text, nullable=False),
    # SHA-256 of (kind, correlation id, artifact): one voxel row and one open DLQ row per
    # artifact (migration 0003_outcome_once; NULL without an artifact)
    Column("once_key", String(64), nullable=True),
    # DLQ triage (migration 0006_dlq_triage): the error type's retryable flag (NULL in rows
    # written before: derived from the stored error type), the group (SHA-256 of stage,
    # reason, artifact) and who dismissed the record, when and why
    Column("retryable", Boolean, nullable=True),
    Column("group_key", String(64), nullable=True),
    Column("dismissed_unix", Float, nullable=True),
    Column("dismissed_by", String(256), nullable=True),
    Column("dismiss_note", Text, nullable=True),
    Index("ix_outcomes_kind_status", "kind", "status"),
    Index("ux_outcomes_once_key", "once_key", unique=True),
    Index("ix_outcomes_group_key", "group_key"),
)

# ---- sources and lifecycle (migration ``0005_sources``; see :mod:`thunderline.sources`) ------
#: A folder or bucket prefix that ``thunderline sync`` / ``watch`` keeps in step.
source_roots = Table(
    "source_roots",
    metadata,
    Column("uri", String(1024), primary_key=True),  # file:///abs/folder or s3://bucket/prefix
    Column("paused", Boolean, nullable=False, default=False),
    Column("created_unix", Float, nullable=False),
    Column("last_sync_unix", Float, nullable=True),
    Column("last_summary", Text, nullable=True),  # JSON of the last pass's counts
)

#: The source ledger: one row per version of each entry of a source root.
source_entries = Table(
    "source_entries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("root", String(1024), nullable=False),
    Column("key", Text, nullable=False),  # path below the root / object key below the prefix
    Column("version", Integer, nullable=False),
    Column("current", Boolean, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("etag", String(128), nullable=True),
    Column("content_sha256", String(64), nullable=True, index=True),
    Column("state", String(16), nullable=False),  # submitted | done | deleted | superseded
    Column("outcome", String(16), nullable=True),  # voxel | dlq | linked | rejected
    Column("duplicate_of", String(36), nullable=True),  # the voxel that already had the bytes
    Column("voxel_id", String(36), nullable=True, index=True),
    Column("correlation_id", String(64), nullable=True, index=True),
    Column("dlq_id", String(64), nullable=True),
    Column("previous_id", String(36), nullable=True),  # the version this one replaced
    Column("seen_unix", Float, nullable=False),
    Column("updated_unix", Float, nullable=False),
    UniqueConstraint("root", "key", "version", name="uq_source_entries_version"),
    Index("ix_source_entries_root_current", "root", "current"),
    Index("ix_source_entries_state", "state"),
)

#: Every voxel deletion: who, when, what (the sealed document) and why.
voxel_deletions = Table(
    "voxel_deletions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("voxel_id", String(36), nullable=False, index=True),
    Column("payload_sha256", String(64), nullable=False),
    Column("payload_removed", Boolean, nullable=False),
    Column("source", Text, nullable=False),
    Column("label", String(128), nullable=True),
    Column("actor", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("deleted_unix", Float, nullable=False, index=True),
    Column("doc", Text, nullable=False),
)

#: Webhook endpoints: where events go, signed with the endpoint's secret.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("triggers", Text, nullable=False),  # JSON list: ingested, failed, label:<name>
    Column("active", Boolean, nullable=False),
    Column("created_unix", Float, nullable=False),
    Column("cursor_unix", Float, nullable=False),  # outcomes up to here were considered
    Column("cursor_id", String(64), nullable=False),
)

#: One row per (endpoint, event): the delivery and its state (idempotency by event id).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("endpoint_id", String(36), nullable=False, index=True),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_unix", Float, nullable=False, index=True),
    Column("created_unix", Float, nullable=False),
    Column("delivered_unix", Float, nullable=True),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
)

#: Every delivery attempt (the delivery log).
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("delivery_id", String(36), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("at_unix", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Float, nullable=False),
)
