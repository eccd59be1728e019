"""Sources and lifecycle: source roots, the source ledger, the voxel deletion audit.

Revision ID: 0004_sources
Revises: 0003_outcome_once
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_sources"
down_revision: str | None = "0003_outcome_once"
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


def downgrade() -> None:
    op.drop_table("voxel_deletions")
    op.drop_table("source_entries")
    op.drop_table("source_roots")
