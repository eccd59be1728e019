"""Sources and lifecycle: source roots, the source ledger, the voxel deletion audit, webhooks.

Revision ID: 0005_sources
Revises: 0004_search
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_sources"
down_revision: str | None = "0004_search"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "source_roots",
        sa.Column("uri", sa.String(1024), primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("created_unix", sa.Float, nullable=False),
        sa.Column("last_sync_unix", sa.Float, nullable=True),
        sa.Column("last_summary", sa.Text, nullable=True),
    )
    op.create_table(
        "source_entries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("root", sa.String(1024), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("current", sa.Boolean, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(128), nullable=True),
        sa.Column("content_sha256", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("duplicate_of", sa.String(36), nullable=True),
        sa.Column("voxel_id", sa.String(36), nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("dlq_id", sa.String(64), nullable=True),
        sa.Column("previous_id", sa.String(36), nullable=True),
        sa.Column("seen_unix", sa.Float, nullable=False),
        sa.Column("updated_unix", sa.Float, nullable=False),
        sa.UniqueConstraint("root", "key", "version", name="uq_source_entries_version"),
    )
    op.create_index("ix_source_entries_root_current", "source_entries", ["root", "current"])
    op.create_index("ix_source_entries_state", "source_entries", ["state"])
    op.create_index("ix_source_entries_content_sha256", "source_entries", ["content_sha256"])
    op.create_index("ix_source_entries_voxel_id", "source_entries", ["voxel_id"])
    op.create_index("ix_source_entries_correlation_id", "source_entries", ["correlation_id"])
    op.create_table(
        "voxel_deletions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("voxel_id", sa.String(36), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("payload_removed", sa.Boolean, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("deleted_unix", sa.Float, nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
    )
    op.create_index("ix_voxel_deletions_voxel_id", "voxel_deletions", ["voxel_id"])
    op.create_index("ix_voxel_deletions_deleted_unix", "voxel_deletions", ["deleted_unix"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("triggers", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_unix", sa.Float, nullable=False),
        sa.Column("cursor_unix", sa.Float, nullable=False),
        sa.Column("cursor_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_unix", sa.Float, nullable=False),
        sa.Column("created_unix", sa.Float, nullable=False),
        sa.Column("delivered_unix", sa.Float, nullable=True),
        sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
    )
    op.create_index("ix_webhook_deliveries_endpoint_id", "webhook_deliveries", ["endpoint_id"])
    op.create_index(
        "ix_webhook_deliveries_next_attempt_unix", "webhook_deliveries", ["next_attempt_unix"]
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("delivery_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at_unix", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("voxel_deletions")
    op.drop_table("source_entries")
    op.drop_table("source_roots")
