"""The console's search page in a real browser (Playwright driving Debian's Chromium).

Real uploads become voxels; the operator types a query, sees highlighted snippets and the
facet sidebar with counts, narrows the result with a facet link, and gets a malformed query
explained with its position (not an error page). The screenshot is saved with the other
console artefacts (and copied to ``docs/img/`` with ``TL_TEST_UPDATE_DOCS_IMG=1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.acceptance._browser import require_chromium, shot, signed_in_page
from tests.integration.api._server import EXAMPLES, Served, api_settings, serve

UPLOADS = ["python-history.txt", "IDLE crédits.txt", "nodejs-contributing.md", "README.md"]

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_chromium()
    home = tmp_path_factory.mktemp("console-search-home")
    with serve(api_settings(home, onnx_enabled=True)) as running:
        with running.client() as client:
            for name in UPLOADS:
                sent = client.post(
                    "/v1/ingest", files={"file": (name, (EXAMPLES / name).read_bytes())}
                )
                assert sent.status_code == 202, sent.text
                running.wait_outcome(sent.json()["correlation_id"], timeout_s=120)
        yield running


@pytest.fixture(scope="module")
def page(console: Served) -> Iterator[Any]:
    with signed_in_page(console, height=900) as page:
        yield page


def test_search_with_snippets_and_facets(console: Served, page: Any) -> None:
    page.goto(f"{console.url}/")
    page.get_by_role("link", name="Search").click()
    page.fill("#q", "guido python")
    page.get_by_role("button", name="Search").click()
    page.locator("ol.hits li.hit").first.wait_for()
    names = page.locator("ol.hits a.hit-name").all_inner_texts()
    assert "python-history.txt" in names and "IDLE crédits.txt" in names
    assert "nodejs-contributing.md" not in names
    marks = [m.lower() for m in page.locator("mark.hit-mark").all_inner_texts()]
    assert "guido" in marks and "python" in marks
    persons = page.locator('section.facet[data-facet="entity"] li', has_text="Guido van Rossum")
    assert persons.count() == 1
    assert page.locator('section.facet[data-facet="label"] li').count() >= 1
    shot(page, "search")

    page.locator('section.facet[data-facet="label"] a', has_text="markdown").click()
    page.wait_for_url("**label%3Amarkdown**")
    narrowed = page.locator("ol.hits a.hit-name").all_inner_texts()
    assert narrowed == ["README.md"]

    page.fill("#q", 'entity:"Guido van Rossum')
    page.get_by_role("button", name="Search").click()
    alert = page.locator("#query-error")
    alert.wait_for()
    assert "unclosed quote" in alert.inner_text()
    assert page.locator("pre.caret").inner_text().splitlines()[-1] == " " * 7 + "^"
