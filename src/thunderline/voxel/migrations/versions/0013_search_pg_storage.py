"""Search index layout on PostgreSQL (issue 19, query latency): ``search_docs.body`` is stored
``EXTERNAL`` (out of line, uncompressed, as soon as a row passes the 2 kB TOAST threshold) and
``search_docs.tsv`` ``MAIN`` (kept inline and uncompressed unless the row is still too large
once the body is out).

Why: with both columns ``EXTENDED`` (the default) PostgreSQL compressed whichever was larger
to fit the row, so a fifth of the ``tsvector`` values were pglz-compressed or TOASTed and
every ranked match (``ts_rank_cd``) and every phrase recheck decompressed one; the body,
inline, also spread the matches over more heap pages. The body is read for the 20 snippets
of a page only. Measured on the 100k-voxel search benchmark store (copies of ``search_docs``,
vacuumed, 12 runs each, load 4-9): ranking every match of ``encoding`` (13,080 documents)
took 36-60 ms median against 66-121 ms, the phrase ``"return value"`` (9,714 candidates
rechecked) 51-72 ms against 72-125 ms.

``SET STORAGE`` applies to rows written afterwards, so the existing rows are rewritten here
(their ``body`` and ``tsv`` values re-stored as new values; the values are unchanged). SQLite:
nothing to change.

Revision ID: 0013_search_pg_storage
Revises: 0012_search_stems
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0013_search_pg_storage"
down_revision: str | None = "0012_search_stems"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE search_docs ALTER COLUMN body SET STORAGE EXTERNAL, "
        "ALTER COLUMN tsv SET STORAGE MAIN"
    )
    # new values (not the old TOAST pointers or compressed datums) so they take the new layout
    op.execute("UPDATE search_docs SET body = body || '', tsv = tsv || ''::tsvector")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE search_docs ALTER COLUMN body SET STORAGE EXTENDED, "
        "ALTER COLUMN tsv SET STORAGE EXTENDED"
    )
