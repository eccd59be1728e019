"""Hard links into the ingest root: ``ln /etc/shadow inbox/x.txt`` then ``ingest``.

A hard link is not a symlink: the name inside the root *is* the secret file, so no path check
can tell. A regular file with more than one link is refused by default (DLQ ``hard_link``,
counted in ``thunderline_dlq_total``); ``TL_ALLOW_HARDLINKS`` opts in. Plain case and race (a
thread that keeps replacing inputs by a hard link to the secret and back).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.classify._races import Replacement, Swapper, fast_switching, ingest  # noqa: F401

from thunderline.classify import iter_candidates
from thunderline.config import Settings
from thunderline.journal import Journal
from thunderline.obs import metrics
from thunderline.report import RunReport
from thunderline.voxel.store import VoxelStore

SECRET = b"root:$6$the-secret-hash:19000:0:99999:7:::\n"


def _refused() -> float:
    return float(metrics.DLQ_TOTAL.labels("classify", "hard_link")._value.get())


async def _ingest(settings: Settings, root: Path) -> RunReport:
    return await ingest(settings, iter_candidates([root]))


def _stored(settings: Settings) -> set[str]:
    return {p.name for p in (settings.home / "objects" / "sha256").rglob("*") if p.is_file()}


async def test_a_hard_link_to_a_secret_is_dead_lettered_not_stored(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    os.link(secret, root / "x.txt")
    (root / "plain.txt").write_text("an ordinary file")
    settings = make_settings()
    before = _refused()
    report = await _ingest(settings, root)
    by_name = {Path(r.path or "").name: r for r in report.records}
    assert by_name["plain.txt"].outcome == "ok"
    refused = by_name["x.txt"]
    assert (refused.outcome, refused.stage, refused.reason) == ("dlq", "classify", "hard_link")
    assert refused.error is not None and "TL_ALLOW_HARDLINKS" in refused.error.message
    assert _refused() == before + 1
    assert hashlib.sha256(SECRET).hexdigest() not in _stored(settings)
    journal = Journal(settings.home)
    try:
        (record,) = [e for e in journal.iter_dlq() if e.data["reason"] == "hard_link"]
    finally:
        journal.close()
    assert record.data["error"]["details"]["links"] == 2


async def test_hard_links_are_ingested_when_allowed(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (tmp_path / "shared.txt").write_text("a file with two names")
    os.link(tmp_path / "shared.txt", root / "x.txt")
    settings = make_settings(allow_hardlinks=True)
    report = await _ingest(settings, root)
    (record,) = report.records
    assert record.outcome == "ok" and record.voxel_id is not None
    with VoxelStore(settings) as voxels:
        assert voxels.read_payload(record.voxel_id) == b"a file with two names"


def _link_in(secret: Path, originals: dict[str, bytes]) -> Replacement:
    def replace(rng: random.Random, tmp: Path, name: str) -> None:
        if rng.random() < 0.5:
            os.link(secret, tmp)
        else:
            tmp.write_bytes(originals[name])

    return replace


@pytest.mark.usefixtures("fast_switching")
async def test_inputs_swapped_for_hard_links_in_a_loop_store_no_secret(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    root, staging = tmp_path / "in", tmp_path / "staging"
    root.mkdir()
    staging.mkdir()
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    originals = {f"f{i:03d}.bin": os.urandom(100 + i) for i in range(40)}
    for name, data in originals.items():
        (root / name).write_bytes(data)
    good = {hashlib.sha256(d).hexdigest(): name for name, d in originals.items()}
    settings = make_settings(stage_timeout_s=10.0, shutdown_timeout_s=10.0)
    swapper = Swapper(root, staging, originals, _link_in(secret, originals), seed=11)
    swapper.start()
    try:
        reports = [await ingest(settings, iter_candidates([root])) for _ in range(4)]
    finally:
        swapper.restore()
    assert swapper.swaps > 50, "the swapper did not get to run"
    assert hashlib.sha256(SECRET).hexdigest() not in _stored(settings)
    assert _stored(settings) <= set(good)
    with VoxelStore(settings) as voxels:
        for record in (r for report in reports for r in report.records):
            name = Path(record.path or "").name
            if record.outcome == "ok":
                assert record.voxel_id is not None
                assert good[voxels.get(record.voxel_id).payload_sha256] == name
            else:
                assert record.reason == "hard_link", (name, record.reason, record.error)
