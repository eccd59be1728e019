"""CPU-second accounting and per-thread CPU profiles for the benchmarks (not a benchmark).

CPU-seconds (user + system) are what a file costs whatever the machine's load: a busy
neighbour stretches wall-clock time, not the CPU time this run spends. :class:`CpuMeter` sums
every process of a run: this process (all its threads, ``RUSAGE_SELF``), its children that have
exited and been waited for (``RUSAGE_CHILDREN``, which also holds their own waited-for
children), and its live descendants (``psutil``, read at both ends of the window).

:class:`ThreadProfiles` runs one ``cProfile`` per thread with a CPU clock (``time.thread_time``)
so a stage's entry function's cumulative time is the CPU its thread spent in it; threads
started by native libraries (ONNX Runtime's pool) are not Python threads and are not in it.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
import resource
import threading
import time
from typing import Any


def _rusage_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _live_children() -> dict[int, tuple[str, float]]:
    import psutil

    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            times = proc.cpu_times()
            out[proc.pid] = (_kind(proc), times.user + times.system)
        except Exception:  # exited meanwhile: RUSAGE_CHILDREN has it once it is reaped
            continue
    return out


def _kind(proc: Any) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except Exception:
        return "child"
    for marker, name in (
        ("thunderline.nlp.worker", "nlp-worker"),
        ("thunderline.extract.worker", "extract-worker"),
        ("multiprocessing", "mp-worker"),
        ("thunderline", "thunderline"),
    ):
        if marker in cmd:
            return name
    return cmd[:40]


class CpuMeter:
    """CPU-seconds of this process and all its descendants over a window (``start``/``stop``)."""

    def __init__(self) -> None:
        self.self_s = self.reaped_s = 0.0
        self.by_kind: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._self0 = _rusage_s(resource.RUSAGE_SELF)
        self._reaped0 = _rusage_s(resource.RUSAGE_CHILDREN)
        self._live0 = _live_children()
        self._wall0 = time.perf_counter()
        return self

    def stop(self) -> CpuMeter:
        live = _live_children()
        self.wall_s = time.perf_counter() - self._wall0
        self.self_s = _rusage_s(resource.RUSAGE_SELF) - self._self0
        # a child that exited in the window is in RUSAGE_CHILDREN whole (its CPU before the
        # window too: an overcount, never an undercount)
        self.reaped_s = _rusage_s(resource.RUSAGE_CHILDREN) - self._reaped0
        self.by_kind = {"parent": self.self_s}
        if self.reaped_s:
            self.by_kind["exited-children"] = self.reaped_s
        for pid, (kind, cpu) in live.items():
            before = self._live0.get(pid, (kind, 0.0))[1]
            self.by_kind[kind] = self.by_kind.get(kind, 0.0) + cpu - before
        return self

    @property
    def total_s(self) -> float:
        return sum(self.by_kind.values())

    def report(self) -> dict[str, Any]:
        return {
            "total_s": round(self.total_s, 3),
            "by_process_s": {k: round(v, 3) for k, v in self.by_kind.items()},
            "wall_s": round(self.wall_s, 3),
        }


def cpu_of(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """``fn(*args, **kwargs)``, its CPU-seconds (this process and reaped children) and wall."""
    meter = CpuMeter().start()
    out = fn(*args, **kwargs)
    meter.stop()
    return out, meter.total_s, meter.wall_s


class ThreadProfiles:
    """A CPU-clock ``cProfile`` in this thread and every Python thread started after ``start``."""

    def __init__(self) -> None:
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _new(self) -> None:
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def start(self) -> None:
        def hook(frame: Any, event: str, arg: Any) -> None:
            self._new()  # replaces this hook in the new thread with the profiler

        threading.setprofile(hook)
        self._new()

    def stop(self) -> pstats.Stats | None:
        threading.setprofile(None)  # type: ignore[arg-type]
        stats: pstats.Stats | None = None
        for profile in self._profiles:
            try:
                profile.disable()
                profile.create_stats()
            except Exception:
                continue
            if not getattr(profile, "stats", None):
                continue
            if stats is None:
                stats = pstats.Stats(profile, stream=io.StringIO())
            else:
                stats.add(profile)
        return stats


def cumulative_s(stats: pstats.Stats, where: str, func: str) -> float:
    """The cumulative CPU-seconds of ``func`` defined in a file whose path ends ``where``.

    Recursive or re-entered calls are counted once (cProfile's own cumulative rule)."""
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name == func and filename.replace(os.sep, "/").endswith(where):
            total += ct
    return total


def top(stats: pstats.Stats, n: int = 15, *, under: str = "") -> list[dict[str, Any]]:
    """The ``n`` functions with the most own CPU time (optionally only files containing
    ``under``), as small dicts for the JSON output."""
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if under and under not in filename:
            continue
        short = filename.split("site-packages/")[-1].split("/src/")[-1]
        if short.startswith("/"):  # the standard library: name it from lib/pythonX.Y on
            short = re.sub(r"^.*/lib/python3\.\d+/", "", short)
        rows.append({"fn": f"{short}:{line}({name})", "calls": nc, "own_s": tt, "cum_s": ct})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return [{**r, "own_s": round(r["own_s"], 3), "cum_s": round(r["cum_s"], 3)} for r in rows[:n]]


# ---- the same rows into the same schema (the voxel writes' baseline) ------------------------
#: SQLite's FTS5 keeps its index in shadow tables: rows go in through the virtual table.
#: Migration bookkeeping, never copied (``search_generation``: one row the migrations seed and
#: the writes update; copying it would collide with the seeded row).
SCHEMA_VERSION_TABLES = ("alembic_version", "thunderline_voxel_version", "search_generation")
_FTS_SHADOWS = ("_data", "_idx", "_content", "_docsize", "_config")


def read_rows(engine: Any, skip: tuple[str, ...] = SCHEMA_VERSION_TABLES) -> dict[str, Any]:
    """Every row of every table of ``engine``'s database, parents before children.

    FTS5 virtual tables are read with their ``rowid`` (their shadow tables are left out)."""
    from sqlalchemy import MetaData, select, text

    md = MetaData()
    md.reflect(engine)
    fts = _fts_tables(engine)
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for table in md.sorted_tables:
            name = table.name
            if name in skip or any(name == f + s for f in fts for s in _FTS_SHADOWS):
                continue
            if name in fts:
                cols = ", ".join(c.name for c in table.columns)
                rows = [
                    dict(r)
                    for r in conn.execute(text(f"SELECT rowid, {cols} FROM {name}")).mappings()
                ]
            else:
                rows = [dict(r) for r in conn.execute(select(table)).mappings()]
            if rows:
                out[name] = rows
    return out


def _fts_tables(engine: Any) -> set[str]:
    from sqlalchemy import text

    if engine.dialect.name != "sqlite":
        return set()
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type='table' AND sql LIKE '%USING fts5%'")
        ).scalars()
        return set(found)


def insert_rows(engine: Any, rows: dict[str, Any], batch: int = 64) -> None:
    """``executemany`` of ``rows`` (from :func:`read_rows`) into ``engine``'s database: one
    transaction per ``batch`` rows of a table, every table in order."""
    from sqlalchemy import MetaData, insert, text

    md = MetaData()
    md.reflect(engine)
    fts = _fts_tables(engine)
    for name, table_rows in rows.items():
        if name in fts:
            cols = list(table_rows[0])
            stmt: Any = text(
                f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"
            )
        else:
            stmt = insert(md.tables[name])
        for i in range(0, len(table_rows), batch):
            with engine.begin() as conn:
                conn.execute(stmt, table_rows[i : i + batch])
