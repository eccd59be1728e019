"""Outcomes: one row per artifact and terminal kind (``once_key``, unique).

A message redelivered after a broker cut is processed again and its terminal event has a new
id, so the event-id primary key let the same artifact be recorded twice (250 artifacts, 342
``voxel`` rows). ``once_key`` is the SHA-256 of (kind, correlation id, artifact) for a voxel
row and for an ``open`` DLQ row (a replayed record gives its key up, so a replay that fails
again adds its own open record); NULL where there is no artifact. Rows written before this
revision keep a NULL key (duplicates among them stay as they were).

Revision ID: 0003_outcome_once
Revises: 0002_outcomes
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_outcome_once"
down_revision: str | None = "0002_outcomes"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("outcomes", sa.Column("once_key", sa.String(64), nullable=True))
    op.create_index("ux_outcomes_once_key", "outcomes", ["once_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_outcomes_once_key", table_name="outcomes")
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("once_key")
