"""Voxel schema: every coords form, checksums over the canonical metadata, consistency rules."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from thunderline.events import CloudEvent
from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.schema import (
    ChannelCoords,
    SpatialCoords,
    Voxel,
    canonical_json,
    metadata_sha256,
    seal,
    sealed_json,
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


def test_seal_keeps_the_document_it_made_for_that_object_only() -> None:
    name = "caf\u00e9 \udc80.txt"  # non-ASCII and an undecodable byte
    voxel = seal(fields(traits={"artifact": {"name": name}, "x": [1, 2.5, None, '"']}))
    assert sealed_json(voxel) == voxel.to_json()  # the same text a fresh serialisation gives
    # a copy (maybe with other fields) or a voxel parsed back has none: its JSON is made anew
    assert sealed_json(voxel.model_copy(update={"source": "file:///other"})) is None
    parsed = Voxel.model_validate(json.loads(voxel.to_json()))
    assert sealed_json(parsed) is None
    assert parsed == voxel  # equality is unchanged


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


@pytest.mark.parametrize(
    "traits",
    [
        {},
        {"classification": {"label": "txt", "score": 0.6527196764945984}},
        {
            "artifact": {"name": "caf\u00e9 \udc80.txt", "source": None, "size": 2**40},
            "nlp": {"entities": [{"text": "Zürich", "start": 0, "end": 6}], "lang_score": 1e-05},
            "x": [1, -2.5, None, True, False, '"\\\n', [], {}, {"z": 1, "a": [0.1, 3]}],
        },
    ],
)
def test_json_traits_seal_the_same_voxel_as_a_full_dump(traits: dict[str, Any]) -> None:
    """``json_traits=True`` skips a dump of the traits; the voxel and its checksum are equal."""
    plain = seal(fields(traits=traits))
    fast = seal(fields(traits=traits), json_traits=True)
    assert fast == plain
    assert fast.checksums.metadata_sha256 == plain.checksums.metadata_sha256
    assert fast.checksums.metadata_sha256 == metadata_sha256(fast.metadata())
    assert sealed_json(fast) == sealed_json(plain) == fast.to_json()


def test_a_built_voxel_is_sealed_as_a_full_dump_would() -> None:
    """The builder's traits (dumps of typed event data) hash as the full dump of the voxel."""
    sha = hashlib.sha256(b"<h1>Not found</h1>").hexdigest()
    data: dict[str, Any] = {
        "route": ["package"],
        "notes": [{"stage": "nlp", "note": "skipped: extract failed"}],
        "artifact": {
            "name": "r\u00e9sum\u00e9 \udcff.ejs",
            "size": 18,
            "sha256": sha,
            "payload_ref": f"sha256:{sha}",
            "source": "file:///data/r%C3%A9sum%C3%A9.ejs",
        },
        "classification": {
            "label": "txt",
            "group": "text",
            "mime": "text/plain",
            "score": 0.6527196764945984,
            "is_text": True,
            "description": "Generic text document",
            "dl_label": "handlebars",
            "overwrite_reason": "low_confidence",
            "model": "standard_v3_3",
            "latency_ms": 441.124,
        },
        "extract": {
            "text_ref": f"sha256:{sha}",
            "text_bytes": 18,
            "chars": 18,
            "content": "prose",
            "metadata": {"authors": ["Zoë"], "title": "Not found"},
            "method": "plain",
            "library": "charset-normalizer",
            "library_version": "3.5.3",
            "encoding": "utf-8",
            "duration_ms": 24.479,
        },
        "inference": {
            "model": "text_classifier",
            "version": "2.0.0",
            "top_k": [{"label": "changelog", "score": 0.505428}, {"label": "x", "score": 1.1e-05}],
            "inference_ms": 0.4732,
            "batch_size": 2,
            "confident": False,
            "threshold": 0.91,
        },
        "nlp": {
            "version": "1.1",
            "doc_id": "01a243cf-5357-729a-bae5-1af228ee7dd0",
            "lang": "de",
            "lang_score": 0.9926,
            "pipeline": "de_core_news_sm 3.8.0",
            "pipeline_lang": "de",
            "entities": [{"text": "Zürich", "label": "LOC", "start": 0, "end": 6}],
            "noun_chunks": [{"text": "found</h1", "start": 8, "end": 17}],
            "sentences": [{"text": "<h1>Not found</h1>", "start": 0, "end": 18}],
            "confidence": 0.9926,
            "chars": 18,
            "truncated": False,
            "duration_ms": 22.086,
        },
    }
    event = CloudEvent.from_dict(
        {
            "specversion": "1.0",
            "id": "01a243cf-71fe-72c5-93d6-f546acc75e8d",
            "source": "urn:thunderline:stage:infer",
            "type": "system.ml.inference.completed",
            "time": "2026-12-05T01:26:38.328241Z",
            "data": data,
            "correlationid": "01a243cf-4c6f-74f7-a3dc-c5cca0fe2cba",
            "causationid": "01a243cf-5e63-7356-83ac-f921fe5f8033",
        }
    )
    voxel = VoxelBuilder().build(event)
    assert {"classification", "extract", "nlp", "inference", "artifact", "skipped"} <= set(
        voxel.traits
    )
    assert voxel.checksums.metadata_sha256 == metadata_sha256(voxel.metadata())
    assert sealed_json(voxel) == voxel.to_json()
