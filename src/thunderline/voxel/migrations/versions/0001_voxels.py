"""Voxels, lineage edges and inline payloads.

Revision ID: 0001_voxels
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_voxels"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "voxels",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("causation_id", sa.String(64), nullable=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("ts_unix", sa.Float, nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("payload_size", sa.BigInteger, nullable=False),
        sa.Column("payload_location", sa.String(16), nullable=False),
        sa.Column("metadata_sha256", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
        sa.UniqueConstraint("dedup_key", name="uq_voxels_dedup_key"),
    )
    op.create_index("ix_voxels_event_id", "voxels", ["event_id"])
    op.create_index("ix_voxels_correlation_id", "voxels", ["correlation_id"])
    op.create_index("ix_voxels_ts_unix", "voxels", ["ts_unix"])
    op.create_index("ix_voxels_label", "voxels", ["label"])
    op.create_index("ix_voxels_payload_sha256", "voxels", ["payload_sha256"])
    op.create_table(
        "voxel_edges",
        sa.Column(
            "child_id",
            sa.String(36),
            sa.ForeignKey("voxels.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "parent_id",
            sa.String(36),
            sa.ForeignKey("voxels.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_index("ix_voxel_edges_parent_id", "voxel_edges", ["parent_id"])
    op.create_table(
        "voxel_payloads",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("voxel_payloads")
    op.drop_index("ix_voxel_edges_parent_id", table_name="voxel_edges")
    op.drop_table("voxel_edges")
    for name in ("payload_sha256", "label", "ts_unix", "correlation_id", "event_id"):
        op.drop_index(f"ix_voxels_{name}", table_name="voxels")
    op.drop_table("voxels")
