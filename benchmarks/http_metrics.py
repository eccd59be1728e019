"""Cost of the HTTP metrics middleware of ``thunderline serve``: the same app with and without it.

Baseline: the real application (``create_app``) built with ``instrument=False``; ours: the
same with the :class:`~thunderline.api.httpmetrics.HttpMetrics` middleware. Both answer the
same requests called straight through ASGI (no socket, so the middleware's share is not
hidden by network time): ``GET /healthz`` (the cheapest route: the worst case for a relative
overhead) and ``GET /v1/voxels/{id}`` of a missing id (auth, routing, a database query, a
404 body). The service is not started (``/healthz`` needs nothing; the voxel route answers
from an empty store opened for the run). Reported: microseconds per request (median of 5
rounds) and the ratio ours / baseline per route (1.0 = free).

    .venv/bin/python benchmarks/http_metrics.py      # BENCH_HTTP_REQUESTS=... (default 3000)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from thunderline.api import ApiService, Scope, TokenStore, create_app
from thunderline.config import load_settings
from thunderline.voxel.store import VoxelStore

N = int(os.environ.get("BENCH_HTTP_REQUESTS", "3000"))
ROUNDS = 5


async def call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def per_request_us(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> float:
    assert await call(app, path, headers) in {200, 404}
    started = time.perf_counter()
    for _ in range(N):
        await call(app, path, headers)
    return (time.perf_counter() - started) / N * 1e6


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp), onnx_enabled=False)
        token, _ = TokenStore(settings).create(Scope.READ, "benchmark")
        headers = [(b"authorization", f"Bearer {token}".encode())]
        service = ApiService(settings)
        service.voxels = VoxelStore(settings)  # the read path the voxel route uses
        apps = {
            "baseline": create_app(settings, service, instrument=False),
            "ours": create_app(settings, service, instrument=True),
        }
        routes = {
            "healthz": "/healthz",
            "voxel_404": "/v1/voxels/01234567-89ab-7def-8123-456789abcdef",
        }
        out: dict[str, Any] = {}
        for label, path in routes.items():
            times: dict[str, list[float]] = {"baseline": [], "ours": []}
            for _ in range(ROUNDS):  # interleaved rounds: load changes hit both sides
                for side, app in apps.items():
                    times[side].append(await per_request_us(app, path, headers))
            base = statistics.median(times["baseline"])
            ours = statistics.median(times["ours"])
            out[label] = {
                "baseline_us": round(base, 1),
                "ours_us": round(ours, 1),
                "ratio": round(ours / base, 3),
                "overhead_us": round(ours - base, 1),
            }
        service.voxels.close()
    return {
        "benchmark": "http_metrics",
        "requests_per_round": N,
        "rounds": ROUNDS,
        **out,
        "ratio": out["voxel_404"]["ratio"],
        "goal": "ratio <= 1.10 on a route that does work (voxel_404)",
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
