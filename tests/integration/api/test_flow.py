"""The API end to end over real stages: live events, queries, lineage, dead letters and replay,
and 429 when the ingest queue is full."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.api._server import EXAMPLES, Served, api_settings, lose_payloads, serve


class EventReader:
    """Reads ``/v1/events`` in a thread and keeps every CloudEvent received."""

    def __init__(
        self, served: Served, correlation_id: str | None = None, *, full: bool = False
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        params = {"correlation_id": correlation_id} if correlation_id else {}
        if full:
            params["full"] = "true"
        self._thread = threading.Thread(target=self._run, args=(served, params), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the SSE stream did not open"

    def _run(self, served: Served, params: dict[str, str]) -> None:
        with (
            served.client(timeout=httpx.Timeout(30.0, read=None)) as client,
            client.stream("GET", "/v1/events", params=params) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))
                if self._stop.is_set():
                    return

    def wait_for(self, predicate: Any, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no matching event among {[e['type'] for e in self.events]}")

    def close(self) -> None:
        self._stop.set()


def upload(served: Served, name: str, data: bytes, token: str = "admin") -> dict[str, Any]:
    with served.client(token) as client:
        response = client.post("/v1/ingest", files={"file": (name, data)})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def test_live_events_follow_an_upload_to_its_voxel(served: Served) -> None:
    reader, full_reader = EventReader(served), EventReader(served, full=True)
    try:
        accepted = upload(served, "idle-history.txt", (EXAMPLES / "idle-history.txt").read_bytes())
        cid = accepted["correlation_id"]
        created = reader.wait_for(
            lambda e: e["correlationid"] == cid and e["type"] == "system.voxel.created"
        )
        full_created = full_reader.wait_for(
            lambda e: e["correlationid"] == cid and e["type"] == "system.voxel.created"
        )
    finally:
        reader.close()
        full_reader.close()
    types = [e["type"] for e in reader.events if e["correlationid"] == cid]
    assert types[0] == "ui.command.ingest.received"
    assert types.index("system.ingest.classified") < types.index("system.voxel.created")
    assert "system.nlp.processed" in types
    status = served.wait_outcome(cid)
    assert status["voxel_ids"] == [created["data"]["voxel"]["id"]]
    # the live view carries a summary by default, every entity with ?full=true
    summary, full = created["data"]["nlp"], full_created["data"]["nlp"]
    assert summary["entities"] == len(full["entities"]) > 5
    assert summary["sentences"] == len(full["sentences"])
    assert len(summary["top_entities"]) == 5 and "noun_chunks" in full
    assert len(json.dumps(created)) < len(json.dumps(full_created)) / 3


def test_voxel_queries_filters_search_and_cursor(served: Served) -> None:
    names = ["python-history.txt", "nodejs-contributing.md", "timezones.csv"]
    cids = [upload(served, n, (EXAMPLES / n).read_bytes())["correlation_id"] for n in names]
    outcomes = [served.wait_outcome(c) for c in cids]
    assert all(o["outcome"] == "stored" for o in outcomes), outcomes
    with served.client("read") as client:
        csv = client.get("/v1/voxels", params={"label": "csv"}).json()["items"]
        text = client.get("/v1/voxels", params={"group": "text"}).json()["items"]
        guido = client.get("/v1/voxels", params={"q": "guido"}).json()["items"]
        future = client.get("/v1/voxels", params={"since": "2999-01-01T00:00:00Z"}).json()
        naive = client.get("/v1/voxels", params={"since": "2020-01-01T00:00:00"})
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/voxels", params=params).json()
            seen.extend(v["id"] for v in page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        everything = client.get("/v1/voxels", params={"limit": 200}).json()["items"]
    assert [v["name"] for v in csv] == ["timezones.csv"]
    assert {"python-history.txt", "nodejs-contributing.md"} <= {v["name"] for v in text}
    assert all(v["group"] == "text" for v in text)
    assert "python-history.txt" in {v["name"] for v in guido}
    with served.client("read") as client:
        for voxel in guido:  # the list holds summaries, the detail route every entity
            assert "traits" not in voxel and voxel["nlp"]["entities"] > 0
            detail = client.get(f"/v1/voxels/{voxel['short_id']}").json()
            entities = detail["traits"]["nlp"]["entities"]
            assert any("guido" in e["text"].lower() for e in entities)
        upper = client.get("/v1/voxels", params={"label": "CSV"}).json()["items"]
        persons = client.get("/v1/voxels", params={"entity_type": "person"}).json()["items"]
        nobody = client.get("/v1/voxels", params={"entity_type": "no_such_type"}).json()
        no_model = client.get("/v1/voxels", params={"model_label": "sneaker"}).json()
    assert [v["name"] for v in upper] == ["timezones.csv"]
    assert "python-history.txt" in {v["name"] for v in persons}
    assert all(v["nlp"]["entity_labels"].get("PERSON") for v in persons)
    assert nobody["items"] == [] and no_model["items"] == []  # inference is off here
    assert future == {"items": [], "next_cursor": None}
    assert naive.status_code == 400 and naive.json()["error"]["code"] == "invalid_request"
    assert seen == [v["id"] for v in everything], "cursor pages must neither repeat nor skip"
    assert len(seen) == len(set(seen))


def test_archive_lineage_both_directions(served: Served) -> None:
    accepted = upload(served, "bundle.zip", (EXAMPLES / "bundle.zip").read_bytes())
    outcome = served.wait_outcome(accepted["correlation_id"])
    assert outcome["outcome"] in {"stored", "partial"}
    with served.client("read") as client:
        voxels = [client.get(f"/v1/voxels/{v}").json() for v in outcome["voxel_ids"]]
        archive = next(v for v in voxels if v["name"] == "bundle.zip")
        down = client.get(
            f"/v1/voxels/{archive['id']}/lineage", params={"direction": "descendants"}
        ).json()
        member = next(v for v in voxels if v["id"] != archive["id"])
        up = client.get(
            f"/v1/voxels/{member['id']}/lineage", params={"direction": "ancestors"}
        ).json()
        bad = client.get(f"/v1/voxels/{member['id']}/lineage", params={"direction": "sideways"})
    children = {e["child_id"] for e in down["edges"] if e["parent_id"] == archive["id"]}
    # members are stored as children even when an earlier test stored the same bytes
    assert member["id"] in children and len(children) >= 2
    assert {n["id"] for n in down["nodes"]} >= children | {archive["id"]}
    assert up["edges"] == [{"child_id": member["id"], "parent_id": archive["id"], "depth": 1}]
    assert bad.status_code == 400


def test_id_prefix_wildcards_are_refused(served: Served) -> None:
    """``_`` and ``%`` in an id prefix are not LIKE wildcards: 400, never some voxel."""
    accepted = upload(served, "wildcard.txt", b"a voxel to look up by prefix")
    outcome = served.wait_outcome(accepted["correlation_id"])
    voxel_id = outcome["voxel_ids"][0]
    with served.client("read") as client:
        found = client.get(f"/v1/voxels/{voxel_id[:13]}")
        underscores = client.get(f"/v1/voxels/____{voxel_id[4:13]}")
        percent = client.get("/v1/voxels/%25%25%25%25")
        payload = client.get(f"/v1/voxels/____{voxel_id[4:13]}/payload")
    assert found.status_code == 200 and found.json()["id"] == voxel_id
    for response in (underscores, percent, payload):
        assert response.status_code == 400, response.text
        assert "only hex digits" in response.json()["error"]["message"]


def test_dead_letter_listed_then_replayed_by_admin_only(served: Served) -> None:
    data = b"This text's stored bytes go missing before classify: a lost payload.\n"
    losing = lose_payloads(served)  # fault injected on purpose: the store loses these bytes
    losing.lost.add(hashlib.sha256(data).hexdigest())
    try:
        accepted = upload(served, "lost.txt", data)
        cid = accepted["correlation_id"]
        failed = served.wait_outcome(cid)
    finally:
        losing.lost.clear()  # the payload is back
    assert failed["outcome"] == "dead_lettered"
    assert failed["dlq"][0]["stage"] == "classify" and failed["dlq"][0]["reason"] == "not_found"
    dlq_id = failed["dlq"][0]["id"]
    with served.client("read") as client:
        listing = client.get("/v1/dlq", params={"status": "open"}).json()["items"]
        refused = client.post(f"/v1/dlq/{dlq_id}/replay")
    record = next(item for item in listing if item["id"] == dlq_id)
    assert record["artifact_name"] == "lost.txt" and record["replayable"]
    assert record["reason"] == "not_found" and "Traceback" in record["traceback"]
    assert refused.status_code == 403

    assert record["permanence"] == "permanent" and record["retryable"] is False
    reader = EventReader(served, correlation_id=cid)  # filtered: only this ingest's events
    try:
        with served.client("admin") as client:
            unforced = client.post(f"/v1/dlq/{dlq_id}/replay")
            # the bytes are back, so this permanent failure is worth forcing
            replay = client.post(f"/v1/dlq/{dlq_id}/replay", params={"all": "true"})
            again = client.post(f"/v1/dlq/{dlq_id}/replay", params={"all": "true"})
        assert unforced.status_code == 409, unforced.text
        assert unforced.json()["error"]["code"] == "not_retryable"
        assert "all=true" in unforced.json()["error"]["message"]
        assert replay.status_code == 202, replay.text
        assert replay.json()["correlation_id"] == cid
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_replayed"
        created = reader.wait_for(lambda e: e["type"] == "system.voxel.created")
    finally:
        reader.close()
    assert {e["correlationid"] for e in reader.events} == {cid}
    status = served.wait_outcome(cid)
    assert status["outcome"] == "stored" and status["voxel_ids"] == [created["data"]["voxel"]["id"]]
    deadline = time.monotonic() + 30
    with served.client("read") as client:
        while True:  # the collector records the voxel, which resolves the record
            items = client.get("/v1/dlq", params={"status": "all"}).json()["items"]
            record = next(i for i in items if i["id"] == dlq_id)
            if record["status"] == "resolved" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        still_open = client.get("/v1/dlq").json()["items"]
    assert record["status"] == "resolved" and record["replay_event_id"]
    assert dlq_id not in {i["id"] for i in still_open}


def test_dlq_triage_groups_replay_retryable_dismiss_and_purge(served: Served) -> None:
    """A store that was briefly away (retryable) and a lost payload (permanent): grouped with
    their kind; a group replay sends the retryable one only; the permanent one is refused
    unless forced, then dismissed with who and why; short ids work; purge counts."""
    away_data = b"The object store is away for a moment while this is classified.\n"
    lost_data = b"These bytes are lost for good before classify.\n"
    losing = lose_payloads(served)  # faults injected on purpose (a store away; lost bytes)
    losing.away.add(hashlib.sha256(away_data).hexdigest())
    losing.lost.add(hashlib.sha256(lost_data).hexdigest())
    try:
        away = served.wait_outcome(upload(served, "away.txt", away_data)["correlation_id"])
        lost = served.wait_outcome(upload(served, "gone.txt", lost_data)["correlation_id"])
    finally:
        losing.away.clear()  # the store is back; the lost bytes stay lost
    assert away["dlq"][0]["reason"] == "backend" and lost["dlq"][0]["reason"] == "not_found"
    with served.client("read") as client:
        page = client.get("/v1/dlq/groups").json()
        by_name = {g["artifact_name"]: g for g in page["items"]}
        one = client.get(f"/v1/dlq/{by_name['gone.txt']['latest']['short_id']}")
        ambiguous = client.get(f"/v1/dlq/{away['dlq'][0]['id'][:4]}")
        bad = client.get("/v1/dlq/%25%25%25%25")
        denied = client.post(f"/v1/dlq/groups/{by_name['gone.txt']['group_id']}/dismiss?reason=x")
        not_admin = client.post("/v1/dlq/purge", params={"older_than": "1d"})
    assert page["total"] >= 2
    retry, perm = by_name["away.txt"], by_name["gone.txt"]
    assert retry["permanence"] == "retryable" and retry["retryable"] is True
    assert retry["stage"] == "classify" and retry["count"] == 1
    assert (
        perm["permanence"] == "permanent"
        and perm["latest"]["error_type"] == "ArtifactNotFoundError"
    )
    assert retry["first_time"] <= retry["last_time"]
    assert one.status_code == 200 and one.json()["id"] == lost["dlq"][0]["id"]
    assert ambiguous.status_code == 409 and ambiguous.json()["error"]["code"] == "ambiguous_id"
    assert bad.status_code == 400
    assert denied.status_code == 403 and not_admin.status_code == 403

    with served.client("admin") as client:
        sent = client.post(f"/v1/dlq/groups/{retry['group_id']}/replay")
        skipped = client.post(f"/v1/dlq/groups/{perm['group_id'][:6]}/replay")
        refused = client.post(f"/v1/dlq/{perm['latest']['short_id']}/replay")
        dismissed = client.post(
            f"/v1/dlq/{perm['latest']['short_id']}/dismiss", params={"reason": "bytes lost"}
        )
        twice = client.post(
            f"/v1/dlq/{perm['latest']['short_id']}/dismiss", params={"reason": "again"}
        )
        unknown = client.post("/v1/dlq/groups/ffffffffffff/replay")
    assert sent.status_code == 200, sent.text
    assert [r["correlation_id"] for r in sent.json()["replayed"]] == [away["correlation_id"]]
    assert sent.json()["skipped"] == {}
    assert skipped.json()["replayed"] == [] and skipped.json()["skipped"] == {"permanent": 1}
    assert skipped.json()["skipped_ids"] == [perm["latest"]["id"]]
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_retryable"
    assert dismissed.status_code == 200 and dismissed.json()["dismissed"] == [perm["latest"]["id"]]
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "not_open"
    assert unknown.status_code == 404
    assert served.wait_outcome(away["correlation_id"])["outcome"] == "stored"

    with served.client("read") as client:
        open_ids = {i["id"] for i in client.get("/v1/dlq").json()["items"]}
        gone = client.get("/v1/dlq", params={"status": "dismissed", "group": perm["group_id"]})
    assert perm["latest"]["id"] not in open_ids
    (record,) = gone.json()["items"]
    assert record["dismiss_note"] == "bytes lost" and record["dismissed_by"].startswith("token:")
    with served.client("admin") as client:
        dry = client.post("/v1/dlq/purge", params={"older_than": "0s", "dry_run": "true"})
        young = client.post("/v1/dlq/purge", params={"older_than": "30d"})
        nonsense = client.post("/v1/dlq/purge", params={"older_than": "soon"})
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    assert dry.json()["by_status"].get("dismissed", 0) >= 1
    assert young.json() == {"dry_run": False, "deleted": 0, "by_status": {}}
    assert nonsense.status_code == 400


def test_dlq_bad_cursor_and_models(served: Served) -> None:
    with served.client("read") as client:
        bad = client.get("/v1/dlq", params={"cursor": "nope"})
        for odd in ("x" * 36, "0" * 36, "%" * 36):  # 36 characters, not a record's id
            weird = client.get("/v1/dlq", params={"cursor": odd})
            assert weird.status_code == 400 and weird.json()["error"]["code"] == "bad_cursor"
        models = client.get("/v1/models").json()
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"
    assert models["models"], models
    assert all(
        m["checksum"] in {"ok", "mismatch", "missing", "untrusted"} for m in models["models"]
    )
    assert all(m["sha256"] for m in models["models"] if m["checksum"] == "ok")


@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[tuple[Served, threading.Event]]:
    """A server whose classify stage is stalled on purpose (queue of 2, one message in flight)."""
    settings = api_settings(
        tmp_path / "home",
        enable_ml_pipeline=False,
        queue_max=2,
        max_demand=1,
        classify_batch_size=1,
        classify_concurrency=1,
    )
    with serve(settings) as running:
        classify = running.service.require_runtime().stages[0]
        release = threading.Event()
        real = classify.handle_batch

        async def stalled_batch(events: Any) -> Any:
            while not release.is_set():
                await asyncio.sleep(0.02)
            return await real(events)

        classify.handle_batch = stalled_batch  # type: ignore[method-assign]
        yield running, release
        release.set()


def test_full_ingest_queue_is_429_with_retry_after(stalled: tuple[Served, threading.Event]) -> None:
    served, release = stalled
    statuses = []
    for n in range(6):
        with served.client() as client:
            response = client.post(
                "/v1/ingest", files={"file": (f"f{n}.txt", f"file {n}".encode())}
            )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "queue_full"
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {202}, statuses
    release.set()
    with served.client() as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = client.post("/v1/ingest", files={"file": ("late.txt", b"late")})
            if response.status_code == 202:
                break
            time.sleep(0.1)
    assert response.status_code == 202


def test_ingest_status_after_a_restart_comes_from_the_outcome_store(served: Served) -> None:
    accepted = upload(served, "colorsys.py", (EXAMPLES / "colorsys.py").read_bytes())
    live = served.wait_outcome(accepted["correlation_id"])
    deadline = time.monotonic() + 30
    outcomes = served.service.require_runtime().outcomes
    while not outcomes.by_correlation(accepted["correlation_id"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    served.service.tracker._items.clear()  # as after a restart: nothing in memory
    with served.client("read") as client:
        stored = client.get(f"/v1/ingest/{accepted['correlation_id']}").json()
        unknown = client.get("/v1/ingest/01a21cf3-0000-7000-8000-000000000000")
    assert stored["outcome"] == "stored" and stored["voxel_ids"] == live["voxel_ids"]
    assert stored["name"] == "colorsys.py"
    assert stored["stages_done"][0] == "classify" and stored["stages_done"][-1] == "package"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "ingest_not_found"


def test_tampered_payload_is_502_and_no_byte_is_served(served: Served) -> None:
    from sqlalchemy import update

    from thunderline.voxel.tables import voxel_payloads

    data = b"Bytes that someone will change on disk behind the store's back.\n"
    accepted = upload(served, "tamper.txt", data)
    voxel_id = served.wait_outcome(accepted["correlation_id"])["voxel_ids"][0]
    store = served.service.require_voxels()
    with store.engine.begin() as conn:  # fault injected on purpose: corrupt the stored bytes
        conn.execute(
            update(voxel_payloads)
            .where(voxel_payloads.c.sha256 == hashlib.sha256(data).hexdigest())
            .values(data=b"X" + data[1:])
        )
    with served.client("read") as client:
        response = client.get(f"/v1/voxels/{voxel_id}/payload")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "checksum_mismatch"
    assert b"ytes that someone" not in response.content  # neither the good nor the bad bytes


def test_console_voxel_list_date_filters(served: Served) -> None:
    accepted = upload(served, "dated.txt", b"Dated upload for the console filter.")
    assert served.wait_outcome(accepted["correlation_id"])["outcome"] == "stored"
    with served.client(None) as client:
        client.post("/login", data={"token": served.read_token})
        today = time.strftime("%Y-%m-%d", time.gmtime())
        current = client.get("/voxels", params={"since": today, "until": today}).text
        future = client.get("/voxels", params={"since": "2999-01-01"}).text
        bad = client.get("/voxels", params={"since": "yesterday"}).text
    assert "dated.txt" in current
    assert "No voxels match." in future
    assert "Dates must be YYYY-MM-DD." in bad


def test_console_voxel_list_entity_type_and_model_label_filters(served: Served) -> None:
    """The console's voxel list filters as GET /v1/voxels does: entity type (any case) and
    the model's label, kept in the form and in the next-page link."""
    data = b"Ada Lovelace corresponded with Charles Babbage in London.\n"
    accepted = upload(served, "people-filter.txt", data)
    assert served.wait_outcome(accepted["correlation_id"])["outcome"] == "stored"
    with served.client(None) as client:
        client.post("/login", data={"token": served.read_token})
        persons = client.get("/voxels", params={"entity_type": "person"}).text
        nobody = client.get("/voxels", params={"entity_type": "no_such_type"}).text
        no_model = client.get("/voxels", params={"model_label": "no such label"}).text
    assert "people-filter.txt" in persons
    assert 'name="entity_type" value="person"' in persons
    assert "No voxels match." in nobody and "people-filter.txt" not in nobody
    assert "No voxels match." in no_model
    assert 'name="model_label" value="no such label"' in no_model


def test_voxel_text_is_the_extracted_text(served: Served) -> None:
    data = b"# Heading\n\nAda Lovelace wrote the first program in London.\n"
    accepted = upload(served, "notes.md", data)
    outcome = served.wait_outcome(accepted["correlation_id"])
    voxel_id = outcome["voxel_ids"][0]
    with served.client("read") as client:
        response = client.get(f"/v1/voxels/{voxel_id}/text")
        missing = client.get("/v1/voxels/01a21cf3-0000-7000-8000-000000000000/text")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "Heading\nAda Lovelace wrote the first program in London."
    assert missing.status_code == 404
