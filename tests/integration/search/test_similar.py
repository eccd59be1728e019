"""Similar documents over real ingested text, on SQLite and PostgreSQL.

Example files go through the real pipeline (extraction, spaCy, the ONNX models) into a SQLite
store; PostgreSQL gets the same voxels through ``put_many``. ``embed_missing`` (``index embed``)
stores the all-MiniLM-L6-v2 vectors; ``similar`` ranks by cosine, filtered by a query.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from tests.integration.search._stores import ingest_examples, pg_schema_url, store_on
from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.config import Settings
from thunderline.search import similar as similar_module
from thunderline.search.engine import CursorError
from thunderline.search.similar import NoEmbeddingError, cache_for, embed_missing
from thunderline.voxel.store import VoxelStore

REPO = Path(__file__).resolve().parents[3]
FILES = [
    "IDLE crédits.txt",
    "python-history.txt",
    "idle-history.txt",
    "README.md",
    "nodejs-contributing.md",
    "colorsys.py",
    "fashion-mnist-bag.png",
]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return ingest_examples(tmp_path_factory.mktemp("similar"), FILES)


@pytest.fixture(scope="module")
def pg_store_url(pg_url: str, ingested: Settings) -> Iterator[str]:
    yield from pg_schema_url(pg_url, "tl_similar")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, ingested: Settings) -> Iterator[VoxelStore]:
    yield from store_on(request, ingested)


def _id(store: VoxelStore, name: str) -> str:
    with store.engine.connect() as conn:
        found = conn.execute(
            text("SELECT voxel_id FROM search_docs WHERE name = :n"), {"n": name}
        ).scalar_one()
    return str(found)


def test_embed_then_similar(store: VoxelStore) -> None:
    with pytest.raises(NoEmbeddingError) as missing:
        store.similar(_id(store, "python-history.txt"))
    assert missing.value.details["has_text"] is True
    report = embed_missing(store, store.embedder(), batch=3)
    assert report.seen == len(FILES) and report.no_text == 1 and report.failed == 0
    assert report.embedded == len(FILES) - 1
    again = embed_missing(store, store.embedder())  # resumable: nothing left to do
    assert again.embedded == 0 and again.current == len(FILES) - 1

    history = _id(store, "python-history.txt")
    result = store.similar(history, limit=10)
    names = [h.name for h in result.hits]
    assert "python-history.txt" not in names  # never itself
    assert "fashion-mnist-bag.png" not in names  # no text, no vector
    assert names[0] == "IDLE crédits.txt"  # Guido, Python, the CWI: the nearest in meaning
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)

    filtered = store.similar(history, "label:markdown", limit=10)
    assert {h.name for h in filtered.hits} == {"README.md", "nodejs-contributing.md"}
    assert [h.name for h in store.similar(history, "name:colorsys").hits] == ["colorsys.py"]
    assert store.similar(history, "lang:de").hits == []

    first = store.similar(history, limit=2)
    assert first.next_cursor is not None
    rest = store.similar(history, limit=10, cursor=first.next_cursor)
    assert [h.name for h in first.hits + rest.hits] == names
    with pytest.raises(CursorError):
        store.similar(history, "label:txt", cursor=first.next_cursor)

    with pytest.raises(NoEmbeddingError) as no_text:
        store.similar(_id(store, "fashion-mnist-bag.png"))
    assert no_text.value.details["has_text"] is False


def test_cache_follows_writes_and_deletes(
    store: VoxelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    embed_missing(store, store.embedder())
    history = _id(store, "python-history.txt")
    before = [h.name for h in store.similar(history, limit=10).hits]
    cache = cache_for(store.engine)
    assert len(cache.ids) == len(FILES) - 1
    # the store's own vector rewritten: the cache reloads, the answer is unchanged
    embed_missing(store, store.embedder(), force=True)
    assert [h.name for h in store.similar(history, limit=10).hits] == before
    assert len(cache.ids) == len(FILES) - 1  # replaced in place, not appended
    monkeypatch.setattr(similar_module, "COUNT_CHECK_S", 0.0)  # deletions noticed at once
    with store.engine.begin() as conn:  # a vector gone (its voxel deleted cascades the same way)
        conn.execute(
            text("DELETE FROM search_vectors WHERE voxel_id = :v"),
            {"v": _id(store, "IDLE crédits.txt")},
        )
    after = [h.name for h in store.similar(history, limit=10).hits]
    assert after == [n for n in before if n != "IDLE crédits.txt"]
    assert len(cache.ids) == len(FILES) - 2
    assert np.allclose(np.linalg.norm(cache.matrix, axis=1), 1.0, atol=1e-5)


def test_cli(ingested: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_HOME", str(ingested.home))
    monkeypatch.setenv("TL_ONNX_MODEL_DIR", str(REPO / "models"))
    runner = CliRunner()
    embedded = runner.invoke(app, ["index", "embed"])
    assert embedded.exit_code == 0, embedded.output
    assert f"{len(FILES)} voxel(s)" in embedded.output
    with VoxelStore(ingested) as store:
        history = _id(store, "python-history.txt")
    found = runner.invoke(app, ["search", "--similar", history[:12], "label:txt", "--json"])
    assert found.exit_code == 0, found.output
    body = json.loads(found.output)
    assert [h["name"] for h in body["hits"]] == ["IDLE crédits.txt", "idle-history.txt"]
    bad = runner.invoke(app, ["search", "--similar", history, "label:"])
    assert bad.exit_code == 2
    unknown = runner.invoke(app, ["search", "--similar", "0" * 12])
    assert unknown.exit_code == 1
