"""Voxel schema: every coords form, checksums over the canonical metadata, consistency rules."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from thunderline.voxel.schema import (
    ChannelCoords,
    SpatialCoords,
    Voxel,
    canonical_json,
    metadata_sha256,
    seal,
)

SHA = hashlib.sha256(b"payload").hexdigest()


def fields(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "01a21add-31fb-78da-bfcb-751a453ec641",
        "ts": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "source": "file:///data/a.txt",
        "coords": {"t": 1.5, "channel": "text", "position": 0},
        "traits": {"classification": {"label": "txt"}},
        "payload_ref": f"sha256:{SHA}",
        "payload_size": 7,
        "checksums": {"payload_sha256": SHA},
        "lineage": {"parent_event_ids": ["e1", "e0"], "parent_voxel_ids": []},
        "correlation_id": "e0",
        "causation_id": "e0",
        "event_id": "e1",
    }
    base.update(over)
    return base


def test_spatial_coords() -> None:
    voxel = seal(fields(coords={"t": 1.0, "x": 0.5, "y": -2, "z": 3}))
    assert isinstance(voxel.coords, SpatialCoords)
    assert voxel.coords.kind == "spatial"
    assert (voxel.coords.x, voxel.coords.y, voxel.coords.z) == (0.5, -2.0, 3.0)


def test_channel_coords() -> None:
    voxel = seal(fields())
    assert isinstance(voxel.coords, ChannelCoords)
    assert voxel.coords.kind == "channel"
    assert voxel.coords.channel == "text" and voxel.coords.position == 0


def test_coords_roundtrip_through_json() -> None:
    for coords in ({"t": 1.0, "x": 1, "y": 2, "z": 3}, {"t": 2.0, "channel": "img", "position": 4}):
        voxel = seal(fields(coords=coords))
        again = Voxel.model_validate_json(voxel.to_json())
        assert again == voxel
        assert type(again.coords) is type(voxel.coords)


@pytest.mark.parametrize(
    "coords",
    [
        {"t": 1.0, "x": 1, "y": 2},  # z missing
        {"t": 1.0, "x": 1, "y": 2, "z": 3, "channel": "a"},  # mixed forms
        {"t": 1.0, "channel": "a", "position": 1, "extra": 1},
        {"t": 1.0, "channel": "", "position": 1},  # empty channel
        {"t": 1.0, "channel": "a", "position": -1},  # negative position
        {"t": "later", "x": 1, "y": 2, "z": 3},  # t not a number
        {"channel": "a", "position": 1},  # t missing
        {},
    ],
)
def test_bad_coords_are_refused(coords: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        seal(fields(coords=coords))


def test_metadata_checksum_is_canonical_json_of_the_rest() -> None:
    voxel = seal(fields())
    doc = voxel.model_dump(mode="json")
    doc["checksums"] = {"payload_sha256": SHA}
    expected = hashlib.sha256(canonical_json(doc).encode()).hexdigest()
    assert voxel.checksums.metadata_sha256 == expected == metadata_sha256(voxel.metadata())
    # key order does not matter, any change of content does
    reordered = seal(dict(reversed(list(fields().items()))))
    assert reordered.checksums.metadata_sha256 == voxel.checksums.metadata_sha256
    changed = seal(fields(traits={"classification": {"label": "csv"}}))
    assert changed.checksums.metadata_sha256 != voxel.checksums.metadata_sha256


def test_payload_ref_must_match_checksum() -> None:
    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(ValidationError, match="payload_ref"):
        seal(fields(payload_ref=f"sha256:{other}"))
    with pytest.raises(ValidationError):
        seal(fields(payload_ref="md5:abc", checksums={"payload_sha256": SHA}))


def test_a_voxel_cannot_be_its_own_parent() -> None:
    vid = fields()["id"]
    with pytest.raises(ValidationError, match="own parent"):
        seal(fields(lineage={"parent_voxel_ids": [vid]}))


def test_naive_time_and_duplicate_parents_are_refused() -> None:
    with pytest.raises(ValidationError):
        seal(fields(ts=datetime(2026, 1, 1)))
    with pytest.raises(ValidationError, match="unique"):
        seal(fields(lineage={"parent_voxel_ids": ["a" * 36, "a" * 36]}))
