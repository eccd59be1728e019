"""The extract stage in the running pipeline: text stored once beside the payload, sealed on
the voxel, verified, read by NLP instead of re-extracting, printed by ``voxels text``;
embedded parts become child voxels; a crashing parser costs one DLQ record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thunderline.classify.walk import iter_candidates
from thunderline.config import Settings
from thunderline.eventdata import DlqRecord, data_of
from thunderline.events import DLQ_EXTRACT, VOXEL_CREATED, CloudEvent
from thunderline.extract import registry
from thunderline.extract.base import Extractor
from thunderline.extract.pool import ExtractPool, PoolConfig
from thunderline.extract.stage import ExtractStage
from thunderline.objects.factory import open_object_store
from thunderline.runtime import Runtime, build_stages
from thunderline.testing.corpus import build_corpus
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import VoxelStore, text_sha256

pytestmark = pytest.mark.timeout(600)


async def _run(settings: Settings, folder: Path, **kwargs: object) -> list[CloudEvent]:
    ends: list[CloudEvent] = []
    async with Runtime(settings, on_terminal=ends.append, **kwargs) as runtime:  # type: ignore[arg-type]
        await runtime.submit_files(iter_candidates([folder]))
        await runtime.wait_idle(300)
    return ends


def _by_name(store: VoxelStore) -> dict[str, Voxel]:
    out: dict[str, Voxel] = {}
    for voxel_id in store.iter_ids():
        voxel = store.get(voxel_id)
        out[str(voxel.traits["artifact"]["name"])] = voxel
    return out


async def test_corpus_through_the_pipeline(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    samples = build_corpus(folder)
    settings = make_settings(extract_workers=1, spacy_workers=1)
    ends = await _run(settings, folder)
    dlq = [e for e in ends if e.type != VOXEL_CREATED]
    assert not dlq, [data_of(e, DlqRecord).error.message for e in dlq]

    store = VoxelStore(settings, open_object_store(settings))
    try:
        voxels = _by_name(store)
        for sample in samples:
            voxel = voxels[sample.name]
            extract = voxel.traits.get("extract")
            assert extract is not None, sample.name
            text = store.read_text(voxel)
            if sample.phrase is not None:
                assert text is not None and sample.phrase in text, sample.name
            for key, expected in sample.meta.items():
                got = extract["metadata"].get(key)
                if key in ("created", "modified"):
                    continue
                assert got == expected, (sample.name, key, got)
        # Markdown: headings are structure; NLP saw no '##' (no MONEY entity on it)
        notes = voxels["notes.md"]
        nlp = notes.traits["nlp"]
        assert all("#" not in entity["text"] for entity in nlp["entities"])
        assert nlp["extraction"]["method"] == "markdown"
        assert [h["text"] for h in notes.traits["extract"]["headings"]] == ["Contents", "Radium"]
        # configuration is stored with its text but skips NER
        assert "nlp" not in voxels["settings.ini"].traits
        assert store.read_text(voxels["settings.ini"]) is not None
        # e-mail attachments are child voxels of the message
        mail = voxels["samples.eml"]
        children = {e.child_id for e in store.descendants(mail.id)}
        names = {str(store.get(c).traits["artifact"]["name"]) for c in children}
        assert names == {"order.txt", "report.docx"}
        assert voxels["order.txt"].traits["extract"]["text_ref"] is not None
        # a file without text does not reach NLP
        assert "nlp" not in voxels["photo.jpg"].traits
        # verify covers the stored text
        results = list(store.verify_all())
        assert all(r.ok for r in results), [r for r in results if not r.ok]
        sha = text_sha256(notes)
        assert sha is not None
        path = store.objects.local_path(sha)
        assert path is not None
        path.chmod(0o644)
        path.write_bytes(b"tampered")
        bad = store.verify(notes.id)
        assert not bad.ok and bad.reason == "checksum_mismatch" and "extracted text" in bad.detail
    finally:
        store.close()


def test_voxels_text_prints_the_extracted_text(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from thunderline.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "doc.md").write_text("# Title\n\nMarie Curie lived in Paris.\n", encoding="utf-8")
    settings = make_settings(extract_workers=1, spacy_workers=1)
    asyncio.run(_run(settings, folder))
    store = VoxelStore(settings, open_object_store(settings))
    try:
        [voxel_id] = list(store.iter_ids())
    finally:
        store.close()
    monkeypatch.setenv("TL_HOME", str(settings.home))
    result = CliRunner().invoke(app, ["voxels", "text", voxel_id[:13]])
    assert result.exit_code == 0, result.output
    assert result.output == "Title\nMarie Curie lived in Paris.\n"


async def test_a_crashing_parser_costs_one_dlq_record(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "letter.rtf").write_text("{\\rtf1\\ansi Hello world\\par}", encoding="utf-8")
    (folder / "note.txt").write_text("Marie Curie lived in Paris.", encoding="utf-8")
    original = registry.extractor_for("rtf")
    crash = Extractor("crash", ("rtf",), "stdlib", "text", "prose", original.run)
    registry.register(crash)  # the parent sends rtf files to the worker's "crash" extractor
    try:
        settings = make_settings(extract_workers=1, spacy_workers=1)
        store = open_object_store(settings)
        pool = ExtractPool(
            PoolConfig(workers=1, memory_mb=1024, plugins=("thunderline.testing.extract_faults",))
        )
        stages = [
            ExtractStage(settings, store, pool=pool) if s.name == "extract" else s
            for s in build_stages(settings, store)
        ]
        try:
            ends = await _run(settings, folder, stages=stages)
        finally:
            await pool.close()
    finally:
        registry.register(original)
    dlq = [e for e in ends if e.type == DLQ_EXTRACT]
    assert len(dlq) == 1
    record = data_of(dlq[0], DlqRecord)
    assert record.stage == "extract" and record.reason == "crash"
    assert "SIGSEGV" in record.error.message
    assert json.dumps(record.error.details)
    voxels = [e for e in ends if e.type == VOXEL_CREATED]
    assert len(voxels) == 1


async def test_containers_yield_their_members_through_the_pipeline(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from thunderline.testing.corpus import deb_bytes, tar_bytes

    folder = tmp_path / "in"
    folder.mkdir()
    members = [("doc/readme.txt", b"Marie Curie was born in Warsaw.\n")]
    (folder / "curie.deb").write_bytes(deb_bytes(members))
    (folder / "docs.tar.zst").write_bytes(tar_bytes(members, "zst"))
    settings = make_settings(extract_workers=1, spacy_workers=1)
    ends = await _run(settings, folder)
    assert {e.type for e in ends} == {VOXEL_CREATED}
    store = VoxelStore(settings, open_object_store(settings))
    try:
        voxels = {store.get(i).source: store.get(i) for i in store.iter_ids()}
        readmes = [v for s, v in voxels.items() if s.endswith("!/doc/readme.txt")]
        assert len(readmes) == 2  # one through deb -> data.tar.xz, one through tar.zst
        for readme in readmes:
            assert store.read_text(readme) == "Marie Curie was born in Warsaw.\n"
        deep = next(v for v in readmes if "curie.deb" in v.source)
        assert len(store.ancestors(deep.id)) == 2  # data.tar.xz, then the .deb
    finally:
        store.close()


async def test_an_image_of_text_goes_on_to_nlp_with_its_ocr_text(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from PIL import Image, ImageDraw, ImageFont

    folder = tmp_path / "in"
    folder.mkdir()
    image = Image.new("RGB", (900, 120), "white")
    ImageDraw.Draw(image).text(
        (24, 40),
        "Ada Lovelace lived in London.",
        fill="black",
        font=ImageFont.load_default(size=32),
    )
    image.save(folder / "receipt.png")
    settings = make_settings(extract_workers=1, spacy_workers=1)
    ends = await _run(settings, folder)
    assert [e.type for e in ends] == [VOXEL_CREATED]
    store = VoxelStore(settings, open_object_store(settings))
    try:
        [voxel] = list(_by_name(store).values())
        text = store.read_text(voxel)
        assert text is not None and "London" in text
        assert voxel.traits["extract"]["ocr"]["engine"] == "rapidocr"
        assert "nlp" in voxel.traits  # routed on to NLP like any other text
    finally:
        store.close()


async def test_an_outlook_message_yields_its_attached_message_and_its_pdf(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A real .msg (tests/fixtures/legacy/other.msg): its attached Outlook message becomes a
    child .eml voxel, whose PDF attachment becomes a grandchild: lineage two levels down."""
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "legacy" / "other.msg"
    shutil.copyfile(fixture, folder / "other.msg")
    settings = make_settings(extract_workers=1, spacy_workers=1)
    ends = await _run(settings, folder)
    dlq = [e for e in ends if e.type != VOXEL_CREATED]
    assert not dlq, [data_of(e, DlqRecord).error.message for e in dlq]
    store = VoxelStore(settings, open_object_store(settings))
    try:
        voxels = {store.get(i).source: store.get(i) for i in store.iter_ids()}
        top = next(v for s, v in voxels.items() if s.endswith("other.msg"))
        assert top.traits["extract"]["method"] == "msg"
        assert top.traits["extract"]["metadata"]["authors"] == ["Mail Delivery Subsystem"]
        text = store.read_text(top)
        assert text is not None and "The recipients is locked" in text
        children = [store.get(e.child_id) for e in store.descendants(top.id)]
        kinds = {str(c.traits["extract"]["method"]) for c in children if "extract" in c.traits}
        assert {"email", "pdf"} <= kinds, kinds
        pdf = next(c for c in children if c.traits.get("extract", {}).get("method") == "pdf")
        assert len(store.ancestors(pdf.id)) == 2  # the .eml, then the .msg
    finally:
        store.close()
