"""Benchmark: classify throughput with telemetry all on vs all off (the roadmap's budget).

Same corpus (real files from this machine, ``benchmarks/corpus.py``), same run, alternating
off / on (which goes first alternates too), each measurement in its own child process. The pipeline is the classify stage through
the engine (admission, object store, Magika, events, journal), as in ``benchmarks/classify.py``.

- **off** (the baseline): every Prometheus metric of ``thunderline.obs.metrics`` replaced by a
  no-op object (the code paths still call them), the thunderline logger silenced, no tracing.
- **on**: the real metrics, served on ``/metrics`` and scraped every second by a thread (as
  Prometheus would), JSON logs at INFO on stderr, and OpenTelemetry spans per stage and batch
  exported over OTLP/HTTP (batch processor) to a local sink in the child.

Goal: on / off >= 0.97 (files per second, best of the rounds). Also printed: the ratio of each
round, and ``cpu_ratio`` (off / on CPU milliseconds per file of the child process, best of the
rounds), which a loaded machine disturbs less than wall time.

Usage: .venv/bin/python benchmarks/telemetry.py [--files 500] [--rounds 3]
The last line printed is one JSON object (ARCHITECTURE §9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BATCH = 16


class _NullMetric:
    """Accepts every call a metric gets and does nothing."""

    def labels(self, *args: Any, **kwargs: Any) -> _NullMetric:
        return self

    def inc(self, *args: Any, **kwargs: Any) -> None:
        pass

    dec = set = observe = inc


def metrics_off() -> None:
    from prometheus_client import Counter, Gauge, Histogram

    from thunderline.obs import metrics

    for name in dir(metrics):
        if isinstance(getattr(metrics, name), Counter | Gauge | Histogram):
            setattr(metrics, name, _NullMetric())


class _Sink(BaseHTTPRequestHandler):
    requests = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def telemetry_on() -> tuple[Any, Any, threading.Event]:
    """Metrics served and scraped, JSON logs at INFO, spans exported over OTLP/HTTP."""
    from thunderline.config import load_settings
    from thunderline.obs import configure_tracing, start_metrics_server
    from thunderline.obs.logs import configure_logging

    configure_logging("INFO", "json")
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    provider = configure_tracing(
        load_settings(otlp_endpoint=f"http://127.0.0.1:{sink.server_port}")
    )
    server = start_metrics_server(0)
    stop = threading.Event()

    def scrape() -> None:
        while not stop.wait(1.0):
            with urllib.request.urlopen(server.url, timeout=5) as response:
                response.read()

    threading.Thread(target=scrape, daemon=True).start()
    return provider, server, stop


def _cpu_s() -> float:
    """CPU time of this process, all threads (less disturbed by other load than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(mode: str, paths: list[Path]) -> dict[str, Any]:
    from thunderline.classify import ClassifyStage
    from thunderline.classify.walk import Candidate
    from thunderline.config import load_settings
    from thunderline.objects import LocalObjectStore
    from thunderline.runtime import Runtime, ingest_event

    if mode == "off":
        import logging

        metrics_off()
        logging.getLogger("thunderline").setLevel(logging.CRITICAL)
        provider = server = stop = None
    else:
        provider, server, stop = telemetry_on()
    home = Path(tempfile.mkdtemp(prefix="tl-bench-telemetry-"))
    settings = load_settings(home=home, classify_batch_size=BATCH, routes={"*": []})

    async def go() -> tuple[float, int]:
        ends: list[Any] = []
        stage = ClassifyStage(settings, LocalObjectStore(home / "objects"))
        async with Runtime(settings, on_terminal=ends.append, stages=[stage]) as runtime:
            started = time.perf_counter()
            for path in paths:
                await runtime.submit(ingest_event(Candidate(path, path.parent)))
            await runtime.wait_idle()
            return time.perf_counter() - started, sum(1 for e in ends if e.is_dlq)

    cpu_before = _cpu_s()
    wall, dlq = asyncio.run(go())
    cpu = _cpu_s() - cpu_before
    spans_posted = 0
    if stop is not None and server is not None:
        stop.set()
        server.close()
    if provider is not None:
        provider.shutdown()
        spans_posted = _Sink.requests
    return {
        "mode": mode,
        "files": len(paths),
        "wall_s": round(wall, 3),
        "files_per_s": round(len(paths) / wall, 2),
        "cpu_ms_per_file": round(cpu * 1000 / len(paths), 3),
        "dlq": dlq,
        "otlp_requests": spans_posted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["off", "on"])
    parser.add_argument("--listing", type=Path)
    args = parser.parse_args()
    if args.child:
        paths = [Path(p) for p in args.listing.read_text().splitlines()]
        print(json.dumps(run(args.child, paths)))
        return

    sys.path.insert(0, str(HERE))
    from corpus import build_corpus

    # the first --files of the 1,000-file corpus (a smaller n would rebuild the shared corpus)
    paths = build_corpus(HERE / ".corpus", n=max(args.files, 1000))[: args.files]
    listing = Path(tempfile.mkstemp(suffix=".txt")[1])
    listing.write_text("\n".join(str(p) for p in paths))
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for round_ in range(args.rounds):
        # alternate which mode goes first (the second run of a round finds warmer caches)
        for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--listing", str(listing)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            runs[mode].append(json.loads(out.splitlines()[-1]))
            print(f"{mode}: {runs[mode][-1]}", file=sys.stderr)
    best = {m: max(r, key=lambda x: x["files_per_s"]) for m, r in runs.items()}
    print(
        json.dumps(
            {
                "name": "telemetry",
                "baseline": {
                    "what": "classify stage, metrics no-op, logs silenced, no tracing",
                    **best["off"],
                    "all_files_per_s": [r["files_per_s"] for r in runs["off"]],
                },
                "ours": {
                    "what": "classify stage, metrics served + scraped 1/s, JSON logs at INFO, "
                    "OTLP/HTTP spans per stage and batch",
                    **best["on"],
                    "all_files_per_s": [r["files_per_s"] for r in runs["on"]],
                },
                "ratio": round(best["on"]["files_per_s"] / best["off"]["files_per_s"], 3),
                "round_ratios": [
                    round(on["files_per_s"] / off["files_per_s"], 3)
                    for off, on in zip(runs["off"], runs["on"], strict=True)
                ],
                "cpu_ratio": round(
                    min(r["cpu_ms_per_file"] for r in runs["off"])
                    / min(r["cpu_ms_per_file"] for r in runs["on"]),
                    3,
                ),
                "goal": 0.97,
                "unit": "files/s (on/off), best of the rounds",
                "machine": {
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
