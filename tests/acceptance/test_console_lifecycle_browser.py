"""The console's lifecycle views in a real browser (Playwright driving Debian's Chromium): result
versions side by side on the voxel page after a reprocess, sources added, paused and resumed,
duplicates, and the webhook rules with their delivery log. Screenshots go to
``$TL_TEST_ARTIFACTS`` (default ``.test-artifacts/``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.acceptance._browser import require_chromium, shot, signed_in_page
from tests.integration.api._server import EXAMPLES, Served, api_settings, serve

from thunderline.webhooks.core import Webhooks

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_chromium()
    home = tmp_path_factory.mktemp("console-lifecycle-home")
    with serve(api_settings(home)) as running:
        yield running


@pytest.fixture(scope="module")
def page(console: Served) -> Iterator[Any]:
    with signed_in_page(console, height=860) as page:
        yield page


def _ingest(console: Served, name: str, data: bytes) -> str:
    with console.client("admin") as client:
        accepted = client.post("/v1/ingest", files={"file": (name, data)})
    assert accepted.status_code == 202, accepted.text
    status = console.wait_outcome(accepted.json()["correlation_id"])
    voxel_id: str = status["voxel_ids"][0]
    return voxel_id


def test_result_versions_side_by_side(console: Served, page: Any) -> None:
    voxel_id = _ingest(console, "colorsys.py", (EXAMPLES / "colorsys.py").read_bytes())
    with console.client("admin") as client:
        run = client.post("/v1/reprocess", json={"stage": "extract", "query": "name:colorsys.py"})
        assert run.status_code == 202, run.text
        deadline = time.monotonic() + 90
        while client.get(f"/v1/reprocess/{run.json()['id']}").json()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    page.goto(f"{console.url}/voxels/{voxel_id}")
    table = page.locator("#versions-extract")
    table.wait_for()
    headers = table.locator("thead th[scope=col]").all_inner_texts()
    assert [h.split()[0] for h in headers] == ["v1", "v2"] and "current" in headers[1]
    producers = table.locator("td.producer").all_inner_texts()
    assert len(producers) == 2 and producers[0] == producers[1]
    shot(page, "versions")


def test_sources_added_paused_and_resumed(console: Served, page: Any) -> None:
    page.goto(f"{console.url}/sources")
    page.fill("#add-source input[name=uri]", "s3://console-bucket/inbox")
    page.click("#add-source button[type=submit]")
    row = page.locator('tr[data-uri="s3://console-bucket/inbox/"]')
    row.wait_for()
    assert row.locator(".pill").inner_text() == "active"
    row.locator("button.toggle").click()
    page.locator('tr[data-uri="s3://console-bucket/inbox/"] .pill', has_text="paused").wait_for()
    shot(page, "sources")
    page.locator('tr[data-uri="s3://console-bucket/inbox/"] button.toggle').click()
    page.locator('tr[data-uri="s3://console-bucket/inbox/"] .pill', has_text="active").wait_for()


def test_duplicates_and_webhook_deliveries(console: Served, page: Any) -> None:
    with Webhooks(console.settings) as hooks:
        hooks.add("http://127.0.0.1:9/nobody-listens", ["ingested"], "s3cret")
    data = b"The same bytes, uploaded under two names for the duplicates view.\n"
    first = _ingest(console, "one.txt", data)
    _ingest(console, "two.txt", data)
    page.goto(f"{console.url}/duplicates")
    page.locator(f'#duplicates a[href="/voxels/{first}"]').wait_for()
    shot(page, "duplicates")
    deadline = time.monotonic() + 60
    while True:  # the dispatcher inside serve enqueues and tries (nobody listens: retried)
        page.goto(f"{console.url}/webhooks")
        if page.locator("#deliveries tr[data-event-id]").count() >= 2:
            break
        assert time.monotonic() < deadline
        time.sleep(1.0)
    assert "nobody-listens" in page.locator("#rules").inner_text()
    assert page.locator("#deliveries .pill", has_text="pending").count() >= 2
    shot(page, "webhooks")
