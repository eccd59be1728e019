"""Search index (issue 19): ``search_docs`` (one row per voxel: what facets and filters read),
``search_terms`` (multi-valued fields: entities, entity types, model labels) and the text index
native to the backend -- an FTS5 table ``search_fts`` on SQLite (rowid = ``search_docs.doc_no``),
a ``tsvector`` column with a GIN index on PostgreSQL.

Revision ID: 0004_search
Revises: 0003_outcome_once
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_search"
down_revision: str | None = "0003_outcome_once"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "search_docs",
        sa.Column(
            "doc_no",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "voxel_id",
            sa.String(36),
            sa.ForeignKey("voxels.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("ts_unix", sa.Float, nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("grp", sa.String(64), nullable=True),
        sa.Column("lang", sa.String(16), nullable=True),
        sa.Column("kind", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=True),  # PostgreSQL only (FTS5 keeps its own)
    )
    op.create_index("ix_search_docs_ts", "search_docs", ["ts_unix", "doc_no"])
    for column in ("label", "grp", "lang", "kind", "size"):
        op.create_index(f"ix_search_docs_{column}", "search_docs", [column])
    op.create_table(
        "search_terms",
        sa.Column(
            "doc_no",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            sa.ForeignKey("search_docs.doc_no", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("shown", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("doc_no", "field", "value"),
    )
    op.create_index("ix_search_terms_field_value", "search_terms", ["field", "value", "doc_no"])
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5("
            "name, body, entities, meta, "
            "tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        # a voxel deleted (its search_docs row cascades) leaves the FTS table too
        op.execute(
            "CREATE TRIGGER search_docs_after_delete AFTER DELETE ON search_docs "
            "BEGIN DELETE FROM search_fts WHERE rowid = old.doc_no; END"
        )
    else:
        op.add_column("search_docs", sa.Column("tsv", sa.dialects.postgresql.TSVECTOR))
        op.create_index("ix_search_docs_tsv", "search_docs", ["tsv"], postgresql_using="gin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_terms")
    op.drop_table("search_docs")
