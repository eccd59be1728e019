"""Objects embedded in office files become child voxels with lineage, through the running
pipeline (issue 18 item 4): the real documents of tests/fixtures/legacy/*-with-* (saved by
LibreOffice, scripts/make_legacy_fixtures.py --embedded) each yield their embedded object as a
child artifact, classified, extracted and stored like an archive member, and the member
limit applies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from thunderline.classify.walk import iter_candidates
from thunderline.config import Settings
from thunderline.eventdata import DlqRecord, data_of
from thunderline.events import VOXEL_CREATED, CloudEvent
from thunderline.objects.factory import open_object_store
from thunderline.runtime import Runtime
from thunderline.voxel.store import VoxelStore

pytestmark = pytest.mark.timeout(600)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "legacy"
#: host -> (host's extractor, child label, the child's extractor, text of the child)
HOSTS = {
    "memo-with-sheet.doc": ("doc", "xls", "xls", "Q1 | Lisbon | 125000"),
    "budget-with-minutes.xls": ("xls", "doc", "doc", "the budget for Coimbra was approved"),
    "talk-with-table.ppt": ("ppt", "xls", "xls", "Braga | 412"),
    "memo-with-sheet.odt": ("odf", "ods", "odf", "Q1 | Lisbon | 125000"),
    "memo-with-sheet.docx": ("docx", "xlsx", "xlsx", "Q1 | Lisbon | 125000"),
}


async def _run(settings: Settings, folder: Path) -> list[CloudEvent]:
    ends: list[CloudEvent] = []
    async with Runtime(settings, on_terminal=ends.append) as runtime:
        await runtime.submit_files(iter_candidates([folder]))
        await runtime.wait_idle(300)
    return ends


async def test_each_embedded_object_is_a_child_voxel_with_lineage(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in HOSTS:
        shutil.copyfile(FIXTURES / name, folder / name)
    settings = make_settings(extract_workers=1, spacy_workers=1)
    ends = await _run(settings, folder)
    dlq = [e for e in ends if e.type != VOXEL_CREATED]
    assert not dlq, [data_of(e, DlqRecord).error.message for e in dlq]
    store = VoxelStore(settings, open_object_store(settings))
    try:
        voxels = [store.get(i) for i in store.iter_ids()]
        assert len(voxels) == 2 * len(HOSTS)  # every host and its one object
        for name, (label, child_label, method, text) in HOSTS.items():
            [host] = [v for v in voxels if v.source.endswith(f"/{name}")]
            # Magika names the .doc holding a workbook `xls` and the .xls holding a document
            # `doc`: the extractor reads what the compound file is (and says so)
            assert host.traits["extract"]["method"] == label, name
            [edge] = store.descendants(host.id)
            child = store.get(edge.child_id)
            assert child.label == child_label, name
            assert child.source.startswith(host.source + "!/"), child.source
            assert [a.parent_id for a in store.ancestors(child.id)] == [host.id]
            assert child.traits["extract"]["method"] == method
            child_text = store.read_text(child)
            assert child_text is not None and text in child_text, (name, child_text)
            host_text = store.read_text(host)
            assert host_text is not None and text not in host_text
            [part] = host.traits["extract"]["parts"]
            assert part["kind"] == "embedded" and part["sha256"] == child.payload_sha256
    finally:
        store.close()


async def test_the_member_limit_applies_to_embedded_objects(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(FIXTURES / "talk-with-table.ppt", folder / "talk-with-table.ppt")
    settings = make_settings(extract_workers=1, spacy_workers=1, extract_max_parts=0)
    ends = await _run(settings, folder)
    assert [e.type for e in ends] == [VOXEL_CREATED]
    store = VoxelStore(settings, open_object_store(settings))
    try:
        [voxel] = [store.get(i) for i in store.iter_ids()]
        assert voxel.traits["extract"]["parts"] == []
        assert any("more than 0 embedded parts" in w for w in voxel.traits["extract"]["warnings"])
    finally:
        store.close()
