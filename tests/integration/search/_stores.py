"""Shared by the search tests: real examples ingested once, then the same voxels on SQLite and in
a PostgreSQL schema of their own."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from thunderline.classify import iter_candidates
from thunderline.config import Settings, load_settings
from thunderline.runtime import Runtime
from thunderline.voxel.store import VoxelStore

REPO = Path(__file__).resolve().parents[3]


def ingest_examples(root: Path, files: list[str]) -> Settings:
    """Ingest ``files`` of ``examples/`` through the real runtime (ONNX on); its settings."""
    inbox = root / "in"
    inbox.mkdir()
    for name in files:
        shutil.copy(REPO / "examples" / name, inbox / name)
    return ingest_inbox(root)


def ingest_inbox(root: Path) -> Settings:
    """Ingest the files in ``root / "in"`` through the real runtime (ONNX on); its settings."""
    inbox = root / "in"
    settings = load_settings(
        home=root / "home", spacy_workers=1, onnx_enabled=True, onnx_model_dir=REPO / "models"
    )

    async def run() -> None:
        async with Runtime(settings) as runtime:
            await runtime.submit_files(iter_candidates([inbox]))
            await runtime.wait_idle(300)

    asyncio.run(run())
    return settings


def pg_schema_url(pg_url: str, prefix: str) -> Iterator[str]:
    """A database URL whose search path is a fresh schema, dropped afterwards (a generator)."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def store_on(request: pytest.FixtureRequest, ingested: Settings) -> Iterator[VoxelStore]:
    """The ingested voxels on ``request.param``'s backend (copied into PostgreSQL for it)."""
    sqlite = VoxelStore(ingested)
    if request.param == "sqlite":
        yield sqlite
        sqlite.close()
        return
    url = request.getfixturevalue("pg_store_url")
    pg = VoxelStore(ingested.model_copy(update={"database_url": url}), sqlite.objects)
    voxels = [sqlite.get(i) for i in sqlite.iter_ids()]
    assert all(r.created for r in pg.put_many([(v, None) for v in voxels]))
    sqlite.close()
    yield pg
    pg.close()
