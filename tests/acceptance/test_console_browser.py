"""The web console in a real browser (Playwright driving Debian's Chromium).

An operator signs in, uploads three example files and watches them reach "voxel stored" live,
opens a voxel page with highlighted entities and a lineage graph, makes a retryable failure (the
object store is away for one upload: a fault injected on purpose) and replays it from the DLQ
page once the store is back, and dismisses a permanent one (bytes lost for good), which is
offered no Replay. Screenshots of every page are saved as test artefacts in
``$TL_TEST_ARTIFACTS`` (default ``.test-artifacts/``); with ``TL_TEST_UPDATE_DOCS_IMG=1`` they
are also copied to ``docs/img/`` for the README.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from tests.acceptance._browser import ARTIFACTS, CHROMIUM, TIMEOUT_MS, require_chromium, shot
from tests.integration.api._server import EXAMPLES, Served, api_settings, lose_payloads, serve

UPLOADS = ["bundle.zip", "rabbitmq-bunny.png", "nodejs-contributing.md"]

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_chromium()
    home = tmp_path_factory.mktemp("console-home")
    with serve(api_settings(home, onnx_enabled=True)) as running:
        yield running


@pytest.fixture(scope="module")
def page(console: Served) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport={"width": 1366, "height": 860})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        context.close()
        browser.close()
        assert errors == [], f"JavaScript errors in the console: {errors}"


def test_sign_in_with_the_printed_link(console: Served, page: Any) -> None:
    page.goto(f"{console.url}/voxels")
    assert "/login" in page.url
    shot(page, "login")
    page.goto(f"{console.url}/login#token={console.admin_token}")
    page.wait_for_url(f"{console.url}/")
    assert "#token" not in page.url
    assert page.get_by_role("navigation", name="Main").is_visible()


def test_upload_three_files_and_watch_them_become_voxels(console: Served, page: Any) -> None:
    page.goto(f"{console.url}/")
    page.locator("#sse-state").filter(has_text="live").wait_for()
    page.set_input_files("#file-input", [str(EXAMPLES / name) for name in UPLOADS])
    for name in UPLOADS:
        row = page.locator(f'#runs tr[data-name="{name}"]')
        row.locator(".status", has_text="voxel stored").wait_for()
        assert row.locator(".chip.done", has_text="classify").count() == 1
        assert row.locator(".chip.done", has_text="package").count() == 1
    image = page.locator('#runs tr[data-name="rabbitmq-bunny.png"]')
    assert image.locator(".chip.done", has_text="infer").count() == 1
    text = page.locator('#runs tr[data-name="nodejs-contributing.md"]')
    assert text.locator(".chip.done", has_text="nlp").count() == 1
    assert page.locator("#feed li").count() >= 9
    shot(page, "upload")


def test_drag_and_drop_upload(console: Served, page: Any) -> None:
    page.goto(f"{console.url}/")
    page.locator("#sse-state").filter(has_text="live").wait_for()
    page.evaluate(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["Marie Curie worked in Paris."], "dropped.txt",
                                        {type: "text/plain"}));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }"""
    )
    row = page.locator('#runs tr[data-name="dropped.txt"]')
    row.locator(".status", has_text="voxel stored").wait_for()
    assert row.locator("progress").evaluate("bar => bar.value") == 100


def test_voxel_page_shows_entities_and_lineage(console: Served, page: Any) -> None:
    page.goto(f"{console.url}/")
    page.goto(f"{console.url}/voxels?label=zip")
    page.get_by_role("link", name="bundle.zip").click()
    graph = page.locator("svg#lineage")
    graph.wait_for()
    assert graph.locator("a.node").count() == 4  # the archive and its three members
    graph.locator("a.node", has_text="python-history.txt").click()
    page.get_by_role("heading", name="python-history.txt").wait_for()
    marks = page.locator("#preview mark.ent")
    assert marks.count() >= 3
    assert "Guido" in " ".join(marks.all_inner_texts())
    assert page.locator("svg#lineage a.node.current").count() == 1
    assert page.locator("svg#lineage a.node", has_text="bundle.zip").count() == 1
    shot(page, "voxel")

    page.goto(f"{console.url}/voxels?label=png")
    page.get_by_role("link", name="rabbitmq-bunny.png").click()
    page.locator("svg.bars rect.bar").first.wait_for()
    # the preview loads on its own request: wait for it (naturalWidth is 0 until it has)
    page.wait_for_function(
        "() => { const i = document.querySelector('img.preview-img'); return i && i.complete }"
    )
    assert page.locator("img.preview-img").evaluate("img => img.naturalWidth") > 0
    shot(page, "voxel-image")

    page.goto(f"{console.url}/voxels")
    assert page.locator("table.list tbody tr").count() >= 6
    page.fill("input[name=q]", "Guido")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=Guido**")
    assert page.get_by_role("link", name="python-history.txt").count() >= 1
    shot(page, "voxels")


