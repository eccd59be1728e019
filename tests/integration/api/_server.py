"""A real ``thunderline serve`` (uvicorn + the in-process pipeline) on a free loopback port,
run in a background thread of the test process, so tests can also inject faults on purpose."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from thunderline.api import ApiService, Scope, TokenStore, create_app
from thunderline.api.protocol import uvicorn_config
from thunderline.config import Settings, load_settings
from thunderline.errors import BackendError
from thunderline.objects.base import ObjectStore, StoredObject

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


def api_settings(home: Path, **overrides: Any) -> Settings:
    """Settings for a test server: private home, one spaCy worker, everything else default."""
    values: dict[str, Any] = {
        "home": home,
        "spacy_workers": 1,
        "onnx_enabled": False,
        "onnx_model_dir": REPO / "models",
        "api_read_timeout_s": 2.0,
        "api_sse_heartbeat_s": 1.0,
        "shutdown_timeout_s": 10.0,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Served:
    url: str
    settings: Settings
    service: ApiService
    admin_token: str
    read_token: str

    def client(self, token: str | None = "admin", **kwargs: Any) -> httpx.Client:
        headers = {}
        chosen = {"admin": self.admin_token, "read": self.read_token}.get(token or "", token)
        if chosen:
            headers["Authorization"] = f"Bearer {chosen}"
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def wait_outcome(self, correlation_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Poll ``GET /v1/ingest/{id}`` until the ingest is no longer pending."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while True:
                response = client.get(f"/v1/ingest/{correlation_id}")
                if response.status_code == 200 and response.json()["outcome"] != "pending":
                    body: dict[str, Any] = response.json()
                    return body
                if time.monotonic() > deadline:
                    raise AssertionError(f"ingest {correlation_id} still pending: {response.text}")
                time.sleep(0.1)


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[Served]:
    """Start the app on 127.0.0.1 (free port) in a thread; stop it (drained) afterwards."""
    tokens = TokenStore(settings)
    admin, _ = tokens.create(Scope.ADMIN, "test admin")
    reader, _ = tokens.create(Scope.READ, "test reader")
    service = ApiService(settings)
    app = create_app(settings, service)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn_config(app, settings, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", settings, service, admin, reader)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


class LosingStore:
    """Fault injected on purpose: an object store that has "lost" the payloads in ``lost``
    (as after a disk failure), and cannot be reached for those in ``away`` (``BackendError``,
    as a store that is briefly down: retryable); everything else is passed to the real store."""

    def __init__(self, real: ObjectStore) -> None:
        self.real = real
        self.url = real.url
        self.lost: set[str] = set()
        self.away: set[str] = set()

    def _reach(self, sha256: str) -> None:
        if sha256 in self.away:
            raise BackendError(f"object store unreachable for sha256:{sha256[:12]}")

    def put_file(self, path: Path) -> StoredObject:
        return self.real.put_file(path)

    def put_fd(self, fd: int, *, max_bytes: int | None = None) -> StoredObject:
        return self.real.put_fd(fd, max_bytes=max_bytes)

    def put_bytes(self, data: bytes) -> StoredObject:
        return self.real.put_bytes(data)

    def get_bytes(self, sha256: str) -> bytes:
        self._reach(sha256)
        if sha256 in self.lost:
            raise KeyError(f"no object sha256:{sha256}")
        return self.real.get_bytes(sha256)

    def exists(self, sha256: str) -> bool:
        self._reach(sha256)
        return sha256 not in self.lost and self.real.exists(sha256)

    def local_path(self, sha256: str) -> Path | None:
        self._reach(sha256)
        return None if sha256 in self.lost else self.real.local_path(sha256)


def lose_payloads(served: Served) -> LosingStore:
    """Put a :class:`LosingStore` in front of the classify stage's object store."""
    runtime = served.service.require_runtime()
    classify = runtime.stages[0]
    losing = LosingStore(classify.store)  # type: ignore[attr-defined]
    classify.store = losing  # type: ignore[attr-defined]
    return losing
