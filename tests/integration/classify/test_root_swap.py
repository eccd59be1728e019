"""Hostile race on the ingest root itself: renamed away and replaced by a symlink mid-ingest.

Whoever can write the folder that holds the ingest root can rename the root away and put a
symlink to a folder outside in its place, in a loop, while ``ingest -r`` runs. The root is
opened once when the walk starts and every file is reached relative to that descriptor, so
nothing of the outside folder may end in a voxel or in the object store, and every input
ends as a voxel of its own bytes.

The outside folder holds files under the *same relative names* as the root (``/etc`` holds
``shadow`` under any name the attacker lists): a root opened again by name for each file
reads them (the code before this round stored them).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.classify._races import fast_switching, ingest  # noqa: F401

from thunderline.classify import iter_candidates
from thunderline.config import Settings
from thunderline.report import RunReport
from thunderline.voxel.store import VoxelStore

FOLDERS = ("", "a", "a/b", "c")
PER_FOLDER = 40


def _tree(base: Path, content: Callable[[str], bytes]) -> dict[str, bytes]:
    """Files under the same relative names in every folder of :data:`FOLDERS`."""
    files: dict[str, bytes] = {}
    for folder in FOLDERS:
        (base / folder).mkdir(parents=True, exist_ok=True)
        for i in range(PER_FOLDER):
            relative = f"{folder}/f{i:03d}.txt".lstrip("/")
            files[relative] = content(relative)
            (base / relative).write_bytes(files[relative])
    return files


def _layout(tmp_path: Path) -> tuple[Path, dict[str, bytes], set[str]]:
    """``holder/inbox`` (the root, in a folder the attacker can write) and ``secret`` (outside,
    the same names, secret bytes). Returns the root, its files and the secret SHA-256s."""
    root = tmp_path / "holder" / "inbox"
    originals = _tree(root, lambda rel: f"inbox file {rel}\n".encode() * 3)
    secrets = _tree(tmp_path / "secret", lambda rel: f"root:$6$SECRET {rel}\n".encode() * 3)
    return root, originals, {hashlib.sha256(d).hexdigest() for d in secrets.values()}


class RootSwapper(threading.Thread):
    """Renames the root away, puts a symlink to the secret folder in its place, puts the
    root back, in a loop."""

    def __init__(self, root: Path, secret: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.secret = root, secret
        self.away = root.with_name("inbox.away")
        self.stop = threading.Event()
        self.swaps = 0

    def run(self) -> None:
        while not self.stop.is_set():
            os.rename(self.root, self.away)
            os.symlink(self.secret, self.root)
            time.sleep(0.0005)
            os.unlink(self.root)
            os.rename(self.away, self.root)
            self.swaps += 1

    def restore(self) -> None:
        self.stop.set()
        self.join(10)
        if self.root.is_symlink():
            self.root.unlink()
        if self.away.exists():
            os.rename(self.away, self.root)


def _check(
    settings: Settings,
    report: RunReport,
    root: Path,
    originals: dict[str, bytes],
    secrets: set[str],
) -> None:
    objects = settings.home / "objects" / "sha256"
    stored = {p.name for p in objects.rglob("*") if p.is_file()}
    with VoxelStore(settings) as voxels:
        payloads = {voxels.get(v).payload_sha256 for v in voxels.iter_ids()}
    assert not stored & secrets, f"{len(stored & secrets)} secret file(s) in the object store"
    assert not payloads & secrets, f"{len(payloads & secrets)} secret file(s) in a voxel"
    good = {hashlib.sha256(data).hexdigest() for data in originals.values()}
    assert payloads == good
    problems = [(r.path, r.reason, r.error) for r in report.records if r.outcome != "ok"]
    assert not problems, problems[:5]
    assert sorted(str(Path(r.path or "").relative_to(root)) for r in report.records) == sorted(
        originals
    )


@pytest.mark.usefixtures("fast_switching")
async def test_a_root_swapped_for_a_symlink_in_a_loop_leaks_nothing(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    root, originals, secrets = _layout(tmp_path)
    settings = make_settings(stage_timeout_s=20.0, shutdown_timeout_s=10.0)
    candidates = iter_candidates([root], recursive=True)
    first = next(candidates)  # the walk has started: the root is open; now the attack begins
    swapper = RootSwapper(root, tmp_path / "secret")
    swapper.start()
    try:
        report = await ingest(settings, itertools.chain([first], candidates))
    finally:
        swapper.restore()
    assert swapper.swaps > 20, "the swapper did not get to run"
    _check(settings, report, root, originals, secrets)


async def test_a_root_swapped_after_the_walk_leaks_nothing(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """The race made deterministic: the whole walk first, then the swap, then admission."""
    root, originals, secrets = _layout(tmp_path)
    settings = make_settings(stage_timeout_s=20.0, shutdown_timeout_s=10.0)
    walked = list(iter_candidates([root], recursive=True))
    root.rename(root.with_name("inbox.away"))
    root.symlink_to(tmp_path / "secret")
    report = await ingest(settings, iter(walked))
    _check(settings, report, root, originals, secrets)


async def test_a_root_given_as_a_symlink_is_resolved_once(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """A root the user names through a symlink on purpose is walked (resolved once, before the
    walk); re-pointing the link afterwards changes nothing."""
    real, originals, secrets = _layout(tmp_path)
    link = tmp_path / "inbox-link"
    link.symlink_to(real)
    settings = make_settings(stage_timeout_s=20.0, shutdown_timeout_s=10.0)
    walked = list(iter_candidates([link], recursive=True))
    assert len(walked) == len(originals) and all(c.root == link for c in walked)
    link.unlink()
    link.symlink_to(tmp_path / "secret")
    report = await ingest(settings, iter(walked))
    _check(settings, report, link, originals, secrets)
