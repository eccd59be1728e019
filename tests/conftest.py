"""Shared fixtures: isolated settings, and real services on loopback (skip or fail when absent).

Service URLs come from the environment with these defaults:
``TL_TEST_DATABASE_URL`` (postgresql+psycopg://postgres@127.0.0.1:5432/test) and
``TL_TEST_REDIS_URL`` (redis://127.0.0.1:6379/15). When a service is unreachable its tests
skip with the reason, except under ``TL_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where
absence is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from thunderline.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
PEER_DATA = REPO.parent / "shared" / "peer" / "magika_tests_data"


def require_service(name: str, url: str, probe: Callable[[], Any]) -> None:
    """Skip (or fail under TL_TEST_REQUIRE_SERVICES=1) when ``probe`` cannot reach the service."""
    try:
        probe()
    except Exception as exc:
        message = f"{name} not reachable at {url}: {type(exc).__name__}: {exc}"
        if os.environ.get("TL_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} (TL_TEST_REQUIRE_SERVICES=1: services are required)")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a TL_* setting it did not set itself (TL_TEST_* kept)."""
    for key in list(os.environ):
        if key.startswith("TL_") and not key.startswith("TL_TEST_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Factory: settings with a private home under tmp_path, plus overrides."""

    def factory(**overrides: Any) -> Settings:
        overrides.setdefault("home", tmp_path / "home")
        return load_settings(**overrides)

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get(
        "TL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )

    def probe() -> None:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")

    require_service("PostgreSQL", url, probe)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

    def probe() -> None:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=3).ping()

    require_service("Redis", url, probe)
    return url


@pytest.fixture(scope="session")
def peer_data() -> Iterator[Path]:
    if not PEER_DATA.is_dir():
        pytest.skip(f"peer test data not found at {PEER_DATA}")
    yield PEER_DATA


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """An AMQP URL on a RabbitMQ vhost of this test session (deleted afterwards).

    The broker comes from ``TL_TEST_RABBITMQ_URL`` (default amqp://guest:guest@127.0.0.1:5672/);
    the vhost is made with ``rabbitmqctl`` (never stopping or reconfiguring the server), so
    tests isolate further with their own queue prefix (``bus_prefix``).
    """
    import shutil
    import subprocess
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    base = os.environ.get("TL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    vhost = f"tl-test-{uuid.uuid4().hex[:10]}"
    parts = urlsplit(base)
    user = parts.username or "guest"

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    def probe() -> None:
        import socket

        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 3):
            pass
        if shutil.which("rabbitmqctl") is None:
            raise FileNotFoundError("rabbitmqctl is not on PATH")
        ctl("add_vhost", vhost)
        ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    require_service("RabbitMQ", base, probe)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", "", ""))
    finally:
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60
        )


@pytest.fixture
def bus_prefix() -> str:
    """A queue-name prefix of this test alone."""
    import uuid

    return f"t{uuid.uuid4().hex[:10]}"
