"""Source roots count their ledger changes: ``source_roots.generation``.

Every ledger write that changes what a sync pass compares (a new version, a touch, a resend, a
settle, a deletion) adds one to its root's ``generation`` in the same transaction. A process
that keeps a root's ledger snapshot in memory (``watch``) reads this one number before a pass
and reads the entries again only when it moved -- also when another process or worker wrote.

Revision ID: 0010_source_generation
Revises: 0009_vectors
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_source_generation"
down_revision: str | None = "0009_vectors"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_roots") as batch:
        batch.add_column(sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("source_roots") as batch:
        batch.drop_column("generation")
