"""``GET /v1/search`` and ``GET /v1/export`` on a real server with real ingested uploads."""

from __future__ import annotations

import csv
import io
import json

from tests.integration.api._server import EXAMPLES, Served


def _ingest(served: Served, name: str) -> None:
    with served.client() as client:
        response = client.post("/v1/ingest", files={"file": (name, (EXAMPLES / name).read_bytes())})
        assert response.status_code == 202, response.text
        outcome = served.wait_outcome(response.json()["correlation_id"], timeout_s=120)
        assert outcome["outcome"] == "stored", outcome


def test_search_export_and_bad_queries(served: Served) -> None:
    for name in ("python-history.txt", "nodejs-contributing.md"):
        _ingest(served, name)
    with served.client("read") as client:
        found = client.get(
            "/v1/search", params={"q": 'entity:"Guido van Rossum" python', "facets": "true"}
        )
        assert found.status_code == 200, found.text
        body = found.json()
        assert [h["name"] for h in body["hits"]] == ["python-history.txt"]
        assert body["total"] == 1 and body["order"] == "relevance"
        assert any(s["match"] and s["text"].lower() == "python" for s in body["hits"][0]["snippet"])
        assert {"value": "txt", "count": 1} in body["facets"]["label"]

        bad = client.get("/v1/search", params={"q": 'foo AND "bar'})
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error["code"] == "query_syntax" and error["details"]["position"] == 8
        assert client.get("/v1/search", params={"q": "x", "cursor": "nonsense"}).status_code == 400
        assert client.get("/v1/export", params={"q": "colour:red"}).status_code == 400

        with client.stream("GET", "/v1/export", params={"q": "python"}) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("application/x-ndjson")
            rows = [json.loads(line) for line in streamed.iter_lines() if line]
        assert [r["name"] for r in rows] == ["python-history.txt"]
        assert rows[0]["lang"] == "en" and rows[0]["entities"]
        exported = client.get("/v1/export", params={"format": "csv", "text": "true"})
        table = list(csv.DictReader(io.StringIO(exported.text)))
        names = {r["name"] for r in table}
        assert {"python-history.txt", "nodejs-contributing.md"} <= names
        assert all(r["text"] for r in table if r["name"] == "python-history.txt")

        import pyarrow.parquet as pq

        parquet = client.get("/v1/export", params={"format": "parquet", "q": "python"})
        assert parquet.status_code == 200, parquet.text
        assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
        assert "thunderline-export.parquet" in parquet.headers["content-disposition"]
        frame = pq.read_table(io.BytesIO(parquet.content))
        assert frame.column("name").to_pylist() == ["python-history.txt"]
        assert frame.column("lang").to_pylist() == ["en"]


def test_a_query_too_long_says_its_length_not_itself(served: Served) -> None:
    query = "abcdefghij" * 300
    with served.client("read") as client:
        for path, params in (
            ("/v1/search", {"q": query}),
            ("/v1/search", {"q": query, "facets": "true", "order": "time"}),
            ("/v1/export", {"q": query}),
        ):
            response = client.get(path, params=params)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "query_syntax", error
            assert error["details"] == {"position": 1000, "length": 3000, "limit": 1000}
            assert "3000 characters" in error["message"] and "limit is 1000" in error["message"]
            assert len(response.text) < 400 and "abcdefghij" * 3 not in response.text

        # a mistake in a long query of allowed length: a short excerpt of the value
        bad = client.get("/v1/search", params={"q": "python " * 60 + "size>" + "9x" * 100})
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error["details"] == {"position": 425} and len(error["message"]) < 200, error

        # the limit is still documented
        spec = client.get("/openapi.json").json()
        (q,) = [p for p in spec["paths"]["/v1/search"]["get"]["parameters"] if p["name"] == "q"]
        assert q["schema"]["maxLength"] == 1000
        body = spec["components"]["schemas"]["ReprocessRequest"]["properties"]["query"]
        assert body["maxLength"] == 1000

    # the console's search page says so too (it used to cut the query at 1000 silently)
    with served.client(None, follow_redirects=True) as browser:
        browser.post("/login", data={"token": served.read_token})
        page = browser.get("/search", params={"q": query})
        assert page.status_code == 200
        assert "3000 characters" in page.text and "limit is 1000" in page.text, page.text[-2000:]
        assert 'class="caret"' not in page.text

    # and so does a reprocess run (its body used to fail validation without the length)
    with served.client("admin") as client:
        for path in ("/v1/reprocess", "/v1/reprocess/dry-run"):
            response = client.post(path, json={"stage": "extract", "query": query})
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "query_syntax", error
            assert error["details"] == {"position": 1000, "length": 3000, "limit": 1000}
