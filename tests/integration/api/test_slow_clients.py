"""Slow and greedy clients on loopback against a real server: headers trickled one line at a
time are cut off by the header-read timeout (408), one address cannot hold more than its
share of connections (503), and neither guard touches a normal request or an open stream."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.api._server import Served, api_settings, serve

HEADER_TIMEOUT_S = 1.0
PER_CLIENT = 20
SLOW_CLIENTS = 12


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home: Path = tmp_path_factory.mktemp("slow-home")
    settings = api_settings(
        home,
        enable_ml_pipeline=False,
        api_header_timeout_s=HEADER_TIMEOUT_S,
        api_max_connections_per_client=PER_CLIENT,
    )
    with serve(settings) as running:
        yield running


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    return sock


def test_trickled_headers_are_cut_off_by_the_header_timeout(guarded: Served) -> None:
    clients = [_connect(guarded.port) for _ in range(SLOW_CLIENTS)]
    answers: dict[socket.socket, bytes] = {}
    try:
        for sock in clients:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # one more header line every 0.25 s, for up to 8 header timeouts: the test stops by
        # itself either way (on a server without the guard, every client is still open)
        give_up = time.monotonic() + 8 * HEADER_TIMEOUT_S
        line = 0
        while len(answers) < len(clients) and time.monotonic() < give_up:
            line += 1
            for sock in clients:
                if sock not in answers:
                    with contextlib.suppress(OSError):  # closed by the server meanwhile
                        sock.sendall(f"X-Slow-{line}: {'a' * 10}\r\n".encode())
            readable, _, _ = select.select([s for s in clients if s not in answers], [], [], 0.25)
            for sock in readable:
                try:
                    answers[sock] = sock.recv(4096)
                except ConnectionResetError:
                    answers[sock] = b""
        # meanwhile a normal client is served at once
        assert httpx.get(f"{guarded.url}/healthz", timeout=5).status_code == 200
    finally:
        for sock in clients:
            sock.close()
    assert len(answers) == len(clients), f"{len(clients) - len(answers)} slow clients still open"
    assert all(a.startswith(b"HTTP/1.1 408") or a == b"" for a in answers.values()), answers
    assert any(a.startswith(b"HTTP/1.1 408") for a in answers.values())
    metrics = httpx.get(f"{guarded.url}/metrics", timeout=5).text
    assert 'thunderline_api_connections_refused_total{reason="header_timeout"}' in metrics


def test_one_address_cannot_hold_more_than_its_share(guarded: Served) -> None:
    held = [_connect(guarded.port) for _ in range(PER_CLIENT)]
    try:
        time.sleep(0.2)  # all accepted (the server counts them as they open)
        with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"retry-after: 1" in answer.lower()
    finally:
        for sock in held:
            sock.close()
    # the held connections are gone: the address is served again
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(f"{guarded.url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the address stayed refused after its sockets closed"
        time.sleep(0.1)


def test_an_open_event_stream_outlives_the_header_timeout(guarded: Served) -> None:
    """The deadline covers the headers only: a stream that runs longer is not cut."""
    comments = 0
    with (
        guarded.client("read") as client,
        client.stream("GET", "/v1/events") as stream,
    ):
        assert stream.status_code == 200
        until = time.monotonic() + 3 * HEADER_TIMEOUT_S
        for line in stream.iter_lines():
            comments += line.startswith(":")
            if time.monotonic() > until:
                break
    assert comments >= 2  # connected + keep-alives (every 1 s) past the header timeout