def test_failure_is_replayed_from_the_console(console: Served, page: Any) -> None:
    """A store briefly away dead-letters the upload (retryable): its group offers Replay,
    which stores the voxel once the store is back."""
    name = "away-from-storage.txt"
    data = b"Grace Hopper worked at Harvard in 1944.\n"
    losing = lose_payloads(console)  # fault injected on purpose: the store is away for these
    losing.away.add(hashlib.sha256(data).hexdigest())
    upload = ARTIFACTS / name
    upload.write_bytes(data)
    page.goto(f"{console.url}/")
    page.locator("#sse-state").filter(has_text="live").wait_for()
    page.set_input_files("#file-input", [str(upload)])
    row = page.locator(f'#runs tr[data-name="{name}"]')
    row.locator(".status", has_text="dead-lettered: backend").wait_for()
    losing.away.clear()  # the store is back: a replay can now succeed

    row.locator(".status a").click()
    page.wait_for_url(f"{console.url}/dlq")
    record = page.locator("#dlq tbody tr", has_text=name)
    assert record.locator(".pill", has_text="backend").count() == 1
    assert record.locator(".pill.permanence").inner_text() == "retryable"
    assert record.locator("td.count").inner_text() == "1"
    record.locator("summary", has_text="Traceback").click()
    assert "BackendError" in record.locator("pre.tb").inner_text()
    shot(page, "dlq")
    button = record.get_by_role("button", name="Replay")
    button.focus()
    page.keyboard.press("Enter")  # keyboard accessible
    record.locator(".status", has_text="replayed: voxel stored").wait_for()
    page.reload()
    assert page.locator("#dlq tbody tr", has_text=name).count() == 0  # no longer open
    page.goto(f"{console.url}/dlq?status=all")
    status = page.locator("#dlq tbody tr", has_text=name).locator(".status").inner_text()
    assert status in {"replayed", "resolved"}  # resolved once the collector records the voxel


def test_permanent_failure_offers_dismiss_not_replay(console: Served, page: Any) -> None:
    """Bytes lost for good (permanent), uploaded twice: one group of two, no Replay button;
    Dismiss with a reason closes the group."""
    name = "lost-for-good.txt"
    data = b"These bytes go missing for good.\n"
    losing = lose_payloads(console)  # fault injected on purpose: the store loses these bytes
    losing.lost.add(hashlib.sha256(data).hexdigest())
    upload = ARTIFACTS / name
    upload.write_bytes(data)
    page.goto(f"{console.url}/")
    page.locator("#sse-state").filter(has_text="live").wait_for()
    for _ in range(2):
        page.set_input_files("#file-input", [str(upload)])
        newest = page.locator(f'#runs tr[data-name="{name}"]').first  # rows are prepended
        newest.locator(".status", has_text="dead-lettered: not_found").wait_for()
    page.wait_for_function(
        "n => document.querySelectorAll(`#runs tr[data-name='${n}'] .dlq-link`).length >= 2",
        arg=name,
    )
    page.goto(f"{console.url}/dlq")
    record = page.locator("#dlq tbody tr", has_text=name)
    assert record.locator(".pill.permanence").inner_text() == "permanent"
    assert record.get_by_role("button", name="Replay").count() == 0
    record.get_by_label("Reason").fill("bytes lost in the 2026 disk failure")
    record.get_by_role("button", name="Dismiss").click()
    record.locator(".status", has_text="dismissed").wait_for()
    shot(page, "dlq-dismissed")
    page.reload()
    assert page.locator("#dlq tbody tr", has_text=name).count() == 0
    page.goto(f"{console.url}/dlq?status=dismissed")
    closed = page.locator("#dlq tbody tr", has_text=name)
    assert "bytes lost in the 2026 disk failure" in closed.inner_text()


def test_health_page(console: Served, page: Any) -> None:
    page.goto(f"{console.url}/health")
    assert page.locator("#ready").inner_text() == "ready"
    checks = page.locator("#checks tbody tr")
    names = [checks.nth(i).locator("td").first.inner_text() for i in range(checks.count())]
    assert {"database", "object_store", "bus", "models", "nlp_breaker"} <= set(names)
    shot(page, "health")
