"""Outcomes: every terminal record (voxel or DLQ) by correlation id, with the DLQ status.

Revision ID: 0002_outcomes
Revises: 0001_voxels
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_outcomes"
down_revision: str | None = "0001_voxels"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("artifact", sa.Text, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("voxel_id", sa.String(36), nullable=True),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("created_unix", sa.Float, nullable=False),
        sa.Column("replay_event_id", sa.String(64), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("event", sa.Text, nullable=False),
    )
    op.create_index("ix_outcomes_correlation_id", "outcomes", ["correlation_id"])
    op.create_index("ix_outcomes_kind_status", "outcomes", ["kind", "status"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_kind_status", table_name="outcomes")
    op.drop_index("ix_outcomes_correlation_id", table_name="outcomes")
    op.drop_table("outcomes")
