"""Bearer tokens on every API route but health and metrics; scopes; cookie + header for the
console; only hashes on disk."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from tests.integration.api._server import Served

from thunderline.api import Scope, TokenStore

PROTECTED = [
    ("GET", "/v1/voxels"),
    ("GET", "/v1/voxels/01234567-89ab-cdef-0123-456789abcdef"),
    ("GET", "/v1/ingest/some-id"),
    ("GET", "/v1/dlq"),
    ("GET", "/v1/models"),
    ("GET", "/v1/events"),
    ("POST", "/v1/ingest"),
    ("POST", "/v1/dlq/some-id/replay"),
    ("GET", "/v1/dlq/groups"),
    ("POST", "/v1/dlq/purge?older_than=1d"),
    ("POST", "/v1/dlq/some-id/dismiss?reason=x"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401_with_challenge(served: Served, method: str, path: str) -> None:
    with served.client(None) as client:
        response = client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header", ["Bearer wrong-token", "Bearer tl_" + "A" * 43, "Basic dXNlcjpwYXNz", "Bearer"]
)
def test_wrong_or_malformed_token_is_401(served: Served, header: str) -> None:
    with served.client(None) as client:
        response = client.get("/v1/voxels", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_read_token_reads_but_cannot_replay(served: Served) -> None:
    with served.client("read") as client:
        assert client.get("/v1/voxels").status_code == 200
        response = client.post("/v1/dlq/some-id/replay")
        for path in ("/v1/dlq/purge?older_than=1d", "/v1/dlq/0123456789ab/dismiss?reason=x"):
            assert client.post(path).status_code == 403, path
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert 'scope="admin"' in response.headers["www-authenticate"]


def test_admin_token_reaches_replay(served: Served) -> None:
    with served.client("admin") as client:
        response = client.post("/v1/dlq/0123456789ab/replay")  # a short id nobody has
        malformed = client.post("/v1/dlq/no-such-record/replay")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "dlq_not_found"
    assert malformed.status_code == 400  # not an id at all (ids are hex digits)


def test_health_and_metrics_need_no_token(served: Served) -> None:
    with served.client(None) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        metrics = client.get("/metrics")
        openapi = client.get("/openapi.json")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True}  # anonymous: ready or not, no coordinates
    assert metrics.status_code == 200 and "thunderline_" in metrics.text
    assert openapi.status_code == 200 and "/v1/ingest" in openapi.json()["paths"]


def test_readiness_details_need_a_token(served: Served) -> None:
    with served.client(None) as client:
        anonymous = client.get("/readyz")
        wrong = client.get("/readyz", headers={"Authorization": "Bearer tl_not-a-token"})
    with served.client("read") as client:
        detailed = client.get("/readyz")
    assert anonymous.status_code == 200 and set(anonymous.json()) == {"ready"}
    for coordinate in (str(served.settings.home), "sqlite", "file://", "memory://"):
        assert coordinate not in anonymous.text
    assert wrong.status_code == 401
    assert detailed.status_code == 200, detailed.text
    checks = detailed.json()["checks"]
    assert set(checks) >= {"database", "object_store", "bus", "models", "nlp_breaker"}
    assert checks["database"]["detail"].startswith("sqlite")


def test_revoked_token_is_refused_at_once(served: Served) -> None:
    from thunderline.api import Scope

    token, record = served.service.tokens.create(Scope.READ, "short-lived")
    with served.client(token) as client:
        assert client.get("/v1/voxels").status_code == 200
        assert served.service.tokens.revoke(record.id)
        assert client.get("/v1/voxels").status_code == 401


def test_token_file_holds_hashes_only(served: Served) -> None:
    text = served.service.tokens.path.read_text()
    assert served.admin_token not in text and served.read_token not in text
    assert oct(served.service.tokens.path.stat().st_mode & 0o777) == "0o600"


def test_console_cookie_needs_the_console_header_to_change_state(served: Served) -> None:
    with served.client(None) as client:
        login = client.post("/login", data={"token": served.admin_token, "next": "/dlq"})
        assert login.status_code == 303 and login.headers["location"] == "/dlq"
        assert "httponly" in login.headers["set-cookie"].lower()
        assert "samesite=strict" in login.headers["set-cookie"].lower()
        assert client.get("/v1/voxels").status_code == 200  # cookie authenticates reads
        forged = client.post("/v1/dlq/x/replay")  # a cross-site form could send this
        assert forged.status_code == 403
        console = client.post("/v1/dlq/ffffffffffff/replay", headers={"X-TL-Console": "1"})
        assert console.status_code == 404  # authenticated and allowed: the record is unknown


def test_console_pages_redirect_to_login_without_a_session(served: Served) -> None:
    with served.client(None) as client:
        for page in ("/", "/voxels", "/dlq", "/health"):
            response = client.get(page)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/login?next=")
        bad = client.post("/login", data={"token": "nope"})
        assert bad.status_code == 401


def test_cors_is_off_by_default(served: Served) -> None:
    with served.client() as client:
        response = client.get("/v1/voxels", headers={"Origin": "https://evil.example"})
        preflight = client.options(
            "/v1/voxels",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


def test_revoking_a_token_ends_its_open_event_stream(served: Served) -> None:
    token, record = served.service.tokens.create(Scope.READ, "sse reader")
    ended = False
    with (
        httpx.Client(base_url=served.url, timeout=10.0) as client,
        client.stream("GET", "/v1/events", headers={"Authorization": f"Bearer {token}"}) as sse,
    ):
        assert sse.status_code == 200
        lines = sse.iter_lines()
        assert next(lines).startswith(": connected")
        # revoked as `thunderline tokens revoke` does it: through the token file
        assert TokenStore(served.settings).revoke(record.id)
        deadline = time.monotonic() + 15  # keep-alives every second keep an open stream busy
        for _line in lines:
            if time.monotonic() > deadline:
                break
        else:
            ended = True
    assert ended, "the revoked token's event stream is still open"
    with served.client(token) as client:
        assert client.get("/v1/events").status_code == 401


def test_revoking_a_token_ends_its_running_upload(served: Served) -> None:
    token, record = served.service.tokens.create(Scope.READ, "slow uploader")
    boundary = "tlboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=slow.txt\r\n"
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    request = (
        f"POST /v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + 10_000}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(request + head + b"x" * 1000)  # then nothing more: the body is unfinished
        time.sleep(0.3)  # the body is being received
        assert TokenStore(served.settings).revoke(record.id)
        chunks = []
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            chunks.append(chunk)
        answer = b"".join(chunks).decode("latin-1")
    # not the 408 of the read timeout (TL_API_READ_TIMEOUT_S=2): refused when revoked
    assert answer.startswith("HTTP/1.1 401"), answer
    assert "revoked" in answer
    assert not list(served.service.spool_dir.glob("upload-*"))  # nothing half-kept
