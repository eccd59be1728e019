"""List pages stay small with large documents; the full results are one detail request away.

Real NLP results of large documents (a 110 KB text made of the example texts, the 140 KB
example PDF) come from the running pipeline; 98 more voxels carrying those same results are
written to the store, so a page of 100 holds 100 large documents' results.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.api._server import EXAMPLES, Served, api_settings, serve

from thunderline.eventdata import (
    Classified,
    NlpAnalysis,
    NlpProcessed,
    data_of,
    extend,
    typed_event,
)
from thunderline.events import NLP_PROCESSED
from thunderline.ids import short
from thunderline.objects.factory import open_object_store
from thunderline.testing import classified
from thunderline.voxel.builder import VoxelBuilder

PAGE_LIMIT_BYTES = 100_000
TEXTS = ["python-history.txt", "idle-history.txt", "nodejs-contributing.md", "IDLE crédits.txt"]


def big_text(size: int = 110_000) -> bytes:
    """About ``size`` bytes of real prose: the example texts, repeated."""
    parts = [(EXAMPLES / name).read_bytes() for name in TEXTS]
    out = b""
    while len(out) < size:
        for part in parts:
            out += part + b"\n\n"
    return out


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, list[str]]]:
    home = tmp_path_factory.mktemp("pages-home")
    with serve(api_settings(home)) as served:
        inputs = {
            "big.txt": big_text(),
            "shared-mime-info-spec.pdf": (EXAMPLES / "shared-mime-info-spec.pdf").read_bytes(),
        }
        real: list[str] = []
        for name, data in inputs.items():
            with served.client() as client:
                response = client.post("/v1/ingest", files={"file": (name, data)})
            assert response.status_code == 202, response.text
            outcome = served.wait_outcome(response.json()["correlation_id"], timeout_s=240)
            assert outcome["outcome"] == "stored", outcome
            real.extend(outcome["voxel_ids"])
        yield served, real


def test_a_page_of_100_large_documents_stays_under_100_kb(large: tuple[Served, list[str]]) -> None:
    served, real = large
    store = served.service.require_voxels()
    nlps = [store.get(vid).traits["nlp"] for vid in real]
    assert min(len(n["entities"]) for n in nlps) > 100, "the documents must be large"
    with served.client("read") as client:
        details = [client.get(f"/v1/voxels/{vid}").content for vid in real]
    assert max(len(d) for d in details) > PAGE_LIMIT_BYTES, "one detail alone exceeds a page"

    objects = open_object_store(served.settings)
    builder = VoxelBuilder(store.ancestor_ids)
    for i in range(100 - len(real)):
        start = classified(objects, f"copy {i}".encode(), name=f"copy-{i:03}.txt")
        data = extend(
            data_of(start, Classified),
            NlpProcessed,
            nlp=NlpAnalysis.model_validate(nlps[i % len(nlps)]),
        )
        store.put(builder.build(typed_event(NLP_PROCESSED, data, parent=start)))

    with served.client("read") as client:
        page = client.get("/v1/voxels", params={"limit": 100})
        selected = client.get("/v1/voxels", params={"limit": 100, "fields": "id,short_id,name"})
        one = client.get(f"/v1/voxels/{short(real[0])}", params={"fields": "id,nlp"})
        bad = client.get("/v1/voxels", params={"fields": "id,traits"})
    assert page.status_code == 200
    items = page.json()["items"]
    assert len(items) == 100
    print(json.dumps({"page_bytes": len(page.content), "detail_bytes": [len(d) for d in details]}))
    assert len(page.content) < PAGE_LIMIT_BYTES, len(page.content)
    by_id: dict[str, Any] = {item["id"]: item for item in items}
    for vid, nlp in zip(real, nlps, strict=True):
        summary = by_id[vid]["nlp"]
        assert summary["entities"] == len(nlp["entities"])
        assert summary["sentences"] == len(nlp["sentences"])
        assert 0 < len(summary["top_entities"]) <= 5 and by_id[vid]["short_id"] == short(vid)
    assert selected.status_code == 200
    assert all(set(item) == {"id", "short_id", "name"} for item in selected.json()["items"])
    assert len(selected.content) < len(page.content) / 3
    assert one.status_code == 200 and set(one.json()) == {"id", "nlp"}
    assert one.json()["nlp"]["entities"] == nlps[0]["entities"]  # the detail is in full
    assert bad.status_code == 400 and "traits" in bad.json()["error"]["message"]
    assert "short_id" in bad.json()["error"]["details"]["allowed"]


def test_examples_are_where_the_test_expects_them() -> None:
    assert all(Path(EXAMPLES / name).is_file() for name in TEXTS)
