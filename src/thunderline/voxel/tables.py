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
    # + 1 with every write of what a pass compares (migration ``0010_source_generation``)
    Column("generation", BigInteger, nullable=False, default=0, server_default="0"),
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

#: The documents a replay replaced when it completed a degraded voxel (migration
#: ``0008_voxel_revisions``): revision ``n`` is the sealed document the voxel had before
#: revision ``n + 1`` (the row in ``voxels``) replaced it, with the event that did and why.
voxel_revisions = Table(
    "voxel_revisions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("voxel_id", String(36), nullable=False, index=True),
    Column("revision", Integer, nullable=False),
    Column("metadata_sha256", String(64), nullable=False),
    Column("doc", Text, nullable=False),
    Column("replaced_by_event", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("replaced_unix", Float, nullable=False),
    UniqueConstraint("voxel_id", "revision", name="uq_voxel_revisions_revision"),
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
    # migration 0007_results: a cursor over result versions (trigger ``reprocessed``) and the
    # action (``webhook``: POST to ``url``; ``tag:NAME``: tag the voxel, no request)
    Column("results_cursor_unix", Float, nullable=False, server_default="0"),
    Column("results_cursor_id", String(64), nullable=False, server_default=""),
    Column("action", String(160), nullable=False, server_default="webhook"),
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

# ---- result versions and rules (migration ``0007_results``; see :mod:`thunderline.voxel.results`)
#: Every version of a stage's result for a voxel (``thunderline reprocess``). The sealed voxel
#: document keeps the result it was packaged with; once a stage is reprocessed, that result is
#: version 1 here (``run_id`` NULL) and each reprocess adds the next; one row per (voxel,
#: stage) is ``current``.
voxel_results = Table(
    "voxel_results",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("voxel_id", String(36), ForeignKey("voxels.id", ondelete="CASCADE"), nullable=False),
    Column("stage", String(16), nullable=False),  # extract | nlp | infer
    Column("seq", Integer, nullable=False),  # 1, 2, ... per (voxel, stage)
    Column("producer", String(256), nullable=False),  # NAME@VERSION of the model / extractor
    Column("current", Boolean, nullable=False),
    Column("result", Text, nullable=False),  # JSON of the stage's result
    Column("run_id", String(36), nullable=True, index=True),  # the reprocess run; NULL: ingest
    Column("event_id", String(64), nullable=False),  # the event the result was made for
    Column("created_unix", Float, nullable=False),
    UniqueConstraint("voxel_id", "stage", "seq", name="uq_voxel_results_seq"),
    UniqueConstraint("voxel_id", "stage", "run_id", name="uq_voxel_results_run"),
    Index("ix_voxel_results_voxel", "voxel_id", "stage"),
    Index("ix_voxel_results_created", "created_unix", "id"),
)

#: One ``thunderline reprocess`` run: which stage, model and query; its progress.
reprocess_runs = Table(
    "reprocess_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("stage", String(16), nullable=False),
    Column("model", String(256), nullable=True),  # NAME@VERSION asked for, if any
    Column("query", Text, nullable=False),
    Column("state", String(16), nullable=False),  # running | done
    Column("total", Integer, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("created_unix", Float, nullable=False),
    Column("updated_unix", Float, nullable=False),
)

#: The voxels of a run (taken when it starts) and how each went: a restart continues with the
#: ``pending`` ones.
reprocess_items = Table(
    "reprocess_items",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("voxel_id", String(36), primary_key=True),
    Column("state", String(16), nullable=False),  # pending | done | skipped | failed
    Column("detail", Text, nullable=True),
    Index("ix_reprocess_items_state", "run_id", "state"),
)

#: Tags put on voxels by rules (action ``tag``).
voxel_tags = Table(
    "voxel_tags",
    metadata,
    Column(
        "voxel_id",
        String(36),
        ForeignKey("voxels.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(128), primary_key=True),
    Column("rule_id", String(36), nullable=True),
    Column("created_unix", Float, nullable=False),
    Index("ix_voxel_tags_tag", "tag"),
)
