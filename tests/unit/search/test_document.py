"""What the index holds for a voxel: fields from its traits, a hash that changes with them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from thunderline.search.document import content_hash, index_doc
from thunderline.voxel.schema import Voxel, seal


def _voxel(traits: dict[str, Any]) -> Voxel:
    return seal(
        {
            "id": "01a241a0-0000-7000-8000-000000000001",
            "ts": datetime(2026, 1, 2, tzinfo=UTC),
            "source": "file:///in/notes.txt",
            "coords": {"t": 0.0, "channel": "text", "position": 0},
            "traits": traits,
            "payload_ref": "sha256:" + "a" * 64,
            "payload_size": 12,
            "checksums": {"payload_sha256": "a" * 64},
            "correlation_id": "c",
            "event_id": "e",
        }
    )


TRAITS = {
    "artifact": {"name": "notes.txt"},
    "classification": {"label": "txt", "group": "text"},
    "nlp": {
        "lang": "en",
        "entities": [
            {"text": "Guido  van Rossum", "label": "PERSON"},
            {"text": "CWI", "label": "ORG"},
            {"text": "CWI", "label": "ORG"},
        ],
    },
    "inference": {"model": "text_classifier", "top_k": [{"label": "licence", "score": 0.9}]},
}


def test_fields_come_from_the_traits() -> None:
    doc = index_doc(_voxel(TRAITS), "Python was created by Guido.", max_chars=1000)
    assert (doc.name, doc.label, doc.group, doc.lang, doc.kind) == (
        "notes.txt",
        "txt",
        "text",
        "en",
        "licence",
    )
    assert doc.entities == (("Guido van Rossum", "PERSON"), ("CWI", "ORG"))
    assert ("entity", "guido van rossum", "Guido van Rossum") in doc.terms()
    assert ("etype", "org", "ORG") in doc.terms()
    assert ("model", "text_classifier=licence", "text_classifier=licence") in doc.terms()


def test_text_is_cut_and_hash_follows_content() -> None:
    voxel = _voxel(TRAITS)
    short = index_doc(voxel, "x" * 50, max_chars=10)
    assert short.body == "x" * 10
    same = index_doc(voxel, "x" * 60, max_chars=10)
    assert same.content_sha256 == short.content_sha256  # beyond the cut: not indexed
    other = index_doc(voxel, "y" * 50, max_chars=10)
    assert other.content_sha256 != short.content_sha256
    assert index_doc(voxel, None, max_chars=10).body == ""
    assert index_doc(voxel, "a\x00b", max_chars=10).body == "a b"


def test_numbers_dates_and_amounts_stay_out_of_the_entity_facet() -> None:
    traits = {
        **TRAITS,
        "nlp": {
            "lang": "en",
            "entities": [
                {"text": "CWI", "label": "ORG"},
                {"text": "2019", "label": "DATE"},
                {"text": "three", "label": "CARDINAL"},
                {"text": "1,250.00 EUR", "label": "MONEY"},
            ],
        },
    }
    terms = {(f, v) for f, v, _ in index_doc(_voxel(traits), None, max_chars=10).terms()}
    assert ("entity", "cwi") in terms
    assert {("entnum", "2019"), ("entnum", "three"), ("entnum", "1,250.00 eur")} <= terms
    assert not any(f == "entity" and v in {"2019", "three"} for f, v in terms)
    assert {("etype", "date"), ("etype", "cardinal")} <= terms  # the types stay facets


def test_label_and_top_model_read_as_before() -> None:
    """The label is ``voxel.label`` (read from the same trait), the model its top label only."""
    traits = {
        **TRAITS,
        "classification": {"label": 7, "group": "text"},
        "inference": {"model": "m", "top_k": [{"label": "a"}, {"label": "b"}]},
    }
    voxel = _voxel(traits)
    doc = index_doc(voxel, None, max_chars=10)
    assert doc.label == voxel.label == "7"
    assert doc.models == (("m", "a"),)
    for top_k in ([], None, {"label": "x"}, ["x"], [{"score": 1.0}]):
        odd = index_doc(
            _voxel({**traits, "inference": {"model": "m", "top_k": top_k}}), None, max_chars=10
        )
        assert odd.models == () and odd.kind is None
    bare = index_doc(_voxel({"artifact": {"name": "a.bin"}}), None, max_chars=10)
    assert (bare.label, bare.group, bare.lang, bare.body) == (None, None, None, "")
    assert bare.content_sha256 == content_hash(bare)
