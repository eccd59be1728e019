"""Writing the search index: in the caller's transaction, native to the backend.

* **SQLite**: ``search_docs`` + ``search_terms`` rows and one row of the FTS5 table
  ``search_fts`` (columns ``name, body, entities, meta, stems``; ``porter unicode61``
  tokenizer, so English words are stemmed and diacritics folded), its rowid the ``doc_no``.
  ``stems``: the body's words stemmed with the Snowball stemmer of a non-English language
  (:mod:`thunderline.search.stem`), '' for English and unknown languages.
* **PostgreSQL**: the same rows plus ``search_docs.tsv``, under a GIN index: the name
  (weight A, as ``simple`` lexemes and as lexemes of the voxel's language configuration:
  ``german`` for ``de`` ...), the entities (B) and labels and models (C) as ``simple``
  lexemes, the body (D) in the language's configuration.

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
from thunderline.search.pgarray import float_array, int_array, text_array
from thunderline.search.stem import stems_of

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


def _without_sentinels(body: str) -> str:
    """``body`` with STX/ETX (the highlight sentinels) as spaces; ``body`` itself without any.

    ``str.translate`` copies every character through a dict look-up (~55 µs per KB of
    non-ASCII text); two ``in`` scans cost ~0.1 µs per KB.
    """
    if "\x02" in body or "\x03" in body:
        return body.translate(_SENTINELS)
    return body


def pg_config(lang: str | None) -> str:
    """The PostgreSQL configuration for a language code (``simple``: no stemming)."""
    return PG_CONFIGS.get((lang or "").split("-")[0].lower(), "simple")


_DOC_COLUMNS: Final = (
    "doc_no",
    "voxel_id",
    "ts_unix",
    "label",
    "grp",
    "lang",
    "kind",
    "size",
    "name",
    "content_sha256",
    "body",
)
#: SQLite: the row of ``search_docs`` (no body: FTS5 keeps the only copy of the text)
_INSERT_DOC = (
    f"INSERT INTO search_docs ({', '.join(_DOC_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _DOC_COLUMNS)})"
)
_INSERT_TERMS = "INSERT INTO search_terms (doc_no, field, value, shown) VALUES (?, ?, ?, ?)"
#: SQLite: the text, stemmed words of a non-English language in ``stems``
_INSERT_FTS = (
    "INSERT INTO search_fts (rowid, name, body, entities, meta, stems) VALUES (?, ?, ?, ?, ?, ?)"
)
_PG_TYPES: Final = {
    "doc_no": "bigint",
    "ts_unix": "float8",
    "size": "bigint",
}
_PG_COLUMNS: Final = (*_DOC_COLUMNS[1:], "cfg", "words", "entities", "meta")
#: PostgreSQL: every row of the batch, its tsvector and its terms in ONE statement (arrays
#: unnested server-side: no statement per row, one round trip per batch). ``doc_no`` comes from
#: the column's sequence (its default: the facet cache reads it); the terms join the new rows
#: on the voxel id (``RETURNING``), so the numbers never travel to the client and back. The
#: body is parsed once, in its language's configuration (a second, ``simple`` parse of it
#: doubled the server's cost; queries are stemmed in every indexed language's configuration
#: instead, so the document's own is always among them)
_INDEX_PG = (
    "WITH docs AS ("
    f"INSERT INTO search_docs ({', '.join(_DOC_COLUMNS[1:])}, tsv) "
    f"SELECT {', '.join('u.' + c for c in _DOC_COLUMNS[1:])}, "
    "setweight(to_tsvector('simple', u.words), 'A') "
    "|| setweight(to_tsvector(u.cfg::regconfig, u.words), 'A') "
    "|| setweight(to_tsvector('simple', u.entities), 'B') "
    "|| setweight(to_tsvector('simple', u.meta), 'C') "
    "|| to_tsvector(u.cfg::regconfig, coalesce(u.body, '')) "
    "FROM unnest("
    + ", ".join(f"%({c})s::{_PG_TYPES.get(c, 'text')}[]" for c in _PG_COLUMNS)
    + f") AS u({', '.join(_PG_COLUMNS)}) "
    "RETURNING doc_no, voxel_id) "
    "INSERT INTO search_terms (doc_no, field, value, shown) "
    "SELECT docs.doc_no, t.field, t.value, t.shown FROM unnest(%(t_voxel)s::text[], "
    "%(t_field)s::text[], %(t_value)s::text[], %(t_shown)s::text[]) "
    "AS t(voxel_id, field, value, shown) JOIN docs ON docs.voxel_id = t.voxel_id"
)


def _numbers(conn: Connection, count: int) -> list[int]:
    """SQLite: ``count`` new ``doc_no`` values (max + 1 on), inside the writing transaction.

    Taking them first lets the rows be written with one ``executemany`` (a statement per row
    cost more than the FTS5 insert itself). The voxel rows were written first in this
    transaction, so it holds the write lock and no other writer can take the same numbers.
    """
    top = conn.execute(text("SELECT coalesce(max(doc_no), 0) FROM search_docs")).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))


def index_voxels(conn: Connection, docs: Sequence[IndexDoc], *, fresh: bool = False) -> None:
    """Index ``docs`` in the caller's transaction (replacing any row of the same voxel).

    The rows go to the driver directly (``exec_driver_sql``, positional parameters): the
    per-row parameter processing of a SQLAlchemy ``text()`` statement cost as much as the
    FTS5 insert itself. SQLite: one ``executemany`` per table; PostgreSQL: one statement for
    the whole batch (``unnest`` of arrays; the ``doc_no`` taken from its sequence and the
    terms written in the same statement).

    ``fresh=True``: every voxel was created by this very transaction, so none has an index
    row to replace (``search_docs.voxel_id`` references ``voxels.id`` with ``ON DELETE
    CASCADE``) and the look-up of rows to remove is left out.
    """
    docs = list({doc.voxel_id: doc for doc in docs}.values())  # a voxel twice in a batch
    if not docs:
        return
    if not fresh:
        remove_voxels(conn, [doc.voxel_id for doc in docs])
    if conn.dialect.name == "postgresql":
        _index_pg(conn, docs)
        return
    numbers = _numbers(conn, len(docs))
    bodies = [_without_sentinels(doc.body) for doc in docs]
    entities = [doc.entity_text() for doc in docs]
    metas = [doc.meta_text() for doc in docs]
    terms = [
        (number, field, value, shown)
        for number, doc in zip(numbers, docs, strict=True)
        for field, value, shown in doc.terms()
    ]
    conn.exec_driver_sql(
        _INSERT_DOC,
        [
            (
                number,
                d.voxel_id,
                d.ts_unix,
                d.label,
                d.group,
                d.lang,
                d.kind,
                d.size,
                d.name,
                d.content_sha256,
                None,
            )
            for number, d in zip(numbers, docs, strict=True)
        ],
    )
    if terms:
        conn.exec_driver_sql(_INSERT_TERMS, terms)
    conn.exec_driver_sql(
        _INSERT_FTS,
        [
            (number, d.name, body, ents, meta, stems_of(body, d.lang))
            for number, d, body, ents, meta in zip(
                numbers, docs, bodies, entities, metas, strict=True
            )
        ],
    )


def _index_pg(conn: Connection, docs: list[IndexDoc]) -> None:
    """PostgreSQL: documents, their tsvectors and their terms in one statement.

    ``doc_no`` comes from the column's sequence (``nextval`` per row, as before, so the
    facet cache's reading of it is unchanged); the terms join the inserted documents on the
    voxel id (``RETURNING``), so the numbers never travel to the client and back. Each
    column goes as one array literal (:mod:`thunderline.search.pgarray`): psycopg's
    adaptation of a list, element by element, cost a sixth of the whole write.
    """
    terms = [(doc.voxel_id, *term) for doc in docs for term in doc.terms()]
    columns: dict[str, str] = {
        "voxel_id": text_array([d.voxel_id for d in docs]),
        "ts_unix": float_array([d.ts_unix for d in docs]),
        "label": text_array([d.label for d in docs]),
        "grp": text_array([d.group for d in docs]),
        "lang": text_array([d.lang for d in docs]),
        "kind": text_array([d.kind for d in docs]),
        "size": int_array([d.size for d in docs]),
        "name": text_array([d.name for d in docs]),
        "content_sha256": text_array([d.content_sha256 for d in docs]),
        "body": text_array([_without_sentinels(d.body) for d in docs]),
        "cfg": text_array([pg_config(d.lang) for d in docs]),
        "words": text_array([_WORDS.sub(" ", d.name) for d in docs]),  # python-logo.jpg: 3 words
        "entities": text_array([d.entity_text() for d in docs]),
        "meta": text_array([d.meta_text() for d in docs]),
        "t_voxel": text_array([t[0] for t in terms]),
        "t_field": text_array([t[1] for t in terms]),
        "t_value": text_array([t[2] for t in terms]),
        "t_shown": text_array([t[3] for t in terms]),
    }
    conn.exec_driver_sql(_INDEX_PG, columns)


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


_LANGUAGES = (
    "WITH RECURSIVE l(lang) AS (SELECT (SELECT min(lang) FROM search_docs WHERE lang > '') "
    "UNION ALL SELECT (SELECT min(lang) FROM search_docs WHERE lang > l.lang) FROM l "
    "WHERE l.lang IS NOT NULL) SELECT lang FROM l WHERE lang IS NOT NULL LIMIT :limit"
)


def languages_statement(limit: int = 64) -> str:
    """:func:`indexed_languages`' statement, the limit written in (no parameter)."""
    return _LANGUAGES.replace(":limit", str(int(limit)))


def languages_array(limit: int = 64) -> str:
    """PostgreSQL: the index's languages as an array expression, to read within a statement.

    In :func:`indexed_languages`' order.
    """
    return f"ARRAY({languages_statement(limit)})"


def indexed_languages(conn: Connection, *, limit: int = 64) -> list[str]:
    """The distinct languages of the indexed documents (what queries are stemmed in).

    A skip scan of the ``lang`` index: one lookup per language, however many documents, in
    one recursive statement on both backends (one round trip on PostgreSQL; on SQLite one
    statement instead of one per language plus one, each 20-40 µs of SQLAlchemy overhead
    around a 5 µs lookup -- it runs before every search with words).
    """
    rows = conn.execute(text(_LANGUAGES), {"limit": limit}).scalars()
    return [str(lang) for lang in rows]
