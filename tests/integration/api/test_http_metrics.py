"""``serve`` exports request metrics by route template, process metrics and the open-DLQ gauge."""

from __future__ import annotations

import hashlib
import re

from prometheus_client.parser import text_string_to_metric_families
from tests.integration.api._server import Served, lose_payloads
from tests.integration.api.test_flow import upload


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with served.client(None) as client:
        text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_method_and_status(served: Served) -> None:
    before = scrape(served)
    missing = "01234567-89ab-7def-8123-456789abcdef"
    with served.client("read") as client:
        for _ in range(3):
            assert client.get(f"/v1/voxels/{missing}").status_code == 404
        assert client.get("/healthz").status_code == 200
        assert client.get("/no/such/page/" + missing).status_code == 404
    with served.client(None) as anonymous:
        assert anonymous.get("/v1/voxels").status_code == 401
    after = scrape(served)
    total = "thunderline_http_requests_total"
    template = {"method": "GET", "route": "/v1/voxels/{voxel_id}", "status": "404"}
    assert value(after, total, **template) - value(before, total, **template) == 3
    health = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(after, total, **health) - value(before, total, **health) == 1
    denied = {"method": "GET", "route": "/v1/voxels", "status": "401"}
    assert value(after, total, **denied) - value(before, total, **denied) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, total, **unmatched) - value(before, total, **unmatched) == 1
    count = "thunderline_http_request_duration_seconds_count"
    timed = {"method": "GET", "route": "/v1/voxels/{voxel_id}"}
    assert value(after, count, **timed) - value(before, count, **timed) == 3
    top = "thunderline_http_request_duration_seconds_bucket"
    assert (top, tuple(sorted({**timed, "le": "60.0"}.items()))) in after
    # bounded labels: no raw path or id ever becomes a label value
    labels = {v for (name, pairs) in after for _, v in pairs if name.startswith("thunderline_http")}
    assert not any(missing in v for v in labels)
    # process metrics of the serving process
    assert value(after, "process_resident_memory_bytes") > 0
    assert value(after, "process_cpu_seconds_total") > 0


def test_open_dlq_gauge_follows_the_outcome_store(served: Served) -> None:
    def open_now() -> float:
        return value(scrape(served), "thunderline_dlq_open")

    with served.client("read") as client:
        listed = client.get("/v1/dlq", params={"status": "open", "limit": 500}).json()["items"]
    assert open_now() == len(listed)
    data = b"metrics: bytes that go missing before classify.\n"
    losing = lose_payloads(served)  # fault injected on purpose: the store loses these bytes
    losing.lost.add(hashlib.sha256(data).hexdigest())
    try:
        failed = served.wait_outcome(upload(served, "lost-for-metrics.txt", data)["correlation_id"])
    finally:
        losing.lost.clear()
    assert failed["outcome"] == "dead_lettered"
    assert open_now() == len(listed) + 1
    assert re.fullmatch(r"[0-9a-f-]{36}", failed["dlq"][0]["id"])
    # a dismissed record leaves the gauge
    with served.client("admin") as client:
        dismissed = client.post(
            f"/v1/dlq/{failed['dlq'][0]['id']}/dismiss", params={"reason": "bytes lost"}
        )
    assert dismissed.status_code == 200, dismissed.text
    assert open_now() == len(listed)
