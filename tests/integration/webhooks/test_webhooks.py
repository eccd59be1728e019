"""Webhooks against a real HTTP receiver on 127.0.0.1 that is down for a while, then returns:
every event arrives, signed, as a structured CloudEvent, once per event id."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from thunderline.config import Settings
from thunderline.sources.runner import sync_once
from thunderline.sources.scan import parse_source
from thunderline.webhooks.core import Webhooks, backoff, verify_signature

SECRET = "a-test-secret-of-the-endpoint"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """Records every POST: headers, body, whether the signature verified."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                received.append(
                    {
                        "headers": headers,
                        "event": json.loads(body),
                        "signed": verify_signature(SECRET, headers, body),
                    }
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff(n, 1.0, 30.0) for n in range(1, 10)]
    assert 0.8 <= delays[0] <= 1.0 and 3.2 <= delays[2] <= 4.0
    assert all(d <= 30.0 for d in delays) and delays[-1] >= 24.0


def test_receiver_down_then_back_gets_every_event_once(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings: Settings = make_settings(
        enable_ml_pipeline=False,
        max_artifact_bytes=200,  # the big file is dead-lettered: a "failed" event
        webhook_backoff_s=0.2,
        webhook_backoff_max_s=1.0,
        webhook_max_attempts=100,
        webhook_timeout_s=2.0,
    )
    port = free_port()
    receiver = Receiver(port)
    with Webhooks(settings) as hooks:
        endpoint = hooks.add(f"http://127.0.0.1:{port}/hook", ["ingested", "failed"], SECRET)
    tree = tmp_path / "tree"
    tree.mkdir()
    old = time.time() - 3600
    for i in range(5):
        (tree / f"f{i}.txt").write_text(f"webhook file {i}\n")
        os.utime(tree / f"f{i}.txt", (old, old))
    (tree / "big.txt").write_text("x" * 1000)
    os.utime(tree / "big.txt", (old, old))
    report = asyncio.run(sync_once(settings, parse_source(str(tree))))
    assert report.voxels == 5 and report.dlq == 1

    stop = threading.Event()

    def dispatcher() -> None:
        with Webhooks(settings) as hooks:
            while not stop.is_set():
                hooks.run_once()
                stop.wait(0.1)

    thread = threading.Thread(target=dispatcher)
    thread.start()
    try:
        time.sleep(3.0)  # the receiver is down: attempts fail and are retried
        with Webhooks(settings) as hooks:
            failing = hooks.deliveries(endpoint_id=endpoint.id)
        assert len(failing) == 6 and {d["status"] for d in failing} == {"pending"}
        assert all(d["attempts"] >= 2 for d in failing)
        receiver.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with Webhooks(settings) as hooks:
                states = {d["status"] for d in hooks.deliveries(endpoint_id=endpoint.id)}
            if states == {"delivered"}:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # more rounds: nothing is sent again
    finally:
        stop.set()
        thread.join(30)
        receiver.stop()

    ids = [r["event"]["id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 6  # every event, once per event id
    types = sorted(r["event"]["type"] for r in receiver.received)
    assert types.count("system.voxel.created") == 5 and sum("dlq" in t for t in types) == 1
    assert all(r["signed"] for r in receiver.received)
    assert all(
        r["headers"]["content-type"].startswith("application/cloudevents+json")
        and r["event"]["specversion"] == "1.0"
        and r["headers"]["webhook-id"] == r["event"]["id"]
        for r in receiver.received
    )
    with Webhooks(settings) as hooks:
        log = hooks.deliveries(endpoint_id=endpoint.id)
    for delivery in log:
        attempts = delivery["attempt_log"]
        assert attempts[-1]["status_code"] == 204
        assert all(a["status_code"] is None and a["error"] for a in attempts[:-1])
        assert len(attempts) == delivery["attempts"] >= 3


def test_a_tampered_body_does_not_verify() -> None:
    from thunderline.webhooks.core import sign

    body = b'{"id":"e1"}'
    ts = int(time.time())
    headers = {"webhook-id": "e1", "webhook-timestamp": str(ts)}
    headers["webhook-signature"] = sign(SECRET, "e1", ts, body)
    assert verify_signature(SECRET, headers, body)
    assert not verify_signature(SECRET, headers, b'{"id":"e2"}')
    assert not verify_signature("another secret", headers, body)
    stale = {**headers, "webhook-timestamp": str(ts - 3600)}
    stale["webhook-signature"] = sign(SECRET, "e1", ts - 3600, body)
    assert not verify_signature(SECRET, stale, body)  # replay of an old delivery


@pytest.mark.slow
def test_a_receiver_down_for_a_minute_gets_every_event_once_from_watch(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """The dispatcher inside ``watch``: files arrive before and while the receiver is down for
    over a minute; after it returns, every event arrives once (by event id), signed."""
    from thunderline.sources.runner import watch

    settings: Settings = make_settings(
        enable_ml_pipeline=False,
        max_artifact_bytes=200,
        source_settle_s=0.5,
        source_poll_interval_s=1.0,
        webhook_backoff_s=1.0,
        webhook_backoff_max_s=8.0,
        webhook_max_attempts=100,
        webhook_timeout_s=2.0,
        webhook_poll_interval_s=0.5,
    )
    port = free_port()
    receiver = Receiver(port)
    with Webhooks(settings) as hooks:
        endpoint = hooks.add(f"http://127.0.0.1:{port}/hook", ["ingested", "failed"], SECRET)
    tree = tmp_path / "tree"
    tree.mkdir()
    old = time.time() - 3600

    def put(name: str, text: str) -> None:
        (tree / name).write_text(text)
        os.utime(tree / name, (old, old))

    for i in range(4):
        put(f"early{i}.txt", f"early file {i}\n")
    put("big.txt", "x" * 1000)  # dead-lettered: a "failed" event

    loop_box: list[asyncio.AbstractEventLoop] = []
    stop_box: list[asyncio.Event] = []

    def run_watch() -> None:
        async def main() -> None:
            stop_box.append(asyncio.Event())
            loop_box.append(asyncio.get_running_loop())
            await watch(settings, parse_source(str(tree)), stop=stop_box[0])

        asyncio.run(main())

    thread = threading.Thread(target=run_watch)
    thread.start()
    down_since = time.monotonic()
    try:
        for i in range(3):  # more files while the receiver is down
            time.sleep(10.0)
            put(f"late{i}.txt", f"late file {i}\n")
        while time.monotonic() - down_since < 62.0:
            time.sleep(1.0)
        with Webhooks(settings) as hooks:
            waiting = hooks.deliveries(endpoint_id=endpoint.id)
        assert len(waiting) == 8 and {d["status"] for d in waiting} == {"pending"}
        assert all(d["attempts"] >= 2 for d in waiting)
        receiver.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with Webhooks(settings) as hooks:
                states = {d["status"] for d in hooks.deliveries(endpoint_id=endpoint.id)}
            if states == {"delivered"}:
                break
            time.sleep(0.5)
        time.sleep(3.0)  # more dispatch rounds: nothing is sent again
    finally:
        if loop_box:
            loop_box[0].call_soon_threadsafe(stop_box[0].set)
        thread.join(60)
        receiver.stop()

    assert not thread.is_alive()
    ids = [r["event"]["id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 8  # 7 voxels + 1 DLQ record, each exactly once
    assert all(r["signed"] for r in receiver.received)
    with Webhooks(settings) as hooks:
        log = hooks.deliveries(endpoint_id=endpoint.id)
    first = min(a["at_unix"] for d in log for a in d["attempt_log"])
    last = max(a["at_unix"] for d in log for a in d["attempt_log"])
    assert last - first >= 60.0  # the receiver really was away for a minute
    assert all(d["attempt_log"][-1]["status_code"] == 204 for d in log)
