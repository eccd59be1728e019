"""The package stage through the real engine (and Magika's classify stage before it).

A classified event becomes a stored voxel and ``system.voxel.created``; an archive fans out into
child artifacts whose voxels name the archive's voxel as parent; a zip bomb and a ``../`` member
end as DLQ entries with their reasons and write nothing outside the store.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tests.unit.voxel._helpers import classified_event

from thunderline import names
from thunderline.classify import ClassifyStage, iter_candidates
from thunderline.config import Settings
from thunderline.eventdata import (
    Classified,
    NlpAnalysis,
    NlpProcessed,
    data_of,
    extend,
    typed_event,
)
from thunderline.events import DLQ_VOXEL, NLP_PROCESSED, VOXEL_CREATED, CloudEvent
from thunderline.flow.stage import Stage
from thunderline.nlp.result import Entity
from thunderline.objects import LocalObjectStore
from thunderline.objects.base import ObjectStore
from thunderline.runtime import ingest_event
from thunderline.testing import run_stages
from thunderline.voxel.stage import PackageStage
from thunderline.voxel.store import VoxelStore


async def run(stages: Sequence[Stage], events: Sequence[CloudEvent]) -> list[CloudEvent]:
    return await run_stages(stages, events, timeout_s=120)


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


async def test_classified_event_becomes_a_voxel(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    store = LocalObjectStore(settings.home / "objects")
    nlp = NlpAnalysis(
        doc_id="d1",
        lang="en",
        confidence=0.9,
        entities=[Entity(text="Paris", start=0, end=5, label="GPE")],
    )
    start = classified_event(store, b"Paris in spring.")
    event = typed_event(
        NLP_PROCESSED, extend(data_of(start, Classified), NlpProcessed, nlp=nlp), parent=start
    )
    ends = await run([PackageStage(settings, store)], [event, event])  # delivered twice
    assert [e.type for e in ends] == [VOXEL_CREATED, VOXEL_CREATED]
    first, second = (e.data["voxel"] for e in ends)
    assert first["id"] == second["id"] and [first["created"], second["created"]] == [True, False]
    created = ends[0]
    assert created.correlationid == event.correlationid and created.causationid == event.id
    assert first["correlation_id"] == event.correlationid
    assert first["causation_id"] == event.causationid
    assert created.data["route"] == []
    with VoxelStore(settings, store) as voxels:
        voxel = voxels.get(first["id"])
        assert voxels.count() == 1
        assert voxel.traits["nlp"]["entities"][0]["text"] == "Paris"
        assert voxel.traits["classification"]["label"] == "txt"
        assert voxels.read_payload(voxel) == b"Paris in spring."
        assert first["checksums"] == voxel.checksums.model_dump()


async def test_missing_payload_and_bad_coords_are_dead_lettered(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    store = LocalObjectStore(settings.home / "objects")
    good = classified_event(store, b"fine")
    no_ref = good.derive(
        good.type, {**good.data, "artifact": {**good.data["artifact"], "payload_ref": None}}
    )
    bad_coords = good.derive(good.type, {**good.data, "coords": {"t": 1, "x": 2}})
    ends = await run([PackageStage(settings, store)], [no_ref, bad_coords])
    assert [e.type for e in ends] == [DLQ_VOXEL, DLQ_VOXEL]
    # no payload_ref: not a classified event at all; coords of no known form: not a voxel
    assert [e.data["reason"] for e in ends] == ["malformed_event", "invalid_voxel"]
    assert "artifact.payload_ref" in ends[0].data["error"]["message"]
    assert "coords" in ends[1].data["error"]["message"]


async def _classify_and_package(
    settings: Settings, store: ObjectStore, paths: list[Path]
) -> list[CloudEvent]:
    stages: list[Stage] = [
        ClassifyStage(settings, store, available_stages=["package"]),
        PackageStage(settings, store),
    ]
    return await run(stages, [ingest_event(c) for c in iter_candidates(paths)])


async def test_archive_fans_out_into_child_voxels(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    store = LocalObjectStore(settings.home / "objects")
    inbox = tmp_path / "in"
    inbox.mkdir()
    members = {
        "docs/readme.md": b"# Title\n\nSome markdown text about voxels and lineage.\n",
        "data.json": b'{"a": 1, "b": [1, 2, 3], "c": {"d": "e"}}\n',
        "nested.zip": _zip_bytes({"deep.txt": b"a text file inside a zip inside a zip\n"}),
    }
    (inbox / "bundle.zip").write_bytes(_zip_bytes(members))
    ends = await _classify_and_package(settings, store, [inbox])
    assert all(e.type == VOXEL_CREATED for e in ends), [e.data.get("reason") for e in ends]
    by_name = {e.data["artifact"]["name"]: e for e in ends}
    assert set(by_name) == {"bundle.zip", "docs/readme.md", "data.json", "nested.zip", "deep.txt"}
    archive = by_name["bundle.zip"].data["voxel"]
    assert archive["children"] == 3
    correlation = by_name["bundle.zip"].correlationid
    assert all(e.correlationid == correlation for e in ends)  # one chain from the one ingest
    with VoxelStore(settings, store) as voxels:
        children = {e.child_id for e in voxels.descendants(archive["id"]) if e.depth == 1}
        assert children == {by_name[n].data["voxel"]["id"] for n in members}
        deep = by_name["deep.txt"].data["voxel"]["id"]
        assert voxels.ancestor_ids(deep) == {
            by_name["nested.zip"].data["voxel"]["id"],
            archive["id"],
        }
        readme = voxels.get(by_name["docs/readme.md"].data["voxel"]["id"])
        assert readme.lineage.parent_voxel_ids == (archive["id"],)
        assert readme.source.endswith("bundle.zip!/docs/readme.md")
        assert voxels.read_payload(readme) == members["docs/readme.md"]
        assert readme.coords.model_dump()["position"] == 0


async def test_a_tar_with_a_link_member_is_stored_with_a_note(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    import tarfile

    settings = make_settings()
    store = LocalObjectStore(settings.home / "objects")
    inbox = tmp_path / "in"
    inbox.mkdir()
    with tarfile.open(inbox / "bundle.tar", "w") as tf:
        link = tarfile.TarInfo("shadow")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        tf.addfile(link)
        data = b'{"member": "regular"}\n'
        info = tarfile.TarInfo("data.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    ends = await _classify_and_package(settings, store, [inbox])
    assert all(e.type == VOXEL_CREATED for e in ends), [e.data.get("reason") for e in ends]
    by_name = {e.data["artifact"]["name"]: e for e in ends}
    assert set(by_name) == {"bundle.tar", "data.json"}
    archive = by_name["bundle.tar"]
    assert archive.data["voxel"]["children"] == 1
    (note,) = archive.data["notes"]
    assert note["stage"] == "package" and "shadow" in note["note"] and "link" in note["note"]


async def test_tar_members_whose_names_are_not_utf8_are_stored(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Names as in CPython's ``ustar/umlauts-...`` (Latin-1 bytes in a ustar header) and
    ``pax/hdrcharset-...`` (raw bytes, ``hdrcharset=BINARY``): stored like any other member,
    the exact name in the voxel's artifact trait, a bytes-safe one in its ``source``."""
    import tarfile

    settings = make_settings()
    store = LocalObjectStore(settings.home / "objects")
    inbox = tmp_path / "in"
    inbox.mkdir()
    ustar_name = "umlauts-\udcc4\udcd6\udcdc\udce4\udcf6\udcfc\udcdf.txt"  # Latin-1 bytes
    pax_name = "hdrcharset-\udce4\udcf6\udcfc\udcdf.txt"
    for fmt, name in ((tarfile.USTAR_FORMAT, ustar_name), (tarfile.PAX_FORMAT, pax_name)):
        data = f"a member of a {fmt} archive\n".encode()
        with tarfile.open(inbox / f"{fmt}.tar", "w", format=fmt, errors="surrogateescape") as tf:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = (inbox / f"{tarfile.PAX_FORMAT}.tar").read_bytes()
    assert b"hdrcharset=BINARY" in raw and b"\xe4\xf6\xfc\xdf" in raw
    ends = await _classify_and_package(settings, store, [inbox])
    assert all(e.type == VOXEL_CREATED for e in ends), [e.data.get("error") for e in ends]
    by_name = {e.data["artifact"]["name"]: e for e in ends}
    assert {ustar_name, pax_name} <= set(by_name)
    with VoxelStore(settings, store) as voxels:
        for name in (ustar_name, pax_name):
            voxel = voxels.get(by_name[name].data["voxel"]["id"])
            assert voxel.traits["artifact"]["name"] == name  # exact: os.fsencode gives the bytes
            assert voxel.source.endswith(".tar!/" + names.wire_text(name))
            voxel.source.encode("utf-8")  # strict UTF-8
            assert voxels.read_payload(voxel).startswith(b"a member of a ")
        assert all(r.ok for r in voxels.verify_all())


