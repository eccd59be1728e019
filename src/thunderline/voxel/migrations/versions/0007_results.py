"""Result versions (reprocess), reprocess runs, voxel tags; webhook result cursors and actions.

Revision ID: 0007_results
Revises: 0006_dlq_triage
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_results"
down_revision: str | None = "0006_dlq_triage"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "voxel_results",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "voxel_id",
            sa.String(36),
            sa.ForeignKey("voxels.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("producer", sa.String(256), nullable=False),
        sa.Column("current", sa.Boolean, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("created_unix", sa.Float, nullable=False),
        sa.UniqueConstraint("voxel_id", "stage", "seq", name="uq_voxel_results_seq"),
        sa.UniqueConstraint("voxel_id", "stage", "run_id", name="uq_voxel_results_run"),
    )
    op.create_index("ix_voxel_results_run_id", "voxel_results", ["run_id"])
    op.create_index("ix_voxel_results_voxel", "voxel_results", ["voxel_id", "stage"])
    op.create_index("ix_voxel_results_created", "voxel_results", ["created_unix", "id"])
    op.create_table(
        "reprocess_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("created_unix", sa.Float, nullable=False),
        sa.Column("updated_unix", sa.Float, nullable=False),
    )
    op.create_table(
        "reprocess_items",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("voxel_id", sa.String(36), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_reprocess_items_state", "reprocess_items", ["run_id", "state"])
    op.create_table(
        "voxel_tags",
        sa.Column(
            "voxel_id",
            sa.String(36),
            sa.ForeignKey("voxels.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(128), primary_key=True),
        sa.Column("rule_id", sa.String(36), nullable=True),
        sa.Column("created_unix", sa.Float, nullable=False),
    )
    op.create_index("ix_voxel_tags_tag", "voxel_tags", ["tag"])
    # webhooks: a second cursor over result versions (trigger ``reprocessed``) and an action
    # (``webhook``: POST to url; ``tag:NAME``: tag the voxel)
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(
            sa.Column("results_cursor_unix", sa.Float, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("results_cursor_id", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("action", sa.String(160), nullable=False, server_default="webhook")
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("action")
        batch.drop_column("results_cursor_id")
        batch.drop_column("results_cursor_unix")
    op.drop_table("voxel_tags")
    op.drop_table("reprocess_items")
    op.drop_table("reprocess_runs")
    op.drop_table("voxel_results")
