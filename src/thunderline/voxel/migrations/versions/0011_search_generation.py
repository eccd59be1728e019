"""A write counter of the search index on SQLite (issue 19, query latency): ``search_generation``
holds how many ``search_docs`` rows were ever inserted and how many deleted or updated, kept by
triggers in the writing transaction, and a random ``epoch`` naming this database (a new file at
the same path is another database). The in-process facet cache
(:mod:`thunderline.search.facets`) reads it to know whether its copy is current: no new
deletion means every row added since has a higher ``doc_no`` (it is ``max + 1``), so only those
are read; a deletion means a re-read. (PostgreSQL needs no table: its ``doc_no`` comes from a
sequence and is never reused, so ``max(doc_no), count(*)`` tells the same.)

Revision ID: 0011_search_generation
Revises: 0010_source_generation
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0011_search_generation"
down_revision: str | None = "0010_source_generation"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE TABLE search_generation (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "epoch TEXT NOT NULL, inserts INTEGER NOT NULL, deletes INTEGER NOT NULL)"
    )
    op.execute(
        "INSERT INTO search_generation (id, epoch, inserts, deletes) "
        "VALUES (1, lower(hex(randomblob(8))), 0, 0)"
    )
    op.execute(
        "CREATE TRIGGER search_docs_count_insert AFTER INSERT ON search_docs "
        "BEGIN UPDATE search_generation SET inserts = inserts + 1 WHERE id = 1; END"
    )
    op.execute(
        "CREATE TRIGGER search_docs_count_delete AFTER DELETE ON search_docs "
        "BEGIN UPDATE search_generation SET deletes = deletes + 1 WHERE id = 1; END"
    )
    op.execute(
        "CREATE TRIGGER search_docs_count_update AFTER UPDATE ON search_docs "
        "BEGIN UPDATE search_generation SET deletes = deletes + 1 WHERE id = 1; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS search_docs_count_{name}")
    op.execute("DROP TABLE IF EXISTS search_generation")
