"""``thunderline serve`` on RabbitMQ: a submit-and-read front end before real workers.

A served API (this process) with real RabbitMQ (own vhost and queue prefix), PostgreSQL (own
schema) and S3 (SeaweedFS); ``thunderline worker`` subprocesses run the stages and the
collector. Uploads end as voxels read back through ``GET /v1/ingest/{id}``; a full
``classify`` queue answers 429; one artifact whose payload is lost from S3 (a fault injected on
purpose) ends in the DLQ and, its bytes restored, is replayed from the API to a voxel.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import httpx
from tests.integration.api._server import Served, serve
from tests.integration.scale.conftest import Cluster

from thunderline.config import load_settings
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, VOXEL_CREATED
from thunderline.objects.s3 import S3ObjectStore

QUEUE_MAX = 3


def upload(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return client.post("/v1/ingest", files={"file": (name, data, "text/plain")})


def wait_done(served: Served, correlation_id: str, timeout_s: float = 45.0) -> dict[str, Any]:
    return served.wait_outcome(correlation_id, timeout_s=timeout_s)


class SseReader:
    """Reads ``GET /v1/events`` in a thread; keeps each event's type and correlation id."""

    def __init__(self, served: Served) -> None:
        self.events: list[tuple[str, str]] = []
        self.connected = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(served,), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the SSE stream did not open"

    def _run(self, served: Served) -> None:
        with served.client() as client, client.stream("GET", "/v1/events") as response:
            for line in response.iter_lines():
                self.connected.set()
                if self._stop:
                    return
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    self.events.append((event["type"], event["correlationid"]))

    def close(self) -> None:
        self._stop = True


async def test_serve_submits_to_workers_and_reads_outcomes(cluster: Cluster) -> None:
    values: dict[str, Any] = {
        k.removeprefix("TL_").lower(): v for k, v in cluster.env.items() if k.startswith("TL_")
    }
    values.update(
        home=cluster.tmp / "api",
        queue_max=QUEUE_MAX,
        api_read_timeout_s=2.0,
        api_sse_heartbeat_s=1.0,
        shutdown_timeout_s=10.0,
    )
    settings = load_settings(**values)
    lost = b"this payload is lost from the object store before a worker reads it\n"
    files = {"a.txt": b"first upload through the API\n", "b.txt": b"second upload\n"}

    with serve(settings) as served, served.client() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert "rabbitmq" in checks["bus"]["detail"] and ":guest@" not in checks["bus"]["detail"]
        assert "submit-and-read" in checks["pipeline"]["detail"]
        assert checks["object_store"]["detail"].startswith("s3://")

        # no worker yet: the uploads wait in the bounded classify queue (x-max-length 3)
        ids = {}
        for name, data in [*files.items(), ("lost.txt", lost)]:
            response = upload(client, name, data)
            assert response.status_code == 202, response.text
            ids[name] = response.json()["correlation_id"]
        fill = []  # quorum queues are soft by one or two: no exact bound is tested
        for i in range(3):
            full = upload(client, f"fill{i}.txt", f"filler {i}\n".encode())
            if full.status_code != 202:
                break
            fill.append(full.json()["correlation_id"])
        assert full.status_code == 429, full.text
        assert full.headers["Retry-After"] == "1"
        assert full.json()["error"]["code"] == "queue_full"
        pending = client.get(f"/v1/ingest/{ids['a.txt']}").json()
        assert pending["outcome"] == "pending" and pending["name"] == "a.txt"
        # and never silently: serve's /metrics shows the classify queue unserved (issue 23)
        exposed = client.get("/metrics").text
        assert 'thunderline_bus_unserved_publishes_total{topic="classify"}' in exposed
        assert 'thunderline_bus_queue_consumers{topic="classify"} 0.0' in exposed

        # the fault: lost.txt's bytes vanish from S3 before any worker reads them
        store = served.service.objects
        assert isinstance(store, S3ObjectStore)
        sha = hashlib.sha256(lost).hexdigest()
        store.client.delete_object(Bucket=store.bucket, Key=store._key(sha))
        assert not store.exists(sha)

        live = SseReader(served)
        worker = cluster.worker("classify,package,collect", env={"TL_QUEUE_MAX": str(QUEUE_MAX)})
        try:
            worker.wait_ready()
            for name, data in files.items():
                done = wait_done(served, ids[name])
                assert done["outcome"] == "stored", done
                assert done["name"] == name and len(done["voxel_ids"]) == 1
                assert set(done["stages_done"]) >= {"classify", "package"}
                payload = client.get(f"/v1/voxels/{done['voxel_ids'][0]}/payload")
                assert payload.status_code == 200 and payload.content == data
            failed = wait_done(served, ids["lost.txt"])
            assert failed["outcome"] == "dead_lettered", failed
            (dead,) = failed["dlq"]
            assert dead["stage"] == "classify" and dead["reason"] == "not_found"

            dlq = client.get("/v1/dlq").json()["items"]
            assert [d["id"] for d in dlq] == [dead["id"]]

            # restore the bytes, replay from the API: the workers take it to a voxel (lost
            # bytes are a permanent failure: the replay is forced with all=true)
            store.put_bytes(lost)
            unforced = client.post(f"/v1/dlq/{dead['id']}/replay")
            assert unforced.status_code == 409 and "all=true" in unforced.text
            replay = client.post(f"/v1/dlq/{dead['id']}/replay", params={"all": "true"})
            assert replay.status_code == 202, replay.text
            assert replay.json()["correlation_id"] == ids["lost.txt"]
            again = client.post(f"/v1/dlq/{dead['id']}/replay", params={"all": "true"})
            assert again.status_code == 409
            replayed = wait_done(served, ids["lost.txt"])
            assert replayed["outcome"] == "stored" and replayed["dlq"] == [], replayed
            assert client.get("/v1/dlq").json()["items"] == []
            resolved = client.get("/v1/dlq", params={"status": "resolved"}).json()["items"]
            assert [d["id"] for d in resolved] == [dead["id"]]

            for correlation_id in fill:
                assert wait_done(served, correlation_id)["outcome"] == "stored"

            # the queue has drained: uploads are accepted again
            later = upload(client, "later.txt", b"after the workers drained the queue\n")
            assert later.status_code == 202, later.text
            assert wait_done(served, later.json()["correlation_id"])["outcome"] == "stored"

            # the live view followed the outcomes of this server's ingests
            deadline = time.monotonic() + 10
            want = {
                (VOXEL_CREATED, ids["a.txt"]),
                (VOXEL_CREATED, ids["b.txt"]),
                (VOXEL_CREATED, ids["lost.txt"]),
                (DLQ_CLASSIFY, ids["lost.txt"]),
            }
            while not want <= set(live.events) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert want <= set(live.events), live.events
            # the upload and the replay are shown when they are sent (after the stream opened)
            assert (INGEST_RECEIVED, ids["lost.txt"]) in live.events
            assert (INGEST_RECEIVED, later.json()["correlation_id"]) in live.events
        finally:
            live.close()
            assert worker.stop() == 0, worker.text()[-3000:]
