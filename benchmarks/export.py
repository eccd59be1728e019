"""Export memory: peak RSS of ``thunderline export`` and of a streamed ``GET /v1/export``
at two store sizes (default 10k and 100k voxels), on SQLite and PostgreSQL.

The store is built with the search benchmark's builder (:func:`search.documents` and
:func:`search.make_voxel`: windows of real text from the standard library and the system's
licences, written through ``VoxelStore.put_many`` with the search index), first to the small
size, measured, then grown to the large size in the same store and measured again.

* **CLI**: ``thunderline export --format F --out FILE`` in a child process per format, started
  through ``/usr/bin/time -f %M``: its peak RSS is the kernel's high-water mark of that process
  (not ``os.wait4`` here: a child forked from this big process would report *our* RSS at the
  fork, which Linux keeps across ``exec``), so nothing is sampled.
* **API**: one ``thunderline serve`` child for each size; each format is downloaded with a
  streamed ``httpx`` GET (the body read chunk by chunk and dropped); the server's RSS is
  sampled every 50 ms with ``psutil`` before and during the download: ``peak_rss_mb`` and
  ``growth_mb`` (peak during the download - RSS just before it).

"Constant memory" holds when the large store's peak is within a few MB of the small one's
(``flat_mb`` = large - small for each format and surface). Wall seconds and rows/s beside them.

Run: ``.venv/bin/python benchmarks/export.py`` (``BENCH_EXPORT_SIZES``, default ``10000,100000``;
``BENCH_EXPORT_BACKENDS``, default ``sqlite,postgresql``; ``BENCH_EXPORT_FORMATS``). The last
line is one JSON object. PostgreSQL runs in a throw-away schema, skipped if unreachable.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search as search_bench
from thunderline.api.tokens import hash_token
from thunderline.config import load_settings
from thunderline.voxel.store import VoxelStore

SIZES = [int(s) for s in os.environ.get("BENCH_EXPORT_SIZES", "10000,100000").split(",")]
BACKENDS = os.environ.get("BENCH_EXPORT_BACKENDS", "sqlite,postgresql").split(",")
FORMATS = os.environ.get("BENCH_EXPORT_FORMATS", "jsonl,csv,parquet").split(",")
PG_URL = os.environ.get("TL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TOKEN = "tl_benchmark_token_not_secret"
BATCH = 500
#: "Constant memory": the large store's peak RSS within this many MB of the small one's.
FLAT_MB = 8.0
THUNDERLINE = str(Path(sys.executable).with_name("thunderline"))
TIME = "/usr/bin/time"  # GNU time: the child's own peak RSS (%M)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def child_env(home: Path, url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TL_")}
    env.update({"TL_HOME": str(home), "TL_LOG_LEVEL": "ERROR", "TL_SPACY_WORKERS": "1"})
    if url:
        env["TL_DATABASE_URL"] = url
    return env


def grow(store: VoxelStore, docs: list[tuple[str, str]], start: int, stop: int) -> float:
    """Write documents[start:stop] through put_many (index included); returns seconds."""
    began = time.perf_counter()
    for first in range(start, stop, BATCH):
        items = [
            search_bench.make_voxel(first + j, name, body, store)
            for j, (name, body) in enumerate(docs[first : min(stop, first + BATCH)])
        ]
        store.put_many(items)
    return time.perf_counter() - began


def cli_export(home: Path, url: str | None, fmt: str, out: Path) -> dict[str, Any]:
    """Peak RSS (the kernel's high-water mark, via ``time -f``) of one ``thunderline export``."""
    began = time.perf_counter()
    command = [THUNDERLINE, "export", "--format", fmt, "--out", str(out)]
    proc = subprocess.run(
        [TIME, "-f", "tl-peak-kb=%M cpu-s=%U+%S", *command],
        env=child_env(home, url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"export --format {fmt} failed: {proc.stderr[-2000:]!r}")
    measured = proc.stderr.strip().splitlines()[-1]
    peak_kb = int(measured.split("tl-peak-kb=")[1].split()[0])
    user, system = measured.split("cpu-s=")[1].split("+")
    size = out.stat().st_size
    out.unlink()
    return {
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "seconds": round(elapsed, 1),
        "cpu_s": round(float(user) + float(system), 1),
        "bytes": size,
        "loadavg": loadavg(),
    }


class Sampler:
    """The RSS of one process every ``interval`` seconds (peak since :meth:`reset`)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return int(self.proc.memory_info().rss)

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, self.now())
            except Exception:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_exports(home: Path, url: str | None, rows: int) -> dict[str, Any]:
    """Peak RSS of a ``thunderline serve`` process streaming each format of GET /v1/export."""
    import httpx

    port = free_port()
    env = child_env(home, url)
    env.update({"TL_API_PORT": str(port), "TL_API_TOKENS": f"{hash_token(TOKEN)}:admin"})
    server = subprocess.Popen(
        [THUNDERLINE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    out: dict[str, Any] = {}
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=600.0,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("thunderline serve did not become ready")
            time.sleep(0.3)
        sampler = Sampler(server.pid)
        try:
            for fmt in FORMATS:
                before = sampler.reset()
                began = time.perf_counter()
                received = 0
                lines = 0
                with client.stream("GET", "/v1/export", params={"format": fmt}) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        if fmt != "parquet":
                            lines += chunk.count(b"\n")
                elapsed = time.perf_counter() - began
                peak = max(sampler.peak, sampler.now())
                out[fmt] = {
                    "rss_before_mb": round(before / 2**20, 1),
                    "peak_rss_mb": round(peak / 2**20, 1),
                    "growth_mb": round((peak - before) / 2**20, 1),
                    "seconds": round(elapsed, 1),
                    "bytes": received,
                    "loadavg": loadavg(),
                }
                if fmt != "parquet":  # every row came (CSV: plus its header)
                    expected = rows + (1 if fmt == "csv" else 0)
                    out[fmt]["lines"] = lines
                    out[fmt]["complete"] = lines >= expected
        finally:
            sampler.stop()
            client.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return out


def run_backend(name: str, url: str | None, home: Path) -> dict[str, Any]:
    overrides: dict[str, Any] = {"home": home}
    if url:
        overrides["database_url"] = url
    store = VoxelStore(load_settings(**overrides))
    docs = search_bench.documents(max(SIZES))
    result: dict[str, Any] = {}
    written = 0
    for size in sorted(SIZES):
        build_s = grow(store, docs, written, size)
        written = size
        entry: dict[str, Any] = {
            "voxels": store.count(),
            "build_s": round(build_s, 1),
            "cli": {},
        }
        for fmt in FORMATS:
            entry["cli"][fmt] = cli_export(home, url, fmt, home / f"out.{fmt}")
            print(f"{name} {size} cli {fmt}: {entry['cli'][fmt]}", file=sys.stderr)
        entry["api"] = api_exports(home, url, size)
        print(f"{name} {size} api: {entry['api']}", file=sys.stderr)
        result[str(size)] = entry
    store.close()
    small, large = str(min(SIZES)), str(max(SIZES))
    if small != large:
        result["flat_mb"] = {
            f"{surface} {fmt}": round(
                result[large][surface][fmt]["peak_rss_mb"]
                - result[small][surface][fmt]["peak_rss_mb"],
                1,
            )
            for surface in ("cli", "api")
            for fmt in FORMATS
        }
    return result


def main() -> None:
    results: dict[str, Any] = {
        "benchmark": "export",
        "loadavg_at_start": loadavg(),
        "sizes": SIZES,
        "formats": FORMATS,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in BACKENDS:
            results["sqlite"] = run_backend("sqlite", None, Path(tmp) / "sqlite")
        if "postgresql" in BACKENDS:
            try:
                import psycopg

                dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
                schema = f"bench_export_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f'CREATE SCHEMA "{schema}"')
            except Exception as exc:
                results["postgresql"] = {"skipped": str(exc)}
            else:
                try:
                    sep = "&" if "?" in PG_URL else "?"
                    url = f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
                    (Path(tmp) / "pg").mkdir()
                    results["postgresql"] = run_backend("postgresql", url, Path(tmp) / "pg")
                finally:
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    growth = [
        abs(v)
        for backend in ("sqlite", "postgresql")
        for v in (results.get(backend) or {}).get("flat_mb", {}).values()
    ]
    if growth:  # constant memory: the large store's peak within FLAT_MB of the small one's
        worst = max(growth)
        results.update(ratio=round(worst, 1), met=worst <= FLAT_MB, goal=None)
        results["unit"] = f"MB, worst peak-RSS growth small -> large store (goal <= {FLAT_MB})"
    results["loadavg_at_end"] = loadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
