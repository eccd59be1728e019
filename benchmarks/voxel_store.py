"""Voxel store throughput: batched writes/s and verified reads/s on SQLite and PostgreSQL.

Baseline (primary): the very rows our store wrote for each batch (voxels, inline payloads,
lineage, search index) written with plain SQLAlchemy ``executemany`` into a second database
of the same schema (our migrations: same tables, indexes and constraints), one transaction per
table and batch. Second figure: the voxel rows into a bare primary-key-only table of the same
columns (no checks, no upsert, no lineage, no index). Ours: :meth:`VoxelStore.put_many`
(payload verified before writing, metadata checksum checked, one multi-row ``INSERT ... ON
CONFLICT DO NOTHING ... RETURNING`` per table and batch, lineage checked per batch, search
index rows in the same transaction). Reads: :meth:`VoxelStore.read_payload` (SHA-256
re-hashed on every read) against the same bytes read without hashing. Writes alternate bare,
ours and same-schema per batch, reads per voxel, so load hits all. CPU-seconds are this
process's (on PostgreSQL the server's are not in them). PostgreSQL runs in throw-away schemas
and is skipped when unreachable.

Goals: writes >= 0.8x the same-schema ``executemany`` on each backend; verified reads >= 0.95x.

Run: ``.venv/bin/python benchmarks/voxel_store.py`` (last line: one JSON object).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from typing import Any
from urllib.parse import quote

from sqlalchemy import Column, Engine, MetaData, String, Table, insert, select

from thunderline.config import load_settings
from thunderline.events import INGEST_CLASSIFIED, INGEST_RECEIVED, new_event
from thunderline.objects.local import LocalObjectStore
from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.db import make_engine, migrate
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import VoxelStore, dedup_key
from thunderline.voxel.tables import voxels as voxel_table

N = int(os.environ.get("BENCH_VOXELS", "2000"))
GOAL = 0.8
SKIP = ("alembic_version", "thunderline_voxel_version", "bench_raw_voxels")
BATCH = 100
PAYLOAD = 1024
PG_URL = os.environ.get("TL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def make_voxels(objects: LocalObjectStore) -> list[tuple[Voxel, bytes]]:
    builder = VoxelBuilder()
    out = []
    for i in range(N):
        data = os.urandom(PAYLOAD)
        stored = objects.put_bytes(data)
        artifact = {
            "name": f"f{i}.bin",
            "path": None,
            "size": stored.size,
            "sha256": stored.sha256,
            "payload_ref": stored.ref,
            "source": f"file:///bench/f{i}.bin",
        }
        ingest = new_event(INGEST_RECEIVED, {"artifact": artifact, "route": ["classify"]})
        classified = ingest.derive(
            INGEST_CLASSIFIED,
            {
                "artifact": artifact,
                "classification": {
                    "label": "unknown",
                    "group": "unknown",
                    "mime": "application/octet-stream",
                    "score": 1.0,
                    "is_text": False,
                    "description": "Unknown binary data",
                    "dl_label": "unknown",
                    "overwrite_reason": "none",
                    "model": "standard_v3_3",
                },
                "route": ["package"],
            },
        )
        out.append((builder.build(classified), data))
    return out


def raw_table() -> Table:
    md = MetaData()
    cols = [Column(c.name, c.type, primary_key=c.primary_key) for c in voxel_table.columns]
    return Table("bench_raw_voxels", md, *cols, Column("payload", String))


def rows_of(items: list[tuple[Voxel, bytes]]) -> list[dict[str, Any]]:
    return [
        {
            "id": v.id,
            "dedup_key": dedup_key(v.source, v.payload_sha256),
            "event_id": v.event_id,
            "correlation_id": v.correlation_id,
            "causation_id": v.causation_id,
            "source": v.source,
            "ts_unix": v.ts.timestamp(),
            "label": v.label,
            "payload_sha256": v.payload_sha256,
            "payload_size": v.payload_size,
            "payload_location": "inline",
            "metadata_sha256": v.checksums.metadata_sha256,
            "schema_version": v.schema_version,
            "doc": v.to_json(),
            "payload": data.hex(),
        }
        for v, data in items
    ]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_backend(
    name: str, url: str, raw_url: str, items: list[tuple[Voxel, bytes]], home: Path
) -> dict[str, Any]:
    """``url``: our store's database; ``raw_url``: an empty database of its own, migrated to
    the same schema, for the same-schema baseline."""
    from _cost import insert_rows, read_rows

    settings = load_settings(home=home, database_url=url, inline_payload_max_bytes=PAYLOAD + 1)
    objects = LocalObjectStore(home / "objects")
    for _voxel, data in items:
        objects.put_bytes(data)
    engine: Engine = make_engine(url)
    table = raw_table()
    table.metadata.create_all(engine)
    rows = rows_of(items)
    store = VoxelStore(settings, objects)
    raw_engine: Engine = make_engine(raw_url)
    migrate(raw_engine)  # the same tables, indexes and constraints as ours (untimed)
    bare = {"wall": 0.0, "cpu": 0.0}
    ours = {"wall": 0.0, "cpu": 0.0}
    same = {"wall": 0.0, "cpu": 0.0}
    seen: set[str] = set()
    for i in range(0, len(rows), BATCH):  # alternate: bare batch, ours, same-schema baseline
        w0, c0 = time.perf_counter(), _cpu()
        with engine.begin() as conn:
            conn.execute(insert(table), rows[i : i + BATCH])
        w1, c1 = time.perf_counter(), _cpu()
        store.put_many(items[i : i + BATCH])
        w2, c2 = time.perf_counter(), _cpu()
        # the rows this batch added to every table of ours (untimed), then executemany of
        # them into the same schema (timed)
        fresh = _new_rows(read_rows(store.engine, skip=SKIP), seen)
        w3, c3 = time.perf_counter(), _cpu()
        insert_rows(raw_engine, fresh, batch=BATCH)
        w4, c4 = time.perf_counter(), _cpu()
        bare["wall"] += w1 - w0
        bare["cpu"] += c1 - c0
        ours["wall"] += w2 - w1
        ours["cpu"] += c2 - c1
        same["wall"] += w4 - w3
        same["cpu"] += c4 - c3
    tables = {k: len(v) for k, v in read_rows(raw_engine).items()}
    # reads, alternating raw and verified per voxel
    raw_read_s = our_read_s = 0.0
    for v, data in items:
        t0 = time.perf_counter()
        raw = store.read_raw(v)
        t1 = time.perf_counter()
        verified = store.read_payload(v)
        t2 = time.perf_counter()
        assert raw == verified == data
        raw_read_s += t1 - t0
        our_read_s += t2 - t1
    # a second pass of writes: everything already stored (idempotent upserts)
    started = time.perf_counter()
    for i in range(0, len(items), BATCH):
        results = store.put_many(items[i : i + BATCH])
        assert not any(r.created for r in results)
    dup_write_s = time.perf_counter() - started
    with engine.begin() as conn:
        assert len(conn.execute(select(table.c.id)).all()) == len(items)
    table.metadata.drop_all(engine)
    store.close()
    engine.dispose()
    raw_engine.dispose()
    return {
        "backend": name,
        "baseline": {
            "same_schema_writes_per_s": round(N / same["wall"], 1),
            "same_schema_cpu_us_per_voxel": round(same["cpu"] / N * 1e6, 1),
            "same_schema_rows": tables,
            "bare_pk_writes_per_s": round(N / bare["wall"], 1),
            "bare_pk_cpu_us_per_voxel": round(bare["cpu"] / N * 1e6, 1),
            "raw_reads_per_s": round(N / raw_read_s, 1),
        },
        "ours": {
            "writes_per_s": round(N / ours["wall"], 1),
            "cpu_us_per_voxel": round(ours["cpu"] / N * 1e6, 1),
            "idempotent_rewrites_per_s": round(N / dup_write_s, 1),
            "verified_reads_per_s": round(N / our_read_s, 1),
            "verify_cost_us_per_read": round((our_read_s - raw_read_s) / N * 1e6, 1),
        },
        # primary: the same rows into the same schema; CPU is this process only (on
        # PostgreSQL the server's CPU is not in it, so its wall ratio is shown as well)
        "write_ratio": round(same["wall"] / ours["wall"], 3),
        "write_cpu_ratio": round(same["cpu"] / ours["cpu"], 3),
        "bare_write_ratio": round(bare["wall"] / ours["wall"], 3),
        "bare_write_cpu_ratio": round(bare["cpu"] / ours["cpu"], 3),
        "read_ratio": round(raw_read_s / our_read_s, 3),
    }


def _new_rows(rows: dict[str, list[dict[str, Any]]], seen: set[str]) -> dict[str, Any]:
    """The rows not returned by an earlier call (``seen`` holds their fingerprints)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, table_rows in rows.items():
        for row in table_rows:
            key = f"{name}:{sorted((k, repr(v)) for k, v in row.items())}"
            if key not in seen:
                seen.add(key)
                out.setdefault(name, []).append(row)
    return out