async def test_an_archive_nested_past_the_depth_limit_is_stored_with_a_note(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Zips nested five deep: the four outer levels are expanded, the fifth archive is stored
    as it is, and its record says so (no silent skip)."""
    from thunderline.report import record_from_event
    from thunderline.voxel.stage import MAX_ARCHIVE_DEPTH

    settings = make_settings()
    store = LocalObjectStore(settings.home / "objects")
    inbox = tmp_path / "in"
    inbox.mkdir()
    data = _zip_bytes({"core.txt": b"the text at the very bottom of the nest\n"})
    for level in range(MAX_ARCHIVE_DEPTH, 0, -1):
        data = _zip_bytes({f"level{level}.zip": data, f"note{level}.txt": b"a sibling\n"})
    (inbox / "level0.zip").write_bytes(data)
    ends = await _classify_and_package(settings, store, [inbox])
    assert all(e.type == VOXEL_CREATED for e in ends), [e.data.get("reason") for e in ends]
    by_name = {e.data["artifact"]["name"]: e for e in ends}
    deepest = f"level{MAX_ARCHIVE_DEPTH}.zip"
    assert "core.txt" not in by_name  # never expanded...
    (note,) = by_name[deepest].data["notes"]  # ...and the event says why
    assert note["stage"] == "package"
    assert f"nested {MAX_ARCHIVE_DEPTH} levels deep" in note["note"]
    assert by_name[deepest].data["voxel"]["children"] == 0
    record = record_from_event(by_name[deepest])
    assert record.notes == [f"package: {note['note']}"]
    assert not by_name[f"level{MAX_ARCHIVE_DEPTH - 1}.zip"].data.get("notes")


async def test_zip_bomb_and_dotdot_member_end_in_the_dlq(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    store = LocalObjectStore(settings.home / "objects")
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "bomb.zip").write_bytes(_zip_bytes({"zeros.bin": bytes(8 * 1024 * 1024)}))
    (inbox / "evil.zip").write_bytes(_zip_bytes({"ok.txt": b"ok", "../../escaped.txt": b"pwned"}))
    before = {p for p in tmp_path.rglob("*")}
    ends = await _classify_and_package(settings, store, [inbox])
    assert sorted((e.type, e.data["reason"]) for e in ends) == [
        (DLQ_VOXEL, "archive_bomb"),
        (DLQ_VOXEL, "archive_unsafe_member"),
    ]
    for record in ends:
        assert record.data["original"]["data"]["artifact"]["name"] in {"bomb.zip", "evil.zip"}
        assert record.data["error"]["message"]
    with VoxelStore(settings, store) as voxels:
        assert voxels.count() == 0
    created = {p for p in tmp_path.rglob("*")} - before
    home = settings.home.resolve()
    outside = [p for p in created if not p.resolve().is_relative_to(home)]
    assert outside == []
    assert not any(p.name == "escaped.txt" for p in tmp_path.parent.rglob("escaped.txt"))


@pytest.mark.services
async def test_archive_flow_on_postgresql_and_s3(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    pg_schema_url: str,
    s3_url: str,
    s3_endpoint: str,
) -> None:
    from thunderline.objects.factory import open_object_store

    settings = make_settings(
        database_url=pg_schema_url,
        object_store_url=s3_url,
        s3_endpoint_url=s3_endpoint,
        inline_payload_max_bytes=64,
    )
    store = open_object_store(settings)
    inbox = tmp_path / "in"
    inbox.mkdir()
    text = b"A longer text member that goes to the object store, not inline.\n" * 4
    (inbox / "pack.zip").write_bytes(_zip_bytes({"long.txt": text, "tiny.txt": b"tiny"}))
    ends = await _classify_and_package(settings, store, [inbox])
    assert sorted(e.data["artifact"]["name"] for e in ends) == ["long.txt", "pack.zip", "tiny.txt"]
    assert {e.type for e in ends} == {VOXEL_CREATED}
    by_name = {e.data["artifact"]["name"]: e.data["voxel"] for e in ends}
    with VoxelStore(settings, store) as voxels:
        assert voxels.engine.dialect.name == "postgresql"
        long = voxels.get(by_name["long.txt"]["id"])
        assert voxels.read_payload(long) == text
        assert voxels.parents(long.id) == [by_name["pack.zip"]["id"]]
        assert all(r.ok for r in voxels.verify_all())
