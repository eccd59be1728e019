"""HTTP ingest vs in-process ingest of the same files, measured in the same run.

Baseline: ``thunderline ingest`` of N 10 KB files through the in-process ``Runtime`` (what the
CLI does: submit every file, wait until each has a voxel or a DLQ record). Ours: the same files
uploaded with ``POST /v1/ingest`` by 16 concurrent httpx clients to a ``thunderline serve``
process (same settings, fresh home), timed until the live event stream has shown every ingest's outcome; the latency of
each POST (202 answer) gives p50/p95/p99, and the POST answers alone give the accept rate.
Then 20 files are uploaded one at a time on the idle server: ``single_post_p50_ms`` is the
202's latency, ``single_ingest_p50_ms`` the time from the POST to the file's outcome on the
stream (what the classify batch wait adds to one upload shows there).
The ratio is end-to-end files/s over HTTP divided by the in-process files/s (goal >= 0.8).

CPU per file: the in-process runtime's CPU-seconds over the ingest (this process, every
thread) against the ``serve`` process's over the uploads and processing (``psutil``); the
clients' CPU is shown apart (a real client runs elsewhere).

``classify_files_per_batch``: files per classify batch (one Magika call each) in the server,
from its ``/metrics``: uploads arrive one by one, and Magika's cost per file falls with the batch.

The files are random bytes (Magika: unknown -> route ``package``), so both sides measure the
ingest path (admission/upload, object store, classify, voxel) rather than spaCy.

    .venv/bin/python benchmarks/api.py            # N=320; BENCH_API_FILES=... to change
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from thunderline.api.tokens import hash_token
from thunderline.classify.walk import iter_candidates
from thunderline.config import load_settings
from thunderline.runtime import Runtime

N = int(os.environ.get("BENCH_API_FILES", "320"))
SIZE = 10 * 1024
CLIENTS = 16
#: Uploads sent one at a time after the load (latency of a single upload on an idle server).
SINGLE = 20
TOKEN = "tl_benchmark_token_not_secret"
COMMON = {"TL_SPACY_WORKERS": "1", "TL_LOG_LEVEL": "ERROR"}


def make_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(N):
        path = folder / f"file-{i:05d}.bin"
        path.write_bytes(os.urandom(SIZE))
        paths.append(path)
    return paths


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def baseline(home: Path, folder: Path) -> dict[str, Any]:
    """The in-process runtime over the folder, as `thunderline ingest` runs it."""
    for key, value in COMMON.items():
        os.environ[key] = value
    settings = load_settings(home=home)
    outcomes: list[str] = []
    async with Runtime(settings, on_terminal=lambda e: outcomes.append(e.type)) as runtime:
        candidates = list(iter_candidates([folder]))
        started, cpu0 = time.perf_counter(), _cpu_s()
        await runtime.submit_files(candidates)
        await runtime.wait_idle()
        wall = time.perf_counter() - started
        cpu = _cpu_s() - cpu0
    stored = sum(1 for t in outcomes if t == "system.voxel.created")
    return {
        "files_per_s": round(N / wall, 1),
        "wall_s": round(wall, 3),
        "cpu_ms_per_file": round(cpu / N * 1000, 3),
        "voxels": stored,
    }


def _cpu_s(pid: int | None = None) -> float:
    """CPU-seconds (user + system, every thread) of this process or of ``pid``."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def over_http(home: Path, files: list[Path]) -> dict[str, Any]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TL_")},
        **COMMON,
        "TL_HOME": str(home),
        "TL_API_PORT": str(port),
        "TL_API_TOKENS": f"{hash_token(TOKEN)}:admin",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("thunderline")), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(
            base_url=url,
            headers=headers,
            timeout=60.0,
            limits=httpx.Limits(max_connections=CLIENTS + 1, max_keepalive_connections=CLIENTS + 1),
        ) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("thunderline serve did not become ready")
                await asyncio.sleep(0.2)
            queue: asyncio.Queue[Path] = asyncio.Queue()
            for path in files:
                queue.put_nowait(path)
            latencies: list[float] = []
            cids: list[str] = []
            ended: dict[str, str] = {}
            refused = 0
            connected = asyncio.Event()
            all_ended = asyncio.Event()
            waiting: dict[str, asyncio.Event] = {}

            async def watch() -> None:
                """Terminal events from the live stream (no polling load on the server)."""
                async with client.stream("GET", "/v1/events", timeout=None) as response:
                    async for line in response.aiter_lines():
                        if line.startswith(": connected"):
                            connected.set()
                        if not line.startswith("data: "):
                            continue
                        event = json.loads(line[6:])
                        kind = event["type"]
                        if kind == "system.voxel.created" or kind.startswith("system.dlq."):
                            ended[event["correlationid"]] = kind
                            waiter = waiting.pop(event["correlationid"], None)
                            if waiter is not None:
                                waiter.set()
                            if len(ended) >= N:
                                all_ended.set()

            async def worker() -> None:
                nonlocal refused
                while not queue.empty():
                    path = queue.get_nowait()
                    data = path.read_bytes()
                    t0 = time.perf_counter()
                    response = await client.post("/v1/ingest", files={"file": (path.name, data)})
                    latencies.append(time.perf_counter() - t0)
                    if response.status_code == 202:
                        cids.append(response.json()["correlation_id"])
                    else:
                        refused += 1

            watcher = asyncio.create_task(watch())
            await asyncio.wait_for(connected.wait(), 30)
            started = time.perf_counter()
            server_cpu0, client_cpu0 = _cpu_s(server.pid), _cpu_s()
            await asyncio.gather(*(worker() for _ in range(CLIENTS)))
            accepted_wall = time.perf_counter() - started
            if refused == 0:
                await asyncio.wait_for(all_ended.wait(), 600)
            wall = time.perf_counter() - started
            server_cpu, client_cpu = _cpu_s(server.pid) - server_cpu0, _cpu_s() - client_cpu0
            batches = classify_batches((await client.get("/metrics")).text)
            single_post, single_done = await one_at_a_time(client, files[:SINGLE], waiting, ended)
            watcher.cancel()
            stored = sum(1 for c in cids if ended.get(c) == "system.voxel.created")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    ms = [x * 1000 for x in latencies]
    return {
        "files_per_s": round(N / wall, 1),
        "uploads_per_s": round(N / accepted_wall, 1),
        "wall_s": round(wall, 3),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "server_cpu_ms_per_file": round(server_cpu / N * 1000, 3),
        "client_cpu_ms_per_file": round(client_cpu / N * 1000, 3),
        "refused": refused,
        "voxels": stored,
        "single_post_p50_ms": round(statistics.median(single_post) * 1000, 2),
        "single_ingest_p50_ms": round(statistics.median(single_done) * 1000, 2),
        "classify_batches": batches,
        "classify_files_per_batch": round(N / batches, 2) if batches else None,
    }