def pg_schema_url() -> tuple[str, str] | None:
    try:
        import psycopg

        dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        schema = f"tl_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"{PG_URL}?options={quote(f'-csearch_path={schema}')}", schema
    except Exception as exc:
        print(f"PostgreSQL unavailable, skipped: {exc}", file=sys.stderr)
        return None


def drop_schema(schema: str) -> None:
    import psycopg

    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tl-bench-voxel-") as tmp:
        root = Path(tmp)
        items = make_voxels(LocalObjectStore(root / "seed"))
        results = [
            bench_backend(
                "sqlite",
                f"sqlite:///{root / 'bench.db'}",
                f"sqlite:///{root / 'raw.db'}",
                items,
                root / "sq",
            )
        ]
        pg, pg_raw = pg_schema_url(), pg_schema_url()
        try:
            if pg is not None and pg_raw is not None:
                results.append(bench_backend("postgresql", pg[0], pg_raw[0], items, root / "pg"))
        finally:
            for made in (pg, pg_raw):
                if made is not None:
                    drop_schema(made[1])
    for r in results:
        print(f"{r['backend']:>10}: baseline {r['baseline']}  ours {r['ours']}", file=sys.stderr)
    baseline = {f"{r['backend']}_{k}": v for r in results for k, v in r["baseline"].items()}
    ours = {f"{r['backend']}_{k}": v for r in results for k, v in r["ours"].items()}
    ratios = {
        f"{r['backend']}_{k}": r[k]
        for r in results
        for k in (
            "write_ratio",
            "write_cpu_ratio",
            "bare_write_ratio",
            "bare_write_cpu_ratio",
            "read_ratio",
        )
    }
    ratio = min(r["write_ratio"] for r in results)
    met = all(r["write_ratio"] >= GOAL and r["read_ratio"] >= 0.95 for r in results)
    print(
        json.dumps(
            {
                "name": "voxel_store",
                "baseline": baseline,
                "ours": {**ours, "voxels": N, "batch": BATCH, "payload_bytes": PAYLOAD},
                "ratio": round(ratio, 3),
                "goal": GOAL,
                "ratios": ratios,
                "read_goal": 0.95,
                "met": met,
                "unit": "ops/s (ratio: the lower over the backends of our writes/s / plain "
                "executemany of the same rows into the same schema; bare_*: into a "
                "primary-key-only table; *_cpu_*: this process's CPU-seconds; reads: verified "
                "/ raw of the same bytes)",
                "machine": {
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "sqlalchemy": version("sqlalchemy"),
                    "psycopg": version("psycopg"),
                    "alembic": version("alembic"),
                    "sqlite": __import__("sqlite3").sqlite_version,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
