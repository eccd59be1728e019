"""``GET /v1/voxels/{id}/similar``, ``/v1/search?similar=`` and the console's similar links, on a
real server whose store embeds text voxels as it writes them (``TL_SEARCH_EMBED=true``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.integration.api._server import EXAMPLES, Served, api_settings, serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("similar-api")
    with serve(api_settings(home, search_embed=True)) as running:
        yield running


def _ingest(served: Served, name: str) -> str:
    with served.client() as client:
        response = client.post("/v1/ingest", files={"file": (name, (EXAMPLES / name).read_bytes())})
        assert response.status_code == 202, response.text
        outcome = served.wait_outcome(response.json()["correlation_id"], timeout_s=120)
        assert outcome["outcome"] == "stored", outcome
        return str(outcome["voxel_ids"][0])


def test_similar_over_http_and_in_the_console(served: Served) -> None:
    ids = {
        name: _ingest(served, name)
        for name in (
            "python-history.txt",
            "IDLE crédits.txt",
            "nodejs-contributing.md",
            "fashion-mnist-bag.png",
        )
    }
    history = ids["python-history.txt"]
    with served.client("read") as client:
        page = client.get(f"/v1/voxels/{history}/similar")
        assert page.status_code == 200, page.text
        hits = page.json()["hits"]
        assert [h["name"] for h in hits] == ["IDLE crédits.txt", "nodejs-contributing.md"]
        assert hits[0]["score"] > hits[1]["score"]
        same = client.get("/v1/search", params={"similar": history[:12], "q": "label:markdown"})
        assert same.status_code == 200, same.text
        assert [h["name"] for h in same.json()["hits"]] == ["nodejs-contributing.md"]
        paged = client.get(f"/v1/voxels/{history}/similar", params={"limit": 1})
        cursor = paged.json()["next_cursor"]
        rest = client.get(f"/v1/voxels/{history}/similar", params={"cursor": cursor})
        assert [h["name"] for h in rest.json()["hits"]] == ["nodejs-contributing.md"]

        image = client.get(f"/v1/voxels/{ids['fashion-mnist-bag.png']}/similar")
        assert image.status_code == 409 and image.json()["error"]["code"] == "no_embedding"
        unknown = client.get(f"/v1/voxels/{'0' * 12}/similar")
        assert unknown.status_code == 404
        bad = client.get(f"/v1/voxels/{history}/similar", params={"q": "label:"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "query_syntax"

    with served.client(None, follow_redirects=True) as browser:
        browser.post("/login", data={"token": served.read_token})
        voxel_page = browser.get(f"/voxels/{history}")
        assert voxel_page.status_code == 200
        assert 'id="similar"' in voxel_page.text
        assert f'href="/voxels/{ids["IDLE crédits.txt"]}"' in voxel_page.text
        more = browser.get("/search", params={"similar": history})
        assert more.status_code == 200 and 'id="similar-mode"' in more.text
        assert "IDLE crédits.txt" in more.text and "python-history.txt" not in more.text
