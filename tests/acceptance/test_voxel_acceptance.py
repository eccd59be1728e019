"""Roadmap 4.4 acceptance: ingest -> Magika -> (optional ONNX) -> voxel -> stored, end to end.

Runs the project's own wiring (:class:`thunderline.runtime.Runtime`) over real files: every
artifact ends as a stored voxel, ``system.voxel.created`` carries an intact correlation chain,
each payload comes back with the right SHA-256, and a payload corrupted on disk is caught on
read (and by ``thunderline voxels verify``).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thunderline.classify import iter_candidates
from thunderline.config import Settings
from thunderline.errors import ChecksumMismatch
from thunderline.events import VOXEL_CREATED, CloudEvent
from thunderline.ids import short
from thunderline.journal import Journal
from thunderline.runtime import Runtime
from thunderline.voxel.cli import voxels_app
from thunderline.voxel.store import VoxelStore


def _inputs(root: Path) -> dict[str, bytes]:
    files = {
        "notes.txt": b"Thunderline turns raw files into trustworthy, queryable results.\n" * 3,
        "table.csv": b"name,score\nada,3\ngrace,5\nlinus,4\n",
        "page.html": b"<html><body><h1>Hello</h1><p>A small page.</p></body></html>\n",
        "blob.bin": os.urandom(3000),  # above the inline limit below: lives in the object store
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner/readme.md", "# Inner\n\nA member of the archive.\n")
    files["bundle.zip"] = buf.getvalue()
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


async def test_ingest_to_verified_voxels(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(inline_payload_max_bytes=2048)
    inbox = tmp_path / "in"
    inbox.mkdir()
    files = _inputs(inbox)
    ends: list[CloudEvent] = []
    async with Runtime(settings, on_terminal=ends.append) as runtime:
        assert "package" in runtime.stage_names
        submitted = await runtime.submit_files(iter_candidates([inbox]))
        await runtime.wait_idle(120)
    assert submitted == len(files)
    assert [e for e in ends if e.type != VOXEL_CREATED] == []
    by_name = {e.data["artifact"]["name"]: e for e in ends}
    assert set(by_name) == {*files, "inner/readme.md"}

    journal_ids = {e.id for e in Journal(settings.home).iter_events()}
    with VoxelStore(settings) as voxels:
        for name, created in by_name.items():
            summary = created.data["voxel"]
            voxel = voxels.get(summary["id"])
            # the correlation chain: voxel.created <- classified <- ingest (same correlation id)
            assert created.correlationid == voxel.correlation_id
            assert voxel.causation_id in journal_ids
            assert created.causationid == voxel.event_id
            assert voxel.correlation_id in voxel.lineage.parent_event_ids
            data = voxels.read_payload(voxel)
            assert hashlib.sha256(data).hexdigest() == voxel.payload_sha256
            if name in files:
                assert data == files[name]
                assert voxel.source == (inbox / name).as_uri()
        archive_id = by_name["bundle.zip"].data["voxel"]["id"]
        member = voxels.get(by_name["inner/readme.md"].data["voxel"]["id"])
        assert member.lineage.parent_voxel_ids == (archive_id,)
        assert by_name["inner/readme.md"].correlationid == by_name["bundle.zip"].correlationid

        # corrupt the large payload on disk: the read is refused, verify reports it
        blob = voxels.get(by_name["blob.bin"].data["voxel"]["id"])
        path = voxels.objects.local_path(blob.payload_sha256)
        assert path is not None
        path.chmod(0o644)
        path.write_bytes(b"tampered" + files["blob.bin"][8:])
        with pytest.raises(ChecksumMismatch):
            voxels.read_payload(blob)

    result = CliRunner().invoke(
        voxels_app, ["verify", "--all"], env={"TL_HOME": str(settings.home), "COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert short(blob.id) in result.output and "checksum_mismatch" in result.output
