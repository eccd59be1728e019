"""Shared by the console's browser tests: Chromium, a signed-in page, screenshots.

Playwright drives Debian's Chromium (``TL_TEST_CHROMIUM``, default ``/usr/bin/chromium``; no
browser download is reachable). Screenshots go to ``$TL_TEST_ARTIFACTS/console`` (default
``.test-artifacts/``) and, with ``TL_TEST_UPDATE_DOCS_IMG=1``, to ``docs/img/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.integration.api._server import REPO, Served

CHROMIUM = Path(os.environ.get("TL_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("TL_TEST_ARTIFACTS", REPO / ".test-artifacts")) / "console"
DOCS_IMG = REPO / "docs" / "img"
TIMEOUT_MS = 90_000


def require_chromium() -> None:
    """Skip without Chromium, or fail under ``TL_TEST_REQUIRE_SERVICES=1``."""
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("TL_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def signed_in_page(console: Served, height: int = 900) -> Iterator[Any]:
    """A Chromium page signed in as admin; fails on any JavaScript error when it closes."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport={"width": 1366, "height": height})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{console.url}/login#token={console.admin_token}")
        page.wait_for_url(f"{console.url}/")
        yield page
        context.close()
        browser.close()
        assert errors == [], f"JavaScript errors in the console: {errors}"


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot in the artefacts (and docs/img with TL_TEST_UPDATE_DOCS_IMG=1)."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("TL_TEST_UPDATE_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / f"console-{name}.png")
    return path
