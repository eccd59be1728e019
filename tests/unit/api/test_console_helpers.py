"""Pure helpers of the console: entity highlighting, file names."""

from __future__ import annotations

import pytest

from thunderline.api.console import highlight, human_bytes
from thunderline.api.errors import ApiError
from thunderline.api.upload import check_filename


def test_highlight_uses_offsets_when_they_match() -> None:
    text = "Guido van Rossum lives in Amsterdam."
    entities = [
        {"text": "Amsterdam", "start": 26, "end": 35, "label": "GPE"},
        {"text": "Guido van Rossum", "start": 0, "end": 16, "label": "PERSON"},
    ]
    assert highlight(text, entities) == [
        ("Guido van Rossum", "PERSON"),
        (" lives in ", None),
        ("Amsterdam", "GPE"),
        (".", None),
    ]


def test_highlight_falls_back_to_search_and_never_overlaps() -> None:
    text = "ABC and ABC again"
    entities = [
        {"text": "ABC", "start": 100, "end": 103, "label": "ORG"},  # offsets of another text
        {"text": "ABC", "start": 101, "end": 104, "label": "ORG"},
        {"text": "missing", "start": 0, "end": 7, "label": "X"},
    ]
    segments = highlight(text, entities)
    assert "".join(piece for piece, _ in segments) == text
    assert [p for p, label in segments if label] == ["ABC", "ABC"]


@pytest.mark.parametrize(
    "raw", [b"a/b", b"..", b".", b"", b"tab\tname", b"\xff\xfe", b"x" * 256, b"c:\\evil"]
)
def test_bad_filenames_are_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        check_filename(raw)
    assert info.value.status == 400 and info.value.code == "invalid_filename"


def test_good_filenames_pass() -> None:
    assert check_filename("IDLE crédits.txt".encode()) == "IDLE crédits.txt"
    assert check_filename(b"..hidden") == "..hidden"


def test_human_bytes() -> None:
    assert human_bytes(1024**3) == "1.0 GiB"
    assert human_bytes(512) == "512 bytes"


def test_tracker_counts_archive_members_from_the_archive_voxel_on() -> None:
    from thunderline.api.live import IngestTracker
    from thunderline.events import INGEST_RECEIVED, VOXEL_CREATED, new_event

    tracker = IngestTracker()
    ingest = new_event(INGEST_RECEIVED, {"artifact": {"name": "bundle.zip"}})
    tracker(ingest)
    archive = ingest.derive(VOXEL_CREATED, {"voxel": {"id": "a" * 36, "children": 2}})
    tracker(archive)
    progress = tracker.get(ingest.correlationid)
    assert progress is not None and progress.outcome == "pending"  # members not ended yet
    for n in range(2):
        member = {"artifact": {"name": f"m{n}"}, "parent": {"voxel_id": "a" * 36, "index": n}}
        tracker(archive.derive(INGEST_RECEIVED, member))
    assert progress.open == 2
    tracker(archive.derive(VOXEL_CREATED, {"voxel": {"id": "b" * 36, "children": 0}}))
    assert progress.outcome == "pending"
    tracker(archive.derive("system.dlq.classify_failed", {"stage": "classify", "reason": "x"}))
    assert progress.outcome == "partial" and progress.voxel_ids == ["a" * 36, "b" * 36]


def test_a_degraded_voxel_stays_pending_until_its_dlq_record_is_recorded() -> None:
    """The dead letter reaches the tracker when the collector has recorded it (EventTap holds
    it back), which can be after the voxel that names it: the ingest is not final before."""
    from thunderline.api.live import EventHub, EventTap, IngestTracker
    from thunderline.events import INGEST_RECEIVED, VOXEL_CREATED, new_event

    class _Journal:
        def record(self, event: object, encoded: bytes | None = None) -> None:
            pass

    hub = EventHub()
    tracker = IngestTracker()
    hub.add_listener(tracker)
    tap = EventTap(_Journal(), hub)  # type: ignore[arg-type]
    ingest = new_event(INGEST_RECEIVED, {"artifact": {"name": "cut.pdf"}})
    tap.record(ingest)
    record = ingest.derive(
        "system.dlq.extract_failed", {"stage": "extract", "reason": "x", "voxel_id": "a" * 36}
    )
    voxel = ingest.derive(
        VOXEL_CREATED,
        {"voxel": {"id": "a" * 36}, "failures": [{"stage": "extract", "dlq_id": record.id}]},
    )
    tap.record(voxel)
    tap.record(record)  # published: not an outcome yet
    progress = tracker.get(ingest.correlationid)
    assert progress is not None and progress.outcome == "pending" and progress.dlq == []
    tap.recorded(voxel)  # only dead letters are published from the collector
    assert progress.outcome == "pending"
    tap.recorded(record)
    assert progress.outcome == "degraded" and [d["id"] for d in progress.dlq] == [record.id]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/dlq", "/dlq"),
        ("/voxels?q=a", "/voxels?q=a"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("/ok\r\nSet-Cookie: x", "/"),
    ],
)
def test_login_next_stays_on_this_site(target: str, expected: str) -> None:
    from thunderline.api.console import _safe_next

    assert _safe_next(target) == expected


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"%41%42.txt", "AB.txt"),
        (b"IDLE%20cr%C3%A9dits.txt", "IDLE crédits.txt"),
        (b"a%22b.txt", 'a"b.txt'),  # how browsers send a quote in a file name
        (b"100%.txt", "100%.txt"),  # no escape: kept as sent
        ("crédits.txt".encode(), "crédits.txt"),
    ],
)
def test_percent_encoded_names_are_decoded(raw: bytes, name: str) -> None:
    assert check_filename(raw) == name


@pytest.mark.parametrize("raw", [b"a%2Fb.txt", b"%2E%2E", b"bad-%FF%FE.txt", b"nul%00.txt"])
def test_decoded_names_are_checked_like_any_other(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        check_filename(raw)
    assert info.value.status == 400 and info.value.code == "invalid_filename"


def test_rfc5987_extended_filename() -> None:
    from thunderline.api.upload import extended_filename

    header = b'form-data; name="file"; filename="x.txt"; filename*=UTF-8\'\'%E2%82%AC%20rates.txt'
    assert extended_filename(header) == "€ rates.txt".encode()
    latin = b"form-data; name=file; filename*=iso-8859-1'fr'cr%E9dits.txt"
    assert extended_filename(latin) == "crédits.txt".encode()
    assert extended_filename(b'form-data; name="file"; filename="a.txt"') is None
    for bad in (b"form-data; filename*=UTF-16''%FF%FE", b"form-data; filename*=plain.txt"):
        with pytest.raises(ApiError) as info:
            extended_filename(bad)
        assert info.value.code == "invalid_filename"
