"""A database or S3 endpoint that accepts connections and never answers fails in bounded time
with a clear message (a test-owned TCP listener stands in for the dead server)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from thunderline.config import Settings
from thunderline.errors import BackendError, ConfigError
from thunderline.objects.s3 import S3ObjectStore
from thunderline.voxel.store import VoxelStore

BOUND_S = 15.0  # the bound; the defaults are a few seconds


@pytest.fixture
def silent_port() -> Iterator[int]:
    """127.0.0.1:<port> accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # never read, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_a_silent_postgresql_fails_fast_with_a_clear_message(
    make_settings: Callable[..., Settings], silent_port: int
) -> None:
    settings = make_settings(
        database_url=f"postgresql+psycopg://tl:pw-not-shown@127.0.0.1:{silent_port}/tl"
    )
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        VoxelStore(settings)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, elapsed
    message = str(info.value)
    assert "not answering" in message and "TL_DB_CONNECT_TIMEOUT_S" in message
    assert "pw-not-shown" not in message


def test_a_silent_s3_endpoint_fails_fast_with_a_clear_message(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        S3ObjectStore("s3://bucket", endpoint_url=f"http://127.0.0.1:{silent_port}")
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, elapsed
    assert "did not answer in time" in str(info.value)


def test_missing_s3_credentials_are_reported_as_such(
    silent_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match="S3 credentials are missing"):
        S3ObjectStore("s3://bucket", endpoint_url=f"http://127.0.0.1:{silent_port}")
