"""One API server per module (startup loads Magika and a spaCy worker: seconds, not per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.integration.api._server import Served, api_settings, serve

#: Small upload limit so that "at the limit" and "one byte over" are cheap to send.
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("api-home")
    with serve(api_settings(home, max_artifact_bytes=LIMIT)) as running:
        yield running
