"""Hostile race: files swapped for symlinks (to a secret outside the root) and FIFOs mid-ingest.

A thread keeps replacing some of the input files -- atomically, with ``os.replace`` -- by a
symlink to a file outside the ingest root, by a FIFO, or by the original bytes again, while the
real pipeline (Magika, object store, voxel store) ingests the folder. Whatever the timing:
nothing outside the root is stored, nothing hangs, and every input ends in exactly one record
(a voxel of its own original bytes, or a DLQ record saying it was a symlink escape or not a
regular file).

With the old check-then-open admission this test stores the secret or hangs on a FIFO.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.classify._races import Replacement, Swapper, fast_switching  # noqa: F401

from thunderline.classify import iter_candidates
from thunderline.config import Settings
from thunderline.report import RunReport
from thunderline.runtime import Runtime

FILES = 48
VICTIMS = 6  # the files the thread keeps swapping (often: the race window is microseconds)
PASSES = 8  # the folder is submitted this many times in one run


def _swap_in(secret: Path, originals: dict[str, bytes]) -> Replacement:
    def replace(rng: random.Random, tmp: Path, name: str) -> None:
        kind = rng.choice(("link", "fifo", "file"))
        if kind == "link":
            tmp.symlink_to(secret)
        elif kind == "fifo":
            os.mkfifo(tmp)
        else:
            tmp.write_bytes(originals[name])

    return replace


def _secret_stored(objects: Path, secret_sha: str) -> bool:
    return any(p.name == secret_sha for p in objects.rglob("*"))


@pytest.mark.usefixtures("fast_switching")
async def test_swapping_files_for_symlinks_and_fifos_stores_nothing_outside_the_root(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    root = tmp_path / "inbox"
    staging = tmp_path / "staging"  # same file system, so os.replace is atomic
    outside = tmp_path / "outside"
    for folder in (root, staging, outside):
        folder.mkdir()
    secret = outside / "shadow"
    secret.write_bytes(b"root:$6$secret-hash:19000:0:99999:7:::\n" + os.urandom(64))
    secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    originals = {f"f{i:03d}.bin": os.urandom(200 + i) for i in range(FILES)}
    for name, data in originals.items():
        (root / name).write_bytes(data)
    good = {hashlib.sha256(data).hexdigest(): name for name, data in originals.items()}

    settings = make_settings(stage_timeout_s=10.0, shutdown_timeout_s=10.0)
    report = RunReport()
    swapper = Swapper(root, staging, originals, _swap_in(secret, originals), victims=VICTIMS)
    swapper.start()
    try:
        async with Runtime(settings, on_terminal=report.add) as runtime:
            submitted = 0
            for _ in range(PASSES):
                submitted += await runtime.submit_files(iter_candidates([root]))
            await runtime.wait_idle(120)  # a FIFO opened for reading would block forever
    finally:
        swapper.restore()

    assert swapper.swaps > 100, "the swapper did not get to run"
    assert submitted == FILES * PASSES
    # every input ends in exactly one record
    by_name: dict[str, list[str]] = {}
    for record in report.records:
        assert record.path is not None
        by_name.setdefault(Path(record.path).name, []).append(record.outcome)
    assert sorted(by_name) == sorted(originals)
    assert all(len(v) == PASSES for v in by_name.values()), {
        k: v for k, v in by_name.items() if len(v) != PASSES
    }
    assert len({r.correlation_id for r in report.records}) == FILES * PASSES
    # ... with the right reason: a voxel of its own bytes, or a symlink / non-file refusal
    from thunderline.voxel.store import VoxelStore

    victims = set(sorted(originals)[:VICTIMS])
    with VoxelStore(settings) as voxels:
        payloads = {voxels.get(v).payload_sha256 for v in voxels.iter_ids()}
        for record in report.records:
            assert record.path is not None
            name = Path(record.path).name
            if record.outcome == "ok":
                assert record.voxel_id is not None
                assert good[voxels.get(record.voxel_id).payload_sha256] == name
                continue
            assert record.reason in {"path_escape", "not_a_file"}, (
                name,
                record.reason,
                record.error,
            )
            assert name in victims, f"{name} was never swapped but ended {record.reason}"
    # nothing outside the root is stored: not in the object store, not in any voxel
    objects = settings.home / "objects" / "sha256"
    assert not _secret_stored(objects, secret_sha)
    stored = {p.name for p in objects.rglob("*") if p.is_file()}
    assert stored <= set(good), "an object that is none of the inputs was stored"
    assert secret_sha not in payloads
    assert payloads <= set(good)
    ok_names = {Path(r.path or "").name for r in report.ok}
    assert len(ok_names) == len(payloads)  # one voxel per ingested file, each its own bytes


@pytest.mark.parametrize("swap_to", ["symlink", "fifo"])
async def test_a_swap_between_admission_and_the_copy_changes_nothing(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    swap_to: str,
) -> None:
    """The race made deterministic: the swap happens right before the first byte is copied.

    Whatever the store is asked to copy, the file admitted first is swapped (atomically) for a
    symlink to the secret or a FIFO just before. Reading by name again would store the secret
    or block forever; reading through the admitted descriptor stores the original bytes.
    """
    from thunderline.objects.local import LocalObjectStore

    root = tmp_path / "inbox"
    root.mkdir()
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$secret:19000::::::\n")
    secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    data = b"\x00\x01original bytes\xff" * 10
    (root / "victim.bin").write_bytes(data)
    swapped: list[str] = []

    def swap_once() -> None:
        if swapped:
            return
        tmp = tmp_path / "replacement"
        if swap_to == "symlink":
            tmp.symlink_to(secret)
        else:
            os.mkfifo(tmp)
        os.replace(tmp, root / "victim.bin")
        swapped.append(swap_to)

    for method in ("put_file", "put_fd"):  # the old and the new way in
        real = getattr(LocalObjectStore, method, None)
        if real is None:
            continue

        def wrapped(self: LocalObjectStore, *args: object, _real: object = real, **kw: object):  # type: ignore[no-untyped-def]
            swap_once()
            return _real(self, *args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(LocalObjectStore, method, wrapped)

    settings = make_settings(stage_timeout_s=10.0, max_attempts=1, shutdown_timeout_s=5.0)
    report = RunReport()
    async with Runtime(settings, on_terminal=report.add) as runtime:
        await runtime.submit_files(iter_candidates([root]))
        await runtime.wait_idle(60)
    assert swapped == [swap_to]
    (record,) = report.records
    assert record.outcome == "ok", record
    assert not _secret_stored(settings.home / "objects" / "sha256", secret_sha)
    assert any((settings.home / "objects" / "sha256").rglob(hashlib.sha256(data).hexdigest()))
    from thunderline.voxel.store import VoxelStore

    with VoxelStore(settings) as voxels:
        assert record.voxel_id is not None
        assert voxels.read_payload(record.voxel_id) == data
