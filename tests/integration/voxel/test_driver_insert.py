"""``db.DriverInsert``: the driver's executemany stores what Core's did and counts what went in."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from thunderline.config import Settings
from thunderline.voxel.db import DriverInsert, insert_ignore, make_engine, migrate
from thunderline.voxel.tables import voxel_payloads


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> str:
    if request.param == "sqlite":
        return make_settings().resolved_database_url
    return str(request.getfixturevalue("pg_schema_url"))


def test_rows_and_row_counts_match_core(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    stmt = insert_ignore(engine, voxel_payloads)
    ours = DriverInsert(engine, stmt, ("sha256", "size", "data"))
    rows = [{"sha256": f"{i:064x}", "size": i, "data": bytes([i]) * i} for i in range(5)]
    with engine.begin() as conn:
        assert ours.run(conn, rows[:3]) == 3
        assert ours.run(conn, rows[:3]) == 0  # ON CONFLICT DO NOTHING: none went in
        assert ours.run(conn, rows[2:]) == 2  # one stored, two new
    with engine.begin() as conn:
        stored = {r.sha256: (r.size, bytes(r.data)) for r in conn.execute(select(voxel_payloads))}
        conn.execute(voxel_payloads.delete())
        conn.execute(stmt, rows)  # what SQLAlchemy Core's executemany stores
        core = {r.sha256: (r.size, bytes(r.data)) for r in conn.execute(select(voxel_payloads))}
    assert stored == core == {r["sha256"]: (r["size"], r["data"]) for r in rows}
    engine.dispose()
