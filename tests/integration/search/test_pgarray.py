"""The search index's array literals on a real PostgreSQL: read back as psycopg's lists are."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from thunderline.config import Settings
from thunderline.objects.local import LocalObjectStore
from thunderline.search.hook import docs_for
from thunderline.search.lifecycle import check
from thunderline.search.pgarray import float_array, int_array, text_array
from thunderline.voxel.schema import Voxel, seal
from thunderline.voxel.store import VoxelStore

HOSTILE = [
    "plain",
    'with "quotes"',
    "back\\slash",
    "\\",
    '"',
    '\\"',
    "{braces}",
    "a,b",
    " lead",
    "trail ",
    "",
    "NULL",
    "null",
    "tab\there",
    "new\nline",
    "Grüße 日本語 🎉",
    "x\u2028y\u3000z\u00a0",
    "%s %(x)s",
    None,
]


@pytest.fixture
def conn(pg_schema_url: str) -> Iterator[psycopg.Connection]:
    dsn = pg_schema_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        yield connection


def _text_both(conn: psycopg.Connection, values: list[str | None]) -> tuple[object, object]:
    ours = conn.execute("SELECT %s::text[]", (text_array(values),)).fetchone()
    theirs = conn.execute("SELECT %s::text[]", (values,)).fetchone()
    assert ours is not None and theirs is not None
    return ours[0], theirs[0]


def test_hostile_text_reads_back_as_the_list_does(conn: psycopg.Connection) -> None:
    ours, theirs = _text_both(conn, HOSTILE)
    assert ours == theirs == HOSTILE
    assert _text_both(conn, []) == ([], [])
    assert _text_both(conn, [None, None]) == ([None, None], [None, None])


def test_numbers_read_back_exactly(conn: psycopg.Connection) -> None:
    floats = [1733372400.123456, 0.1, -2.5e-300, 1e22, 5e-324, 1.7976931348623157e308]
    row = conn.execute(
        "SELECT %s::float8[], %s::float8[], %s::bigint[]",
        (float_array(floats), floats, int_array([0, -(2**63), 2**63 - 1])),
    ).fetchone()
    assert row is not None
    assert row[0] == row[1] == floats
    assert row[2] == [0, -(2**63), 2**63 - 1]


def test_a_nul_is_refused_as_before(conn: psycopg.Connection) -> None:
    for param in (text_array(["a\x00b"]), ["a\x00b"]):  # ours, and the list as psycopg had it
        with pytest.raises(psycopg.DataError, match="NUL"):
            conn.execute("SELECT %s::text[]", (param,))
        conn.rollback()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
            ),
        )
    )
)
def test_any_text_reads_back_as_the_list_does(
    conn: psycopg.Connection, values: list[str | None]
) -> None:
    ours, theirs = _text_both(conn, values)
    assert ours == theirs == values


def _voxel(objects: LocalObjectStore, i: int, word: str | None) -> tuple[Voxel, bytes]:
    data = f"payload {i}".encode()
    stored = objects.put_bytes(data)
    text_ref = objects.put_bytes(f"body {i}: {word} and more".encode()).ref
    traits: dict[str, Any] = {
        "artifact": {"name": f"{word}.txt"},
        "classification": {"label": word, "group": "text"},
        "extract": {"text_ref": text_ref},
        "nlp": {"lang": "de" if i % 2 else None, "entities": [{"text": word, "label": "ORG"}]},
        "inference": {"model": "text_classifier", "top_k": [{"label": word, "score": 0.9}]},
    }
    traits["nlp"] = {k: v for k, v in traits["nlp"].items() if v is not None}
    voxel = seal(
        {
            "id": f"01a241a0-0000-7000-8000-{i:012d}",
            "ts": datetime(2026, 12, 5, 6, 7, 8, 123456 + i, tzinfo=UTC),
            "source": f"file:///in/{i}",
            "coords": {"t": 0.0, "channel": "text", "position": 0},
            "traits": traits,
            "payload_ref": stored.ref,
            "payload_size": len(data),
            "checksums": {"payload_sha256": stored.sha256},
            "correlation_id": "c",
            "event_id": f"e{i}",
        }
    )
    return voxel, data


def test_hostile_index_rows_are_stored_as_the_document_says(
    make_settings: Callable[..., Settings], pg_schema_url: str
) -> None:
    settings = make_settings(database_url=pg_schema_url, inline_payload_max_bytes=2048)
    objects = LocalObjectStore(settings.home / "objects")
    words = [w if w else "x" for w in HOSTILE if w is not None and w.strip()]
    items = [_voxel(objects, i, w) for i, w in enumerate(words)]
    with VoxelStore(settings, objects) as store:
        assert all(r.created for r in store.put_many(items))
        docs = {d.voxel_id: d for d in docs_for(objects, [v for v, _ in items], 20_000)}
        with store.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT voxel_id, ts_unix, label, grp, lang, kind, size, name, "
                    "content_sha256, body FROM search_docs"
                )
            ).all()
            terms = conn.execute(
                text(
                    "SELECT d.voxel_id, t.field, t.value, t.shown FROM search_terms t "
                    "JOIN search_docs d USING (doc_no)"
                )
            ).all()
        assert len(rows) == len(items)
        for row in rows:
            doc = docs[row.voxel_id]
            assert tuple(row) == (
                doc.voxel_id,
                doc.ts_unix,
                doc.label,
                doc.group,
                doc.lang,
                doc.kind,
                doc.size,
                doc.name,
                doc.content_sha256,
                doc.body,
            )
        assert sorted(tuple(t) for t in terms) == sorted(
            (d.voxel_id, *term) for d in docs.values() for term in d.terms()
        )
        assert check(store, [v.id for v, _ in items]) == []