async def one_at_a_time(
    client: httpx.AsyncClient,
    files: list[Path],
    waiting: dict[str, asyncio.Event],
    ended: dict[str, str],
) -> tuple[list[float], list[float]]:
    """Upload ``files`` one by one on the idle server; seconds to the 202 and to the outcome.

    The outcome is the file's terminal event on the live stream (it is stored again under a new
    name, so its bytes are already in the store: classify and package still run in full).
    """
    posts, done = [], []
    for path in files:
        data = path.read_bytes()
        t0 = time.perf_counter()
        response = await client.post("/v1/ingest", files={"file": (f"single-{path.name}", data)})
        posts.append(time.perf_counter() - t0)
        response.raise_for_status()
        cid = response.json()["correlation_id"]
        if cid not in ended:  # its outcome may come before the 202 is read
            event = waiting.setdefault(cid, asyncio.Event())
            await asyncio.wait_for(event.wait(), 60)
        done.append(time.perf_counter() - t0)
    return posts, done


def classify_batches(exposition: str) -> int:
    """How many classify batches (``handle_batch`` calls) the server ran, from ``/metrics``."""
    for line in exposition.splitlines():
        if line.startswith('thunderline_stage_batch_duration_seconds_count{stage="classify"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tl-bench-api-") as tmp:
        root = Path(tmp)
        files = make_files(root / "files")
        base = asyncio.run(baseline(root / "home-cli", root / "files"))
        ours = asyncio.run(over_http(root / "home-api", files))
    print(f"in-process: {base}\nhttp:       {ours}", file=sys.stderr)
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "name": "api",
                "baseline": {"ingest_files_per_s": base["files_per_s"], **base},
                "ours": {"clients": CLIENTS, "file_bytes": SIZE, "files": N, **ours},
                "ratio": round(ours["files_per_s"] / base["files_per_s"], 3),
                "cpu_ratio": round(base["cpu_ms_per_file"] / ours["server_cpu_ms_per_file"], 3),
                "goal": 0.8,
                "unit": "files/s end to end (ratio: HTTP upload by 16 clients / in-process "
                "ingest; cpu_ratio: in-process CPU per file / the server's CPU per file)",
                "machine": {
                    "cores": os.cpu_count(),
                    "loadavg_1m": round(load[0], 2),
                    "python": platform.python_version(),
                    "fastapi": version("fastapi"),
                    "uvicorn": version("uvicorn"),
                    "httpx": version("httpx"),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
