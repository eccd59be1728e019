"""DLQ triage: retryable flag, group key and dismissal of DLQ records (issue 24).

``retryable`` is the failing error type's flag, recorded when the record is built (NULL in
rows written before: the reader derives it from the stored error type through the error
registry). ``group_key`` is the SHA-256 of (stage, reason, artifact) that groups repeated
failures of one file; it is filled here for the DLQ rows already stored (the same function as
:func:`thunderline.outcomes.group_key`, spelled out so the migration does not change when the
code does). ``dismissed_*`` say who dismissed a record, when and why.

Revision ID: 0006_dlq_triage
Revises: 0005_sources
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0006_dlq_triage"
down_revision: str | None = "0005_sources"
branch_labels: str | None = None
depends_on: str | None = None


def _group_key(stage: str | None, reason: str | None, artifact: str | None) -> str:
    text = "\x00".join(part or "" for part in (stage, reason, artifact))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def upgrade() -> None:
    op.add_column("outcomes", sa.Column("retryable", sa.Boolean, nullable=True))
    op.add_column("outcomes", sa.Column("group_key", sa.String(64), nullable=True))
    op.add_column("outcomes", sa.Column("dismissed_unix", sa.Float, nullable=True))
    op.add_column("outcomes", sa.Column("dismissed_by", sa.String(256), nullable=True))
    op.add_column("outcomes", sa.Column("dismiss_note", sa.Text, nullable=True))
    op.create_index("ix_outcomes_group_key", "outcomes", ["group_key"])
    table = sa.table(
        "outcomes",
        sa.column("id", sa.String),
        sa.column("kind", sa.String),
        sa.column("stage", sa.String),
        sa.column("reason", sa.String),
        sa.column("artifact", sa.Text),
        sa.column("group_key", sa.String),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(table.c.id, table.c.stage, table.c.reason, table.c.artifact).where(
            table.c.kind == "dlq"
        )
    ).all()
    for row in rows:
        conn.execute(
            sa.update(table)
            .where(table.c.id == row.id)
            .values(group_key=_group_key(row.stage, row.reason, row.artifact))
        )


def downgrade() -> None:
    op.drop_index("ix_outcomes_group_key", table_name="outcomes")
    with op.batch_alter_table("outcomes") as batch:
        for column in ("dismiss_note", "dismissed_by", "dismissed_unix", "group_key", "retryable"):
            batch.drop_column(column)
