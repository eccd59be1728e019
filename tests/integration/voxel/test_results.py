"""Result versions written at once for one voxel and stage (SQLite and PostgreSQL): two copies of
one reprocess item recorded together make one version, and two runs make two, without an error."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thunderline.config import Settings
from thunderline.sources.runner import sync_once
from thunderline.sources.scan import parse_source
from thunderline.voxel.results import ResultVersion, ResultVersions
from thunderline.voxel.store import VoxelStore

REPO = Path(__file__).resolve().parents[3]
OLD = 1_700_000_000.0


def _together(
    results: ResultVersions, calls: list[dict[str, Any]]
) -> list[ResultVersion | BaseException]:
    """``results.add(**call)`` for each call in its own thread, all at once; each holds its
    transaction open a moment after writing, so the others write meanwhile."""
    start = threading.Barrier(len(calls))
    out: list[ResultVersion | BaseException] = [RuntimeError("not run")] * len(calls)

    def add(n: int) -> None:
        try:
            start.wait()
            out[n] = results.add(**calls[n], then=lambda _conn, _version: time.sleep(0.3))
        except BaseException as exc:  # returned to the test
            out[n] = exc

    threads = [threading.Thread(target=add, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_versions_written_at_once_are_neither_lost_nor_doubled(
    backend: str,
    tmp_path: Path,
    settings_on: Callable[..., Settings],
) -> None:
    settings = settings_on(backend, source_settle_s=0.5)  # code: extract + package
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.py").write_bytes((REPO / "examples" / "colorsys.py").read_bytes())
    os.utime(inbox / "a.py", (OLD, OLD))
    assert asyncio.run(sync_once(settings, parse_source(str(inbox)))).voxels == 1

    with VoxelStore(settings) as store:
        results = ResultVersions(engine=store.engine)
        (voxel_id,) = store.iter_ids()
        voxel = store.get(voxel_id)
        result = dict(voxel.traits["extract"])

        # two copies of one item (the broker delivered it twice), recorded at once
        copies = _together(
            results,
            [
                {
                    "voxel": voxel,
                    "stage": "extract",
                    "result": result,
                    "run_id": "r1",
                    "event_id": e,
                }
                for e in ("copy-1", "copy-2")
            ],
        )
        written = [v for v in copies if isinstance(v, ResultVersion)]
        assert len(written) == 2, copies
        assert {(v.seq, v.run_id) for v in written} == {(2, "r1")}
        assert len({v.id for v in written}) == 1  # the same row, returned to both

        # two runs at once: both kept, one after the other
        runs = _together(
            results,
            [
                {"voxel": voxel, "stage": "extract", "result": result, "run_id": r, "event_id": r}
                for r in ("r2", "r3")
            ],
        )
        made = [v for v in runs if isinstance(v, ResultVersion)]
        assert len(made) == 2, runs
        assert sorted(v.seq for v in made) == [3, 4]
        assert sorted(str(v.run_id) for v in made) == ["r2", "r3"]

        versions = results.versions(voxel)["extract"]
        assert [v.seq for v in versions] == [1, 2, 3, 4]
        assert [v.current for v in versions] == [False, False, False, True]
