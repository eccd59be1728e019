"""``/v1/reprocess`` and ``/v1/voxels/{id}/results`` on a real server, with the webhook
dispatcher running inside ``serve``: a ``reprocessed`` rule POSTs to a loopback receiver, a
``query:`` rule tags the voxel."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.integration.api._server import EXAMPLES, Served

from thunderline.webhooks.core import REPROCESSED_TYPE, Webhooks, verify_signature

SECRET = "reprocess-hook-secret"


def _receiver() -> tuple[ThreadingHTTPServer, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            got.append(
                {"event": json.loads(body), "signed": verify_signature(SECRET, headers, body)}
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def _until(check: Any, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_reprocess_through_the_api_keeps_versions_and_fires_rules(served: Served) -> None:
    server, got = _receiver()
    try:
        with Webhooks(served.settings) as hooks:
            hooks.add(f"http://127.0.0.1:{server.server_port}/h", ["reprocessed"], SECRET)
            hooks.add("", ["query:name:colorsys.py"], action="tag:colour-code")
        with served.client("admin") as client:
            accepted = client.post(
                "/v1/ingest",
                files={"file": ("colorsys.py", (EXAMPLES / "colorsys.py").read_bytes())},
            )
        assert accepted.status_code == 202, accepted.text
        status = served.wait_outcome(accepted.json()["correlation_id"])
        (voxel_id,) = status["voxel_ids"]

        with served.client("read") as client:
            refused = client.post("/v1/reprocess", json={"stage": "extract"})
            assert refused.status_code == 403
        with served.client("admin") as client:
            off = client.post("/v1/reprocess", json={"stage": "infer"})
            assert off.status_code == 400 and "switched off" in off.text
        with served.client("admin") as client:
            bad = client.post("/v1/reprocess", json={"stage": "extract", "query": 'name:"x'})
            assert bad.status_code == 400, bad.text
            dry = client.post("/v1/reprocess/dry-run", json={"stage": "extract"})
            assert dry.status_code == 200, dry.text
            assert dry.json()["matching"] == 1 and dry.json()["with_result"] == 1
            started = client.post("/v1/reprocess", json={"stage": "extract"})
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]

            def finished() -> dict[str, Any] | None:
                body: dict[str, Any] = client.get(f"/v1/reprocess/{run_id}").json()
                return body if body["state"] == "done" else None

            run = _until(finished)
            assert run["counts"] == {"done": 1} and run["total"] == 1
            assert run_id in [r["id"] for r in client.get("/v1/reprocess").json()["items"]]
            results = client.get(f"/v1/voxels/{voxel_id}/results").json()
            lineage = client.get(f"/v1/voxels/{voxel_id}/lineage").json()
            tagged = _until(
                lambda: client.get(f"/v1/voxels/{voxel_id}/results").json()["tags"], 30.0
            )
        extract = results["stages"]["extract"]
        assert [(v["seq"], v["current"]) for v in extract] == [(1, False), (2, True)]
        assert extract[0]["producer"] == extract[1]["producer"]
        assert extract[1]["run_id"] == run_id
        assert {(r["stage"], r["version"]) for r in lineage["results"]} >= {
            ("extract", 1),
            ("extract", 2),
        }
        assert tagged == ["colour-code"]

        _until(lambda: got, 30.0)  # the dispatcher inside serve delivered it
        (delivery,) = got
        assert delivery["signed"]
        event = delivery["event"]
        assert event["type"] == REPROCESSED_TYPE and event["id"] == extract[1]["event_id"]
        assert event["data"]["voxel_id"] == voxel_id and event["data"]["version"] == 2
    finally:
        server.shutdown()
        server.server_close()
