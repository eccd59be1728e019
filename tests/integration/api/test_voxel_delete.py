"""``DELETE /v1/voxels/{id}``: admin scope only, audited, the payload collected, 404 after."""

from __future__ import annotations

from tests.integration.api._server import Served

from thunderline.voxel import lifecycle
from thunderline.voxel.store import VoxelStore


def test_delete_a_voxel_as_admin_only(served: Served) -> None:
    data = b"A short text that is deleted through the API afterwards.\n"
    with served.client("admin") as client:
        accepted = client.post("/v1/ingest", files={"file": ("gone.txt", data)})
    assert accepted.status_code == 202, accepted.text
    status = served.wait_outcome(accepted.json()["correlation_id"])
    assert status["outcome"] == "stored", status
    (voxel_id,) = status["voxel_ids"]

    with served.client("read") as client:
        refused = client.delete(f"/v1/voxels/{voxel_id}")
    assert refused.status_code == 403
    with served.client("admin") as client:
        deleted = client.delete(f"/v1/voxels/{voxel_id}", params={"reason": "asked to forget it"})
        after = client.get(f"/v1/voxels/{voxel_id}")
        again = client.delete(f"/v1/voxels/{voxel_id}")
    assert deleted.status_code == 200, deleted.text
    (record,) = deleted.json()["deleted"]
    assert record["voxel_id"] == voxel_id and record["reason"] == "asked to forget it"
    assert record["actor"].startswith("token:") and record["payload_removed"] is True
    assert after.status_code == 404 and again.status_code == 404
    with VoxelStore(served.settings) as store:
        assert not store.objects.exists(record["payload_sha256"])
        assert lifecycle.check_references(store) == []
        assert [d.voxel_id for d in lifecycle.deletions(store)] == [voxel_id]


def test_sources_and_webhook_deliveries_are_listed(served: Served) -> None:
    from thunderline.sources.ledger import Ledger
    from thunderline.webhooks.core import Webhooks

    with Ledger(served.settings) as ledger:
        ledger.ensure_root("file:///srv/inbox")
    with Webhooks(served.settings) as hooks:
        hooks.add("http://127.0.0.1:9/never", ["failed"], "s3cret")
    with served.client("read") as client:
        sources = client.get("/v1/sources")
        refused = client.get("/v1/webhooks/deliveries")
    assert sources.status_code == 200
    assert "file:///srv/inbox" in [s["uri"] for s in sources.json()["items"]]
    assert refused.status_code == 403
    with served.client("admin") as client:
        log = client.get("/v1/webhooks/deliveries", params={"status": "failed"})
    assert log.status_code == 200 and log.json() == {"items": []}


def test_a_source_is_added_paused_and_resumed_by_admin(served: Served) -> None:
    with served.client("read") as client:
        refused = client.post("/v1/sources", json={"uri": "s3://bucket/inbox"})
    assert refused.status_code == 403
    with served.client("admin") as client:
        added = client.post("/v1/sources", json={"uri": "s3://bucket/inbox", "paused": True})
        bad = client.post("/v1/sources", json={"uri": "http://elsewhere/"})
        resumed = client.post("/v1/sources", json={"uri": "s3://bucket/inbox/"})
    assert added.status_code == 200, added.text
    (root,) = added.json()["items"]
    assert root["uri"] == "s3://bucket/inbox/" and root["paused"] is True
    assert bad.status_code == 400
    assert resumed.json()["items"][0]["paused"] is False
