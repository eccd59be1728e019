"""Writing the search index: in the caller's transaction, native to the backend.

* **SQLite**: ``search_docs`` + ``search_terms`` rows and one row of the FTS5 table
  ``search_fts`` (columns ``name, body, entities, meta``; ``porter unicode61`` tokenizer, so
  English words are stemmed and diacritics folded), its rowid the ``doc_no``.
* **PostgreSQL**: the same rows plus ``search_docs.tsv``: the name (weight A), the entities
  (B), labels and models (C) and the body (D), each as ``simple`` lexemes and as lexemes of
  the voxel's language configuration (``german`` for ``de`` ...), under a GIN index.

:func:`index_voxels` is what :meth:`VoxelStore.put_many` calls with the voxels a transaction
creates; :func:`remove_voxels` is what deleting a voxel calls (a deleted ``voxels`` row also
cascades to ``search_docs`` and, through a trigger on SQLite, to ``search_fts``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection

from thunderline.search.document import IndexDoc

#: spaCy/langdetect language codes -> PostgreSQL text search configurations (built in).
PG_CONFIGS: Final[dict[str, str]] = {
    "ar": "arabic",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nb": "norwegian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}
#: The configuration words are also stemmed with when a query names no language.
DEFAULT_CONFIG: Final = "english"
_WORDS = re.compile(r"[\W_]+")
_SENTINELS = str.maketrans({"\x02": " ", "\x03": " "})


def pg_config(lang: str | None) -> str:
    """The PostgreSQL configuration for a language code (``simple``: no stemming)."""
    return PG_CONFIGS.get((lang or "").split("-")[0].lower(), "simple")


def _doc_row(doc: IndexDoc, *, with_body: bool) -> dict[str, object]:
    return {
        "voxel_id": doc.voxel_id,
        "ts_unix": doc.ts_unix,
        "label": doc.label,
        "grp": doc.group,
        "lang": doc.lang,
        "kind": doc.kind,
        "size": doc.size,
        "name": doc.name,
        "content_sha256": doc.content_sha256,
        "body": doc.body.translate(_SENTINELS) if with_body else None,
    }


_INSERT_DOC = (
    "INSERT INTO search_docs (doc_no, voxel_id, ts_unix, label, grp, lang, kind, size, name, "
    "content_sha256, body) VALUES (:doc_no, :voxel_id, :ts_unix, :label, :grp, :lang, :kind, "
    ":size, :name, :content_sha256, :body)"
)
#: PostgreSQL: the row and its tsvector in one INSERT (no second write of the row)
_INSERT_DOC_PG = (
    "INSERT INTO search_docs (doc_no, voxel_id, ts_unix, label, grp, lang, kind, size, name, "
    "content_sha256, body, tsv) VALUES (:doc_no, :voxel_id, :ts_unix, :label, :grp, :lang, "
    ":kind, :size, :name, :content_sha256, :body, "
    "setweight(to_tsvector('simple', :words), 'A') "
    "|| setweight(to_tsvector(CAST(:cfg AS regconfig), :words), 'A') "
    "|| setweight(to_tsvector('simple', :entities), 'B') "
    "|| setweight(to_tsvector('simple', :meta), 'C') "
    "|| to_tsvector(CAST(:cfg AS regconfig), coalesce(:body, '')) "
    "|| to_tsvector('simple', coalesce(:body, '')))"
)


def _numbers(conn: Connection, count: int) -> list[int]:
    """``count`` new ``doc_no`` values, taken inside the caller's (writing) transaction.

    Taking them first lets the rows be written with one ``executemany`` (a statement per row
    cost more than the FTS5 insert itself).
    """
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('search_docs', 'doc_no')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": count},
        )
        return [int(n) for n in rows.scalars()]
    # SQLite: the voxel rows were written first in this transaction, so it holds the write
    # lock and no other writer can take the same numbers
    top = conn.execute(text("SELECT coalesce(max(doc_no), 0) FROM search_docs")).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))


def index_voxels(conn: Connection, docs: Sequence[IndexDoc]) -> None:
    """Index ``docs`` in the caller's transaction (replacing any row of the same voxel)."""
    docs = list({doc.voxel_id: doc for doc in docs}.values())  # a voxel twice in a batch
    if not docs:
        return
    remove_voxels(conn, [doc.voxel_id for doc in docs])
    pg = conn.dialect.name == "postgresql"
    numbers = _numbers(conn, len(docs))
    rows = []
    for number, doc in zip(numbers, docs, strict=True):
        row = {**_doc_row(doc, with_body=pg), "doc_no": number}
        if pg:
            row.update(
                cfg=pg_config(doc.lang),
                words=_WORDS.sub(" ", doc.name),  # python-logo.jpg: 3 words
                entities=doc.entity_text(),
                meta=doc.meta_text(),
            )
        rows.append(row)
    conn.execute(text(_INSERT_DOC_PG if pg else _INSERT_DOC), rows)
    terms = [
        {"doc_no": number, "field": field, "value": value, "shown": shown}
        for number, doc in zip(numbers, docs, strict=True)
        for field, value, shown in doc.terms()
    ]
    if terms:
        conn.execute(
            text(
                "INSERT INTO search_terms (doc_no, field, value, shown) "
                "VALUES (:doc_no, :field, :value, :shown)"
            ),
            terms,
        )
    if not pg:
        conn.execute(
            text(
                "INSERT INTO search_fts (rowid, name, body, entities, meta) "
                "VALUES (:doc_no, :name, :body, :entities, :meta)"
            ),
            [
                {
                    "doc_no": number,
                    "name": doc.name,
                    "body": doc.body.translate(_SENTINELS),
                    "entities": doc.entity_text(),
                    "meta": doc.meta_text(),
                }
                for number, doc in zip(numbers, docs, strict=True)
            ],
        )


def remove_voxels(conn: Connection, voxel_ids: Iterable[str]) -> int:
    """Take voxels out of the index (in the caller's transaction); returns how many were in."""
    ids = list(dict.fromkeys(voxel_ids))
    removed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join(f":v{i}" for i in range(len(chunk)))
        params = {f"v{i}": value for i, value in enumerate(chunk)}
        numbers = [
            int(n)
            for n in conn.execute(
                text(f"SELECT doc_no FROM search_docs WHERE voxel_id IN ({marks})"), params
            ).scalars()
        ]
        if not numbers:
            continue
        nums = ", ".join(str(n) for n in numbers)  # integers read from the database
        conn.execute(text(f"DELETE FROM search_terms WHERE doc_no IN ({nums})"))
        if conn.dialect.name == "sqlite":
            conn.execute(text(f"DELETE FROM search_fts WHERE rowid IN ({nums})"))
        conn.execute(text(f"DELETE FROM search_docs WHERE doc_no IN ({nums})"))
        removed += len(numbers)
    return removed


def indexed_hashes(conn: Connection, voxel_ids: Sequence[str]) -> dict[str, str]:
    """Voxel id -> the ``content_sha256`` its index row was written with (absent: not indexed)."""
    found: dict[str, str] = {}
    for start in range(0, len(voxel_ids), 500):
        chunk = voxel_ids[start : start + 500]
        marks = ", ".join(f":v{i}" for i in range(len(chunk)))
        params = {f"v{i}": value for i, value in enumerate(chunk)}
        for row in conn.execute(
            text(f"SELECT voxel_id, content_sha256 FROM search_docs WHERE voxel_id IN ({marks})"),
            params,
        ):
            found[str(row[0])] = str(row[1])
    return found
