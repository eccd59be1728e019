"""Search index, stemming per language on SQLite (issue 19): ``search_fts`` gains a ``stems``
column -- the body's words stemmed with the Snowball stemmer of the document's language when
it is not English (:mod:`thunderline.search.stem`). FTS5 cannot add a column, so the table is
made anew and its rows copied (``stems`` empty); the index rows of non-English documents are
then stale (their content hash names the stemmer) until ``thunderline index rebuild`` rewrites
them, and ``voxels verify --all`` reports them until it does. PostgreSQL: nothing to change
(its ``tsvector`` is built with the language's configuration already).

Revision ID: 0012_search_stems
Revises: 0011_search_generation
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0012_search_stems"
down_revision: str | None = "0011_search_generation"
branch_labels: str | None = None
depends_on: str | None = None

_TRIGGER = (
    "CREATE TRIGGER search_docs_after_delete AFTER DELETE ON search_docs "
    "BEGIN DELETE FROM search_fts WHERE rowid = old.doc_no; END"
)


def _remake(columns: str, copied: str, filled: str) -> None:
    op.execute("DROP TRIGGER IF EXISTS search_docs_after_delete")
    op.execute(
        f"CREATE VIRTUAL TABLE search_fts_new USING fts5({columns}, "
        "tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        f"INSERT INTO search_fts_new (rowid, {copied}) SELECT rowid, {filled} FROM search_fts"
    )
    op.execute("DROP TABLE search_fts")
    op.execute("ALTER TABLE search_fts_new RENAME TO search_fts")
    op.execute(_TRIGGER)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _remake(
        "name, body, entities, meta, stems",
        "name, body, entities, meta, stems",
        "name, body, entities, meta, ''",
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _remake(
        "name, body, entities, meta", "name, body, entities, meta", "name, body, entities, meta"
    )
