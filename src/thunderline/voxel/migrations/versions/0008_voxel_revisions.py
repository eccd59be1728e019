"""Voxel revisions: the documents a replay replaced when it completed a degraded voxel.

Revision ID: 0008_voxel_revisions
Revises: 0007_results
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_voxel_revisions"
down_revision: str | None = "0007_results"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "voxel_revisions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("voxel_id", sa.String(36), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("metadata_sha256", sa.String(64), nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("replaced_by_event", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("replaced_unix", sa.Float, nullable=False),
        sa.UniqueConstraint("voxel_id", "revision", name="uq_voxel_revisions_revision"),
    )
    op.create_index("ix_voxel_revisions_voxel_id", "voxel_revisions", ["voxel_id"])


def downgrade() -> None:
    op.drop_index("ix_voxel_revisions_voxel_id", table_name="voxel_revisions")
    op.drop_table("voxel_revisions")
