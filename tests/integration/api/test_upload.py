"""POST /v1/ingest: sizes at and over the limit, empty files, bad multipart, bad names, slow and
vanishing clients. Every refusal is a 4xx with a JSON error naming the problem, nothing is half
stored, and the server keeps serving."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest
from tests.integration.api._server import Served
from tests.integration.api.conftest import LIMIT

BOUNDARY = "tlboundary7MA4YWxk"


def multipart(filename: bytes, data: bytes, *, field: bytes = b"file") -> bytes:
    return (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="'
        + field
        + b'"; filename="'
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def post_raw(served: Served, body: bytes, content_type: str | None = None) -> tuple[int, dict]:
    with served.client() as client:
        response = client.post(
            "/v1/ingest",
            content=body,
            headers={"Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.status_code, response.json()


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def spool_files(served: Served) -> list[Path]:
    return list(served.service.spool_dir.glob("upload-*"))


def object_exists(served: Served, data: bytes) -> bool:
    store = served.service.require_runtime().store
    return store.exists(hashlib.sha256(data).hexdigest())


def assert_serving(served: Served) -> None:
    with served.client(None) as client:
        assert client.get("/healthz").json() == {"status": "ok"}


def test_upload_reaches_a_voxel(served: Served) -> None:
    data = b"Ada Lovelace wrote in London."
    with served.client() as client:
        response = client.post("/v1/ingest", files={"file": ("ada.txt", data, "text/plain")})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["sha256"] == hashlib.sha256(data).hexdigest()
    assert accepted["size"] == len(data)
    assert accepted["artifact"]["payload_ref"] == f"sha256:{accepted['sha256']}"
    assert accepted["artifact"]["source"] == "urn:thunderline:api:upload:ada.txt"
    outcome = served.wait_outcome(accepted["correlation_id"])
    assert outcome["outcome"] == "stored"
    assert outcome["stages_done"][0] == "classify" and "package" in outcome["stages_done"]
    with served.client() as client:
        voxel = client.get(f"/v1/voxels/{outcome['voxel_ids'][0]}").json()
        payload = client.get(f"/v1/voxels/{voxel['id']}/payload")
    assert voxel["name"] == "ada.txt" and voxel["label"] == "txt"
    assert voxel["classification"]["label"] == "txt" and voxel["nlp"]["lang"] == "en"
    assert voxel["inference"] is None
    assert payload.content == data
    assert 'filename="ada.txt"' in payload.headers["content-disposition"]


def test_empty_file_is_accepted_and_ends_as_a_voxel(served: Served) -> None:
    with served.client() as client:
        response = client.post("/v1/ingest", files={"file": ("empty.bin", b"")})
    assert response.status_code == 202, response.text
    outcome = served.wait_outcome(response.json()["correlation_id"])
    assert outcome["outcome"] == "stored", outcome
    with served.client() as client:
        voxel = client.get(f"/v1/voxels/{outcome['voxel_ids'][0]}").json()
    assert voxel["payload_size"] == 0 and voxel["label"] == "empty"


def test_file_at_the_limit_is_accepted(served: Served) -> None:
    data = os.urandom(LIMIT)
    with served.client() as client:
        response = client.post("/v1/ingest", files={"file": ("limit.bin", data)})
    assert response.status_code == 202, response.text
    assert response.json()["size"] == LIMIT
    assert served.wait_outcome(response.json()["correlation_id"])["outcome"] == "stored"


def test_one_byte_over_the_limit_is_413_and_nothing_is_stored(served: Served) -> None:
    data = os.urandom(LIMIT + 1)
    with served.client() as client:
        response = client.post("/v1/ingest", files={"file": ("over.bin", data)})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and error["details"]["limit"] == LIMIT
    assert not object_exists(served, data)
    assert spool_files(served) == []
    assert_serving(served)


def test_declared_length_far_over_the_limit_is_refused_before_reading(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {served.admin_token}\r\n".encode()
            + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n".encode()
            + f"Content-Length: {10 * 1024**3}\r\n\r\n".encode()
        )
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer


def test_client_disconnecting_mid_upload_leaves_nothing(served: Served) -> None:
    data = os.urandom(LIMIT)
    body = multipart(b"partial.bin", data)
    with served.client() as client:
        before = client.get("/v1/voxels", params={"limit": 200}).json()["items"]
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {served.admin_token}\r\n".encode()
            + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        time.sleep(0.3)  # the server is now mid-body, spooling
    deadline = time.monotonic() + 10
    while spool_files(served) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spool_files(served) == [], "the half upload's spool file was left behind"
    assert not object_exists(served, data)
    time.sleep(0.5)
    with served.client() as client:
        after = client.get("/v1/voxels", params={"limit": 200}).json()["items"]
    assert [v["id"] for v in after] == [v["id"] for v in before]
    assert_serving(served)


def test_slow_client_gets_408(served: Served) -> None:
    body = multipart(b"slow.txt", b"x" * 1000)
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(
            b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {served.admin_token}\r\n".encode()
            + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:100]
        )
        answer = read_response(sock)  # read timeout is 2 s in these tests
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert spool_files(served) == []
    assert_serving(served)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"garbage", None, 400, "malformed_multipart"),
        (multipart(b"a.txt", b"abc")[:-10], None, 400, "malformed_multipart"),
        (multipart(b"a.txt", b"abc", field=b"other"), None, 400, "missing_file"),
        (multipart(b"../../etc/passwd", b"abc"), None, 400, "invalid_filename"),
        (multipart(b"dir\\name.txt", b"abc"), None, 400, "invalid_filename"),
        (multipart(b"bad-\xff\xfe.txt", b"abc"), None, 400, "invalid_filename"),
        (multipart(b"", b"abc"), None, 400, "invalid_filename"),
        (b"{}", "application/json", 415, "unsupported_media_type"),
        (b"x", "multipart/form-data", 400, "malformed_multipart"),
    ],
    ids=[
        "garbage",
        "truncated",
        "missing-file-part",
        "path-separators",
        "backslash",
        "invalid-utf8-name",
        "empty-name",
        "not-multipart",
        "no-boundary",
    ],
)
def test_bad_uploads_are_4xx_with_a_named_problem(
    served: Served, body: bytes, content_type: str | None, status: int, code: str
) -> None:
    got_status, got = post_raw(served, body, content_type)
    assert got_status == status, got
    assert got["error"]["code"] == code
    assert got["error"]["message"]
    assert spool_files(served) == []
    assert_serving(served)


def _disposition_part(disposition: bytes, data: bytes) -> bytes:
    return (
        f"--{BOUNDARY}\r\n".encode()
        + b"Content-Disposition: "
        + disposition
        + b"\r\nContent-Type: text/plain\r\n\r\n"
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        (b"form-data; name=\"file\"; filename*=UTF-8''%E2%82%AC%20rates.txt", "€ rates.txt"),
        (
            b'form-data; name="file"; filename="fallback.txt"; '
            b"filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt",
            "日本.txt",
        ),
        (b'form-data; name="file"; filename="cr%C3%A9dits%20Q3.txt"', "crédits Q3.txt"),
    ],
    ids=["filename-star", "filename-star-wins", "percent-encoded"],
)
def test_encoded_upload_names_are_stored_decoded(
    served: Served, disposition: bytes, name: str
) -> None:
    data = f"Grace Hopper worked on {name}.".encode()
    with served.client() as client:
        response = client.post(
            "/v1/ingest",
            content=_disposition_part(disposition, data),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert response.status_code == 202, response.text
    outcome = served.wait_outcome(response.json()["correlation_id"])
    with served.client() as client:
        voxel = client.get(f"/v1/voxels/{outcome['voxel_ids'][0]}").json()
    assert voxel["name"] == name


def test_two_file_parts_are_refused(served: Served) -> None:
    one = multipart(b"a.txt", b"a").removesuffix(f"--{BOUNDARY}--\r\n".encode())
    body = one + multipart(b"b.txt", b"b")
    status, got = post_raw(served, body)
    assert status == 400 and got["error"]["code"] == "too_many_files"


def test_huge_header_is_431_json(served: Served) -> None:
    with served.client() as client:
        response = client.get("/v1/voxels", headers={"X-Filler": "a" * 40_000})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"
    assert_serving(served)


def test_unknown_voxel_and_bad_cursor(served: Served) -> None:
    with served.client() as client:
        missing = client.get("/v1/voxels/01234567-89ab-cdef-0123-456789abcdef")
        prefix = client.get("/v1/voxels/ffffffff")
        not_an_id = client.get("/v1/voxels/zzzzzzzz")  # only hex digits and '-' make an id
        cursor = client.get("/v1/voxels", params={"cursor": "not-a-cursor"})
        payload = client.get("/v1/voxels/01234567-89ab-cdef-0123-456789abcdef/payload")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "voxel_not_found"
    assert prefix.status_code == 404
    assert not_an_id.status_code == 400 and not_an_id.json()["error"]["code"] == "invalid_request"
    assert payload.status_code == 404
    assert cursor.status_code == 400 and cursor.json()["error"]["code"] == "bad_cursor"


def test_short_ids_resolve_and_an_ambiguous_one_is_409(served: Served) -> None:
    for name in ("one.txt", "two.txt"):
        with served.client() as client:
            accepted = client.post("/v1/ingest", files={"file": (name, name.encode() * 40)})
        served.wait_outcome(accepted.json()["correlation_id"])
    with served.client("read") as client:
        items = client.get("/v1/voxels", params={"fields": "id,short_id"}).json()["items"]
        ids = [item["id"] for item in items]
        common = ids[0]  # UUIDv7s of one run share their time digits
        while not all(i.startswith(common) for i in ids):
            common = common[:-1]
        by_short = client.get(f"/v1/voxels/{items[0]['short_id']}")
        ambiguous = client.get(f"/v1/voxels/{common[:8]}")
    assert len(ids) >= 2 and len(common) >= 4
    assert by_short.status_code == 200 and by_short.json()["id"] == ids[0]
    assert by_short.json()["short_id"] == ids[0][-12:]
    assert ambiguous.status_code == 409, ambiguous.text
    error = ambiguous.json()["error"]
    assert error["code"] == "ambiguous_id" and set(error["details"]["candidates"]) <= set(ids)


@pytest.mark.parametrize("inline_bytes", [64 * 1024, 0], ids=["on-the-loop", "in-a-thread"])
def test_upload_is_moved_into_the_store_read_only(
    served: Served, monkeypatch: pytest.MonkeyPatch, inline_bytes: int
) -> None:
    """The spool file (hashed as it was written) becomes the stored object: no copy is left."""
    from thunderline.api import service as service_module

    monkeypatch.setattr(service_module, "INLINE_UPLOAD_BYTES", inline_bytes)
    store = served.service.require_runtime().store

    def no_copy(fd: int, *, max_bytes: int | None = None) -> None:
        raise AssertionError("the upload was copied, not moved")

    monkeypatch.setattr(store, "put_fd", no_copy)
    data = os.urandom(5000)
    sha = hashlib.sha256(data).hexdigest()
    with served.client() as client:
        first = client.post("/v1/ingest", files={"file": ("a.bin", data)})
        again = client.post("/v1/ingest", files={"file": ("b.bin", data)})  # same bytes
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert first.json()["sha256"] == again.json()["sha256"] == sha
    assert first.json()["artifact"]["path"] is None
    local = store.local_path(sha)
    assert local is not None and local.read_bytes() == data
    assert local.stat().st_mode & 0o777 == 0o444
    assert spool_files(served) == []
    for accepted in (first.json(), again.json()):
        outcome = served.wait_outcome(accepted["correlation_id"])
        assert outcome["outcome"] == "stored", outcome


def test_upload_is_copied_when_it_cannot_be_moved(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spool folder on another file system (EXDEV): the upload is copied, as before."""
    import errno

    store = served.service.require_runtime().store

    def cross_device(path: Path, sha256: str, size: int) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(store, "adopt", cross_device)
    data = os.urandom(3000)
    with served.client() as client:
        response = client.post("/v1/ingest", files={"file": ("x.bin", data)})
    assert response.status_code == 202, response.text
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert object_exists(served, data)
    assert spool_files(served) == []
    outcome = served.wait_outcome(response.json()["correlation_id"])
    assert outcome["outcome"] == "stored", outcome


def test_adopting_over_a_corrupt_object_replaces_it(tmp_path: Path) -> None:
    """A stored copy that no longer hashes to its name is replaced by the adopted file."""
    from thunderline.objects.local import LocalObjectStore

    store = LocalObjectStore(tmp_path / "objects")
    data = b"the real bytes"
    sha = hashlib.sha256(data).hexdigest()
    stored = store.put_bytes(data)
    final = store.local_path(sha)
    assert final is not None
    final.chmod(0o644)
    final.write_bytes(b"rotten")
    spool = tmp_path / "objects" / "upload-1"
    spool.write_bytes(data)
    assert store.adopt(spool, sha, len(data)) == stored
    assert store.get_bytes(sha) == data and not spool.exists()
